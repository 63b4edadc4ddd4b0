"""Choosing among near-equal minima by how well they extrapolate.

On messy data (few model sizes, a narrow compute range) the objective has several minima within a hair of
each other that extrapolate very differently. The data cannot tell them apart by fit quality, so the robust
method asks the question the fit will be used for: refit each close candidate on the smaller-compute part of
the data and keep the one that best predicts the held-out larger-compute points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fits.fitting.diagnostics import at_bounds, relative_error
from fits.fitting.form import Form, Points, Problem
from fits.fitting.lbfgs import minimize_batched
from fits.fitting.multistart import Candidate

CLOSE = 0.02
"""Candidates whose objective is within 2% of the best count as equally good fits of the data: on Epoch's 240
points the objective of the optimum varies by about 9% (standard deviation) across bootstrap resamples."""
CLEARLY_BETTER = 0.8
"""Another close minimum replaces the lowest one only if its held-out error is below this fraction of the
lowest one's: with a handful of held-out points, smaller differences are noise."""


@dataclass(eq=False)
class HeldoutCheck:
    candidate: Candidate
    """The full-data minimum this check is about."""
    train_theta: np.ndarray
    """Its refit on the smaller-compute points."""
    error: float
    """Mean relative error of that refit on the held-out points."""


def is_sound(form: Form, theta: np.ndarray, points: Points, bounds: tuple[np.ndarray, np.ndarray] | None) -> bool:
    """Not degenerate and not pinned to a bound."""
    if form.degeneracy(form.to_coefficients(theta), points):
        return False
    return not at_bounds(form, theta, bounds)


def close_candidates(
    form: Form,
    candidates: list[Candidate],
    points: Points,
    bounds: tuple[np.ndarray, np.ndarray] | None,
    close: float = CLOSE,
) -> list[Candidate]:
    """The lowest minimum first, then the other sound minima within ``close`` of its objective.

    Degenerate minima (a term the data do not resolve, E ≈ 0, a coefficient on a bound) are never preferred
    over the lowest one: they fit no better, and they are exactly the fits that extrapolate wildly.
    """
    best = candidates[0]
    limit = best.objective + close * abs(best.objective)
    others = [
        c for c in candidates[1:] if c.objective <= limit and is_sound(form, c.theta, points, bounds)
    ]
    return [best, *others]


def heldout_checks(
    form: Form,
    candidates: list[Candidate],
    train: Points,
    test: Points,
    bounds: tuple[np.ndarray, np.ndarray] | None,
) -> list[HeldoutCheck]:
    """Refit every candidate on ``train`` from where it stands (one batch) and score it on ``test``."""
    x0 = np.stack([c.theta for c in candidates])
    if bounds is not None:
        x0 = np.clip(x0, *bounds)
    lo, hi = bounds if bounds is not None else (None, None)
    res = minimize_batched(Problem(form, train).fg, x0, lower=lo, upper=hi, max_iter=1000, ftol=1e-12, gtol=1e-9)
    errors = [relative_error(form, form.to_coefficients(theta), test) for theta in res.x]
    return [HeldoutCheck(candidate=c, train_theta=res.x[i], error=errors[i]) for i, c in enumerate(candidates)]


def pick(checks: list[HeldoutCheck]) -> HeldoutCheck:
    """The lowest minimum (checks[0]) unless another one extrapolates clearly better."""
    best_other = min(checks[1:], key=lambda c: c.error, default=None)
    if best_other is not None and best_other.error < CLEARLY_BETTER * checks[0].error:
        return best_other
    return checks[0]
