"""Storing a run measured elsewhere as a complete, "ingested" run with its curve, in the shared runs tables.

Each value's bounds are the request struct's (api.schemas.IngestPoint, RunIngest); the rules between fields
live here: a missing field is a 422 naming it, values that contradict each other (tokens against step × batch,
two points at one step) a 409 (a schema can state the former, not the latter). The run row and its points are written by
verifier.runs.create_ingested_run, beside the verifier's own runs.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from api.problems import ApiProblem
from api.schemas import IngestPoint, RunIngest
from fits import accounting
from verifier.runs import ConfigError, Run, RunPoint, create_ingested_run


def _bad(field: str, message: str) -> ApiProblem:
    return ApiProblem(422, f"{field}: {message}", field=field)


def _contradiction(field: str, message: str) -> ApiProblem:
    """Values that each pass the schema but contradict one another (a JSON schema cannot state arithmetic
    between fields): a 409, as documented."""
    return ApiProblem(409, f"{field}: {message}", field=field, title="Conflict")


MAX_TOKENS = 2**62
"""Token counts are stored as SQLite integers, with room to spare."""
TOKENS_TOLERANCE = 0.01
"""How far a point's tokens may be from step × batch_tokens (as a fraction, plus one batch)."""


def _points(points: list[IngestPoint], batch_tokens: int) -> list[RunPoint]:
    """The curve in step order, each point's tokens given or step × batch: tokens are what the steps consumed,
    within a batch-size ramp's or an off-by-one's slack, and do not decrease; one point per step."""
    out: list[RunPoint] = []
    order = sorted(range(len(points)), key=lambda i: points[i].step)
    for i in order:
        p = points[i]
        where = f"points[{i}]"
        if p.train_loss is None and p.val_loss is None:
            raise _bad(where, "give val_loss (what the refit uses) or train_loss")
        expected = p.step * batch_tokens
        if p.tokens is not None and abs(p.tokens - expected) > TOKENS_TOLERANCE * expected + batch_tokens:
            raise _contradiction(f"{where}.tokens", f"{p.tokens} tokens at step {p.step} is not step × batch_tokens "
                                                    f"({p.step} × {batch_tokens} = {expected})")
        tokens = expected if p.tokens is None else p.tokens
        if tokens >= MAX_TOKENS:
            raise _contradiction(f"{where}.step", f"step {p.step} × batch_tokens {batch_tokens} is {expected} tokens, "
                                                  f"more than the {MAX_TOKENS} a run can store")
        if out and p.step == out[-1].step:
            raise _contradiction(f"{where}.step", f"two points at step {p.step}")
        if out and tokens < out[-1].tokens:
            raise _contradiction(f"{where}.tokens", f"tokens must not decrease with the step; {tokens} at step "
                                                    f"{p.step} follows {out[-1].tokens} at step {out[-1].step}")
        out.append(RunPoint(step=p.step, tokens=tokens, train_loss=p.train_loss, val_loss=p.val_loss, lr=p.lr,
                            seconds=p.seconds))
    return out


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
            raise _contradiction("batch_tokens", f"{run.batch_tokens} is not batch_size × seq_len "
                                       f"({run.batch_size} × {run.seq_len})")
        return run.batch_tokens
    if run.batch_size is None:
        raise _bad("batch_tokens", "give batch_tokens (tokens per step) or batch_size (sequences per step)")
    return run.batch_size * run.seq_len


def ingest_run(db: sqlite_utils.Database, run: RunIngest) -> Run:
    """Validate ``run`` and store it with its points (verifier.runs.create_ingested_run); returns the stored Run."""
    n_params = _n_params(run)
    batch_tokens = _batch_tokens(run)
    points = _points(run.points, batch_tokens)
    config: dict[str, Any] = {"ingested": True, "batch_tokens": batch_tokens, "seq_len": run.seq_len}
    for key in ("shape", "batch_size", "lr", "description"):
        value = getattr(run, key)
        if value is not None:
            config[key] = value
    try:
        return create_ingested_run(db, points, scope=run.scope, config=config, n_params=n_params,
                                   batch_tokens=batch_tokens, seq_len=run.seq_len, params_total=run.params_total,
                                   plan_id=run.plan_id, warmup_steps=run.warmup_steps, seed=run.seed)
    except ConfigError as exc:
        if exc.field == "plan_id":  # the schema bounds the id: what is left is a plan not stored
            raise ApiProblem(404, f"plan_id: {exc.message}", field="plan_id") from None
        raise _bad(exc.field or "plan_id", exc.message) from None
