"""The planner's table: ``plans``, every answered plan with the fit it used (see planner.store)."""

from __future__ import annotations

from typing import Any

from fits.db import migration


@migration("planner", 1, "plans")
def _plans(db: Any) -> None:
    db["plans"].create(
        {
            "id": int, "fit_id": int, "created": str, "compute_flops": float,
            "idempotency_key": str, "request": str, "plan": str,
        },
        pk="id",
        foreign_keys=[("fit_id", "fits", "id")],
        not_null={"fit_id", "created", "plan"},
    )
    db["plans"].create_index(["idempotency_key"], unique=True)
    db["plans"].create_index(["fit_id", "id"])
    db["plans"].create_index(["created"])
