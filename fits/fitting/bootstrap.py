"""Seeded bootstrap: refit on K resamples of the points, all resamples and their starts in one batch.

A resample is a vector of counts (how often each point was drawn; with ``Points.group``, how often its group
was drawn, since the points of one run are not independent), used as point weights in the objective,
so every resample fits the same arrays and whole blocks of resamples step together through batched L-BFGS.
Each resample starts from the full-data optimum and from a few other minima the full grid found, and keeps
its best end point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fits.fitting.form import Form, Points, Problem
from fits.fitting.lbfgs import ITERATION_CAP, minimize_batched

RESAMPLES_PER_BLOCK = 100
"""Resamples stepped together; progress is reported after each block."""
INTERVAL = (2.5, 97.5)
"""Percentiles of the reported intervals (a 95% percentile interval)."""

Progress = Callable[[int, int], None]
"""progress(done, total), called after each block of resamples."""


@dataclass
class BootstrapSamples:
    theta: np.ndarray
    """(K, k) best end point per resample."""
    objective: np.ndarray
    converged: np.ndarray
    """False where the refit was still moving at its iteration cap."""


def bootstrap(
    form: Form,
    points: Points,
    starts: np.ndarray,
    resamples: int,
    *,
    seed: int,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> BootstrapSamples:
    """Refit ``resamples`` bootstrap resamples of ``points`` from each row of ``starts`` (first row: the optimum)."""
    rng = np.random.default_rng(seed)
    n = len(points)
    _, member = np.unique(points.group if points.group is not None else np.arange(n), return_inverse=True)
    groups = int(member.max()) + 1
    n_starts = starts.shape[0]
    lo, hi = bounds if bounds is not None else (None, None)
    thetas, objectives, converged = [], [], []
    done = 0
    while done < resamples:
        block = min(RESAMPLES_PER_BLOCK, resamples - done)
        counts = rng.multinomial(groups, np.full(groups, 1.0 / groups), size=block).astype(float)[:, member]
        # Coarse pass from every start in float32, then the best start of each resample refined in float64.
        coarse = minimize_batched(
            Problem(form, points, np.repeat(counts, n_starts, axis=0), np.float32).fg,
            np.tile(starts, (block, 1)),
            lower=lo, upper=hi, max_iter=200, max_backtracks=6, restart_on_stall=False,
        )
        pick = np.argmin(coarse.f.reshape(block, n_starts), axis=1)
        x0 = coarse.x[np.arange(block) * n_starts + pick]
        res = minimize_batched(
            Problem(form, points, counts).fg, x0, lower=lo, upper=hi, max_iter=1000, ftol=1e-12, gtol=1e-9
        )
        thetas.append(res.x)
        objectives.append(res.f)
        converged.append(res.status != ITERATION_CAP)
        done += block
        if progress is not None:
            progress(done, resamples)
    return BootstrapSamples(np.vstack(thetas), np.concatenate(objectives), np.concatenate(converged))


def percentile_interval(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(finite, INTERVAL)
    return [float(lo), float(hi)]
