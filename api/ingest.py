"""Storing a run measured elsewhere as a complete, "ingested" run with its curve, in the shared runs tables.

Validation (one 422 per bad field) lives here; the run row and its points are written by
verifier.runs.create_ingested_run, beside the verifier's own runs.
"""

from __future__ import annotations

import math
from typing import Any

import sqlite_utils

from api.problems import ApiProblem
from api.schemas import RunIngest
from fits import accounting
from verifier.runs import ConfigError, Run, RunPoint, create_ingested_run


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


TOKENS_TOLERANCE = 0.01
"""How far a point's tokens may be from step × batch_tokens (as a fraction, plus one batch)."""


def _check_tokens(points: list[RunPoint], batch_tokens: int) -> None:
    """Tokens are what the steps consumed: step × batch, within a batch-size ramp's or an off-by-one's slack."""
    for i, p in enumerate(points):
        expected = p.step * batch_tokens
        if abs(p.tokens - expected) > TOKENS_TOLERANCE * expected + batch_tokens:
            raise _bad(f"points[{i}].tokens", f"{p.tokens} tokens at step {p.step} is not step × batch_tokens "
                                              f"({p.step} × {batch_tokens} = {expected})")


def _n_params(run: RunIngest) -> int:
    if run.n_params is not None:
        if run.shape is not None:
            raise _bad("shape", "give n_params or shape, not both (N is taken from one of them)")
        return run.n_params
    if run.shape is None:
        raise _bad("n_params", "give n_params (non-embedding parameters) or shape (n_layer, d_model)")
    return accounting.kaplan_params(run.shape.n_layer, run.shape.d_model)  # the architecture is not known


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
    """Validate ``run`` and store it with its points (verifier.runs.create_ingested_run); returns the stored Run."""
    _check_points(run.points)
    n_params = _n_params(run)
    batch_tokens = _batch_tokens(run)
    _check_tokens(run.points, batch_tokens)
    config: dict[str, Any] = {"ingested": True, "batch_tokens": batch_tokens, "seq_len": run.seq_len}
    for key in ("shape", "batch_size", "lr", "description"):
        value = getattr(run, key)
        if value is not None:
            config[key] = value
    try:
        return create_ingested_run(db, run.points, scope=run.scope, config=config, n_params=n_params,
                                   batch_tokens=batch_tokens, seq_len=run.seq_len, params_total=run.params_total,
                                   plan_id=run.plan_id, warmup_steps=run.warmup_steps, seed=run.seed)
    except ConfigError as exc:
        raise _bad(exc.field or "plan_id", exc.message) from None
