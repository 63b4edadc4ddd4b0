"""Storing a run measured elsewhere as a complete, "ingested" run with its curve, in the shared runs tables.

The verifier's store functions create runs it trains itself (from a RunConfig); an ingested run has no
RunConfig, so its row is written here, and its points and the answer go through verifier.runs.
"""

from __future__ import annotations

import math
from typing import Any

import sqlite_utils

from api.problems import ApiProblem
from api.schemas import RunIngest
from fits.store import now, to_json, transaction
from verifier.runs import Run, RunPoint, get_run, write_points


def _bad(field: str, message: str) -> ApiProblem:
    return ApiProblem(422, f"{field}: {message}", field=field)


def _check_points(points: list[RunPoint]) -> None:
    previous_step, previous_tokens = -1, -1
    for i, p in enumerate(points):
        where = f"points[{i}]"
        if p.step < 0 or p.step >= 2**62:
            raise _bad(f"{where}.step", f"must be a step number from 0, got {p.step}")
        if p.step <= previous_step:
            raise _bad(f"{where}.step", f"steps must increase; {p.step} follows {previous_step}")
        if p.tokens < 0 or p.tokens >= 2**62:
            raise _bad(f"{where}.tokens", f"must be a token count from 0, got {p.tokens}")
        if p.tokens < previous_tokens:
            raise _bad(f"{where}.tokens", f"tokens must not decrease; {p.tokens} follows {previous_tokens}")
        for name in ("train_loss", "val_loss"):
            value = getattr(p, name)
            if value is not None and not (math.isfinite(value) and 0 < value < 100):
                raise _bad(f"{where}.{name}", f"must be a loss in nats per token (0 to 100), got {value}")
        for name in ("lr", "seconds"):
            value = getattr(p, name)
            if value is not None and not (math.isfinite(value) and 0 <= value < 1e12):
                raise _bad(f"{where}.{name}", f"must be a finite number ≥ 0, got {value}")
        if p.train_loss is None and p.val_loss is None:
            raise _bad(f"{where}", "give val_loss (what the refit uses) or train_loss")
        previous_step, previous_tokens = p.step, p.tokens


def _n_params(run: RunIngest) -> int:
    if run.n_params is not None:
        return run.n_params
    if run.shape is None:
        raise _bad("n_params", "give n_params (non-embedding parameters) or shape (n_layer, d_model)")
    return 12 * run.shape.n_layer * run.shape.d_model**2


def _batch_tokens(run: RunIngest) -> int:
    if run.batch_tokens is not None:
        if run.batch_size is not None and run.batch_size * run.seq_len != run.batch_tokens:
            raise _bad("batch_tokens", f"{run.batch_tokens} is not batch_size × seq_len "
                                       f"({run.batch_size} × {run.seq_len})")
        return run.batch_tokens
    if run.batch_size is None:
        raise _bad("batch_tokens", "give batch_tokens (tokens per step) or batch_size (sequences per step)")
    return run.batch_size * run.seq_len


def ingest_run(db: sqlite_utils.Database, run: RunIngest) -> Run:
    """Validate and store ``run`` and its points in one transaction; returns the stored Run."""
    _check_points(run.points)
    n_params = _n_params(run)
    batch_tokens = _batch_tokens(run)
    last = run.points[-1]
    with_val = [p for p in run.points if p.val_loss is not None]
    best = min(with_val, key=lambda p: p.val_loss) if with_val else None
    config: dict[str, Any] = {"ingested": True, "batch_tokens": batch_tokens, "seq_len": run.seq_len}
    for key in ("shape", "batch_size", "lr", "description"):
        value = getattr(run, key)
        if value is not None:
            config[key] = value
    stamp = now()
    row = {
        "scope": run.scope, "plan_id": run.plan_id, "source": "ingested", "status": "complete",
        "config": to_json(config), "n_params": n_params, "params_total": run.params_total,
        "batch_tokens": batch_tokens, "seq_len": run.seq_len, "tokens": last.tokens, "steps": last.step,
        "warmup_steps": run.warmup_steps, "seed": run.seed,
        "final_val_loss": with_val[-1].val_loss if with_val else None,
        "best_val_step": best.step if best else None, "created": stamp, "updated": stamp,
    }
    with transaction(db):
        if run.plan_id is not None and db.execute("SELECT 1 FROM plans WHERE id = ?", [run.plan_id]).fetchone() is None:
            raise _bad("plan_id", f"no plan with id {run.plan_id}")
        run_id = db["runs"].insert(row).last_pk
        write_points(db, run_id, run.points)
    return get_run(db, run_id)
