"""The fits package's table: ``fits``, the versioned store of coefficient sets (see fits.store)."""

from __future__ import annotations

from typing import Any

from fits.db import migration


@migration("fits", 1, "fits")
def _fits(db: Any) -> None:
    db["fits"].create(
        {
            "id": int, "name": str, "law": str, "scope": str, "version": int,
            "coefficients": str, "intervals": str, "provenance": str, "points": str,
            "objective": float, "n_points": int, "heldout_error": float, "diagnostics": str,
            "warnings": str, "created": str, "active": int,
        },
        pk="id",
        not_null={"law", "scope", "version", "coefficients", "created", "active"},
        defaults={"active": 0, "n_points": 0},
    )
    db["fits"].create_index(["law", "scope", "version"], unique=True)
    db["fits"].create_index(["name"])
    # The database itself refuses a second active fit for a (law, scope).
    db.execute("CREATE UNIQUE INDEX fits_one_active ON fits(law, scope) WHERE active = 1")
