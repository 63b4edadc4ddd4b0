"""The refit's reading of the verifier's run tables: complete runs and their validation curves.

The tables ``runs`` and ``run_points`` belong to the verifier (declared in verifier.schema, written through
verifier.runs, by the verifier's training and by ``POST /v1/runs``). The refit job lives in fits and is
started by ``python -m fits refit`` as well as by the verifier's check, and fits may not import the
verifier, so the few columns the refit fits are read here, in one place, as typed records: this module is
the contract between the two packages (test_refit covers it end to end), and nothing else in fits reads
those tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    import sqlite_utils


class MeasuredRun(msgspec.Struct, kw_only=True, frozen=True):
    """What the refit needs of one complete run."""

    id: int
    n_params: float | None
    """Non-embedding parameters."""
    params_total: float | None = None
    """Every parameter (embedding and head tables included); None for runs ingested without it."""
    tokens: float | None
    batch_tokens: float | None
    warmup_steps: float | None
    final_val_loss: float | None


class CurvePoint(msgspec.Struct, kw_only=True, frozen=True):
    """One validation-loss measurement of a run."""

    run_id: int
    step: float
    val_loss: float


def _tables_exist(db: sqlite_utils.Database) -> bool:
    return "runs" in db.table_names()


def measured_scopes(db: sqlite_utils.Database) -> list[str]:
    """Every scope with at least one complete run, sorted."""
    if not _tables_exist(db):
        return []
    return [r[0] for r in db.execute("SELECT DISTINCT scope FROM runs WHERE status = 'complete' ORDER BY scope")]


def complete_runs(db: sqlite_utils.Database, scope: str) -> list[MeasuredRun]:
    """The complete runs of ``scope``, oldest first."""
    if not _tables_exist(db):
        return []
    rows = db.query(
        "SELECT id, n_params, params_total, tokens, batch_tokens, warmup_steps, final_val_loss FROM runs "
        "WHERE scope = ? AND status = 'complete' ORDER BY id",
        [scope],
    )
    return [MeasuredRun(**row) for row in rows]


def validation_curves(db: sqlite_utils.Database, run_ids: list[int]) -> list[CurvePoint]:
    """The points of these runs that carry a validation loss, by run then step."""
    if not run_ids or not _tables_exist(db):
        return []
    placeholders = ",".join("?" * len(run_ids))
    rows = db.query(
        f"SELECT run_id, step, val_loss FROM run_points WHERE run_id IN ({placeholders}) "
        "AND val_loss IS NOT NULL ORDER BY run_id, step",
        list(run_ids),
    )
    return [CurvePoint(**row) for row in rows]
