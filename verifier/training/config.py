"""``make_config``: a RunConfig with the derived values filled in (shape, length, learning rate, warm-up)."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from verifier.model import non_embedding_params
from verifier.runs import ConfigError, RunConfig

log = logging.getLogger("verifier.train")


def default_n_head(d_model: int) -> int:
    """64-wide heads (as planner.shape chooses), or the nearest head count that divides d_model."""
    for h in range(max(1, d_model // 64), 0, -1):
        if d_model % h == 0:
            return h
    return 1


def default_warmup(steps: int) -> int:
    """Kaplan used 3000 warm-up steps of 250k; short runs warm up over 5% of their steps."""
    return min(3000, max(1, round(0.05 * steps)))


def kaplan_lr(n_params: int) -> float:
    """Kaplan et al. eq. D.1, LR(N) = 0.003239 − 0.0001395·ln N."""
    from fits.laws.kaplan2020 import learning_rate

    return float(learning_rate(n_params))


def make_config(*, n_layer: int | None = None, d_model: int | None = None, n_head: int | None = None,
                params: float | None = None, steps: int | None = None, tokens: float | None = None,
                batch_size: int = 16, seq_len: int = 256, lr: float | None = None,
                warmup_steps: int | None = None, corpus: str | os.PathLike | None = None,
                **fields) -> RunConfig:
    """A RunConfig with the derived values filled in.

    Shape: explicit (n_layer, d_model[, n_head]) or a non-embedding parameter target ``params`` (shape
    from ``planner.shape.shape_for_params``). Length: ``steps`` or ``tokens`` (rounded up to whole steps).
    Defaults: n_head for 64-wide heads, lr from Kaplan's eq. D.1, warm-up 5% of the steps (at most 3000).
    """
    if params is not None:
        if n_layer is not None or d_model is not None:
            raise ConfigError("params: give either a parameter target or --n-layer/--d-model, not both")
        n_layer, d_model, shape_head = _shape_for(params)
        n_head = n_head or shape_head
    if n_layer is None or d_model is None:
        raise ConfigError("shape: give --n-layer and --d-model, or a --params target")
    if d_model < 1 or n_layer < 1:
        raise ConfigError("n_layer and d_model must be positive integers")
    n_head = n_head or default_n_head(d_model)
    if (steps is None) == (tokens is None):
        raise ConfigError("steps: give exactly one of --steps or --tokens")
    if tokens is not None:
        if not tokens > 0:
            raise ConfigError(f"tokens: must be positive, got {tokens}")
        steps = max(1, math.ceil(tokens / (batch_size * seq_len)))
    if lr is None:
        lr = kaplan_lr(non_embedding_params(n_layer, d_model, bias=fields.get("bias", False)))
        if not lr > 0:
            raise ConfigError("lr: Kaplan's eq. D.1 gives no usable learning rate above N ≈ 1e10; pass --lr")
    warmup_steps = warmup_steps if warmup_steps is not None else default_warmup(steps)
    corpus_path = None if corpus is None else os.fspath(Path(corpus).expanduser().resolve())
    try:
        return RunConfig(n_layer=n_layer, d_model=d_model, n_head=n_head, steps=steps, lr=lr,
                         warmup_steps=warmup_steps, batch_size=batch_size, seq_len=seq_len,
                         corpus=corpus_path, **fields)
    except TypeError as exc:  # an unknown field name
        raise ConfigError(str(exc)) from exc


def _shape_for(params: float) -> tuple[int, int, int]:
    try:
        from planner.shape import shape_for_params
    except ImportError as exc:
        raise ConfigError("params: planner.shape is not available to choose a shape; "
                          "pass --n-layer and --d-model instead") from exc
    shape = shape_for_params(params)
    for warning in getattr(shape, "warnings", []):
        log.warning("shape for N=%.3g: %s", params, warning)
    return int(shape.n_layer), int(shape.d_model), int(shape.n_head)
