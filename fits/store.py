"""The versioned fit store: the ``fits`` table (declared in fits.schema), and opening the shared file.

``open_db`` opens the SQLite file every package shares (fits.db: connection, the one migration mechanism
that creates each package's tables, write transactions) and seeds the published coefficient sets. Every
read-check-write runs inside ``transaction(db)`` (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlite_utils

# The shared file's plumbing (fits.db) is re-exported here, where callers have always found it.
from fits.db import (  # noqa: F401
    BUSY_TIMEOUT_MS,
    DEFAULT_DB,
    connect,
    db_path,
    from_json,
    from_row,
    migrations,
    now,
    to_json,
    transaction,
    where,
)
from fits.errors import Conflict, NotFound
from fits.fit import Fit, Provenance, fit_ref
from fits.result import Diagnostics

if TYPE_CHECKING:
    from fits.result import FitResult


class FitNotFound(NotFound):
    """No fit with that id or name."""

    default_message = "fit not found"


def open_db(path: str | os.PathLike[str] | None = None, *, seed: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the scaleplan database, apply pending migrations and seed published fits."""
    db = connect(path)
    if seed:
        seed_published(db)
    return db


# ---------------------------------------------------------------------------------------------- fits


def _row_to_fit(row: dict[str, Any]) -> Fit:
    return from_row(row, Fit, {"coefficients": dict[str, float], "intervals": dict[str, list[float]],
                               "provenance": Provenance, "diagnostics": Diagnostics, "warnings": list[str]})


def save_fit(
    db: sqlite_utils.Database,
    fit: Fit,
    *,
    activate: bool = False,
    points: list[dict[str, float]] | None = None,
) -> Fit:
    """Store ``fit`` as the next version of its (law, scope); optionally make it the active one.

    ``points`` are the data points the fit was made on, kept so a fit can be re-examined later. No name
    rule: this is the store's primitive (seeding stores the published names with it); new fits go through
    ``save_version``.
    """
    with transaction(db):
        (latest,) = db.execute(
            "SELECT COALESCE(MAX(version), 0) FROM fits WHERE law = ? AND scope = ?", [fit.law, fit.scope]
        ).fetchone()
        version = latest + 1
        created = now()
        row = {
            "name": fit.name,
            "law": fit.law,
            "scope": fit.scope,
            "version": version,
            "coefficients": to_json(fit.coefficients),
            "intervals": to_json(fit.intervals),
            "provenance": to_json(fit.provenance),
            "points": to_json(points) if points is not None else None,
            "objective": fit.objective,
            "n_points": fit.n_points,
            "heldout_error": fit.heldout_error,
            "diagnostics": to_json(fit.diagnostics),
            "warnings": to_json(fit.warnings),
            "created": created,
            "active": 0,
        }
        fit_id = db["fits"].insert(row).last_pk
        if activate:
            _activate(db, fit_id, fit.law, fit.scope)
        _pause_point()
    return get_fit(db, fit_id)


def reserved_names() -> frozenset[str]:
    """Names of the published coefficient sets: only seeding may store a fit under one of them."""
    from fits.laws.published import published_fits

    return frozenset(f.name for f in published_fits() if f.name)


def check_name(db: sqlite_utils.Database, name: str | None, law: str, scope: str) -> None:
    """Conflict (field ``name``) unless ``name`` may name a new version of (law, scope).

    A published name is reserved, and a name stays with one (law, scope): ``get_fit(name)`` returns the active
    (else the newest) version carrying it, which must not jump to another family or scope.
    """
    if name is None:
        return
    if name in reserved_names():
        raise Conflict(f"{name!r} is the name of a published fit and is reserved; store the copy under another "
                       "name", field="name")
    row = db.execute("SELECT law, scope FROM fits WHERE name = ? ORDER BY version DESC LIMIT 1", [name]).fetchone()
    if row is not None and (row[0], row[1]) != (law, scope):
        raise Conflict(f"{name!r} already names fits of {row[0]}/{row[1]}; a name stays with one (law, scope)",
                       field="name")


def save_version(
    db: sqlite_utils.Database,
    fit: Fit,
    *,
    activate: bool = False,
    points: list[dict[str, float]] | None = None,
) -> Fit:
    """Store a fit made by someone (the fits CLI, the API, the refit) as the next version of its (law, scope).

    The name is checked (``check_name``) and the version written in one write transaction, so two savers
    cannot both claim a name; ``points`` are the data the fit was made on. Conflict if the name is refused.
    """
    with transaction(db):
        check_name(db, fit.name, fit.law, fit.scope)
        return save_fit(db, fit, activate=activate, points=points)


def save_fitted(
    db: sqlite_utils.Database,
    result: FitResult,
    *,
    scope: str | None,
    name: str | None,
    note: str,
    data: str,
    columns: Mapping[str, Sequence[Any]],
    activate: bool = False,
) -> Fit:
    """Store a fitting result made on ``columns`` as the next version of its (law, scope) (``save_version``'s
    name rule and transaction); ``note`` says what made it (the command), ``data`` what it was fitted on."""
    fit = Fit.from_result(
        result,
        scope=scope,
        name=name,
        provenance=Provenance(source="fitted", note=note, data=data, seed=result.seed, bootstrap=result.bootstrap),
    )
    return save_version(db, fit, activate=activate, points=point_rows(columns))


def point_rows(columns: Mapping[str, Sequence[Any]], text: Collection[str] = ("group",)) -> list[dict[str, Any]]:
    """Named columns as the rows a fit stores; the ``text`` columns hold labels (a CSV's run names), not
    numbers, and are stored as text."""
    names = list(columns)
    return [{k: (str(v) if k in text else float(v)) for k, v in zip(names, row, strict=True)}
            for row in zip(*columns.values(), strict=True)]


PAUSE_IN_SAVE = "SCALEPLAN_TEST_PAUSE_IN_SAVE"
"""Fault injection for the durability tests: with this set to a path, ``save_fit`` writes the path once its
rows are written (new version, activation) and then waits up to a minute before committing, so a test can
kill the process inside the save's transaction."""


def _pause_point() -> None:
    marker = os.environ.get(PAUSE_IN_SAVE)
    if not marker:
        return
    import time
    from pathlib import Path

    Path(marker).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        time.sleep(0.05)


def _activate(db: sqlite_utils.Database, fit_id: int, law: str, scope: str) -> None:
    db.execute("UPDATE fits SET active = 0 WHERE law = ? AND scope = ? AND active = 1", [law, scope])
    db.execute("UPDATE fits SET active = 1 WHERE id = ?", [fit_id])


def activate_fit(db: sqlite_utils.Database, fit_id: int) -> Fit:
    """Make ``fit_id`` the active fit of its (law, scope), atomically."""
    with transaction(db):
        row = db.execute("SELECT law, scope FROM fits WHERE id = ?", [fit_id]).fetchone()
        if row is None:
            raise FitNotFound(f"no fit with id {fit_id}", field="fit_id")
        _activate(db, fit_id, row[0], row[1])
    return get_fit(db, fit_id)


def get_fit(db: sqlite_utils.Database, ref: int | str) -> Fit:
    """A fit by id (int or digit string) or by stable name (the active version carrying that name, else the
    newest)."""
    ref = fit_ref(ref) if isinstance(ref, str) else ref
    if isinstance(ref, int):
        rows = list(db["fits"].rows_where("id = ?", [ref]))
        if not rows:
            raise FitNotFound(f"no fit with id {ref}", field="fit")
    else:
        # The active fit of that name, else its newest version: a later inactive version (an import, a refit
        # left unactivated) must not replace what the name answers with.
        rows = list(db["fits"].rows_where("name = ?", [ref], order_by="active desc, version desc", limit=1))
        if not rows:
            known = ", ".join(r["name"] for r in db.query("SELECT DISTINCT name FROM fits WHERE name IS NOT NULL"))
            raise FitNotFound(f"no fit named {ref!r} (known names: {known or 'none'})", field="fit")
    return _row_to_fit(rows[0])


def active_fit(db: sqlite_utils.Database, law: str, scope: str) -> Fit | None:
    rows = list(db["fits"].rows_where("law = ? AND scope = ? AND active = 1", [law, scope]))
    return _row_to_fit(rows[0]) if rows else None


def active_fits(db: sqlite_utils.Database, scope: str | None = None) -> list[Fit]:
    where, args = ("active = 1 AND scope = ?", [scope]) if scope else ("active = 1", [])
    return [_row_to_fit(r) for r in db["fits"].rows_where(where, args, order_by="law, scope")]


def list_fits(db: sqlite_utils.Database, *, law: str | None = None, scope: str | None = None) -> list[Fit]:
    clause, args = where(("law = ?", law), ("scope = ?", scope))
    return [_row_to_fit(r) for r in db["fits"].rows_where(clause, args, order_by="id")]


def fit_points(db: sqlite_utils.Database, fit_id: int) -> list[dict[str, float]] | None:
    row = db.execute("SELECT points FROM fits WHERE id = ?", [fit_id]).fetchone()
    if row is None:
        raise FitNotFound(f"no fit with id {fit_id}", field="fit_id")
    return from_json(row[0], list[dict[str, float]] | None)


# ---------------------------------------------------------------------------------------------- seeding


def seed_published(db: sqlite_utils.Database) -> list[Fit]:
    """Insert the published coefficient sets once; later calls find them and do nothing."""
    from fits.laws.published import published_fits

    wanted = published_fits()
    names = [f.name for f in wanted]
    placeholders = ",".join("?" * len(names))
    query = f"SELECT COUNT(DISTINCT name) FROM fits WHERE name IN ({placeholders})"
    if db.execute(query, names).fetchone()[0] == len(names):
        return []
    seeded = []
    with transaction(db):
        present = {r[0] for r in db.execute(f"SELECT name FROM fits WHERE name IN ({placeholders})", names)}
        for fit in wanted:
            if fit.name not in present:
                seeded.append(save_fit(db, fit, activate=fit.active))
    return seeded


def is_seeded(db: sqlite_utils.Database) -> bool:
    from fits.laws.published import published_fits

    names = [f.name for f in published_fits()]
    placeholders = ",".join("?" * len(names))
    query = f"SELECT COUNT(DISTINCT name) FROM fits WHERE name IN ({placeholders})"
    return db.execute(query, names).fetchone()[0] == len(names)
