"""Checks attached to every fit: residual statistics, a held-out extrapolation test, bound and degeneracy flags."""

from __future__ import annotations

import numpy as np

from fits.fitting.form import Data, Form, Points
from fits.result import Diagnostics

HELDOUT_FRACTION = 0.15
"""Share of points (by compute, the largest) held out to test extrapolation."""
BOUND_TOLERANCE = 1e-6
"""A coordinate within this of a bound (absolute, in optimiser coordinates) counts as sitting on it."""


def log_residuals(form: Form, theta: np.ndarray, points: Points) -> np.ndarray:
    """ln(predicted) − ln(observed) at every point, in float64."""
    data = Data(points, np.float64, form.ln_n0, form.ln_x0)
    return form.log_predict(theta[None, :], data)[0] - data.ln_l


def heldout_split(points: Points, k: int, fraction: float = HELDOUT_FRACTION) -> tuple[np.ndarray, np.ndarray] | None:
    """(train, test) indices: test is the largest-compute ``fraction`` of the points (ties stay together).

    None when the rest would be too small to fit: fewer than 2·k points or fewer than two distinct N.
    """
    n = len(points)
    order = np.argsort(points.compute, kind="stable")
    n_test = max(1, round(fraction * n))
    threshold = points.compute[order[n - n_test]]
    test = np.flatnonzero(points.compute >= threshold)
    train = np.flatnonzero(points.compute < threshold)
    if train.size < 2 * k or np.unique(points.N[train]).size < 2 or test.size == 0:
        return None
    return train, test


def relative_error(form: Form, coefficients: dict[str, float], points: Points) -> float:
    """Mean |predicted/observed − 1| over the points."""
    pred = form.predict(coefficients, points.N, points.X)
    return float(np.mean(np.abs(pred / points.loss - 1.0)))


def at_bounds(form: Form, theta: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None) -> list[str]:
    """Coefficients whose optimiser coordinate sits on a bound."""
    if bounds is None:
        return []
    lo, hi = bounds
    hit = (theta <= lo + BOUND_TOLERANCE) | (theta >= hi - BOUND_TOLERANCE)
    return [form.theta_coefficient[i] for i in np.flatnonzero(hit)]


def bound_warnings(form: Form, theta: np.ndarray, bounds: tuple[np.ndarray, np.ndarray]) -> list[str]:
    lo, hi = bounds
    out = []
    for i, name in enumerate(form.theta_names):
        coefficient = form.theta_coefficient[i]
        if theta[i] <= lo[i] + BOUND_TOLERANCE:
            out.append(f"{coefficient} sits at its lower bound ({name} = {lo[i]:.4g})")
        elif theta[i] >= hi[i] - BOUND_TOLERANCE:
            out.append(f"{coefficient} sits at its upper bound ({name} = {hi[i]:.4g})")
    return out


SAME_LEVEL = 1.2
"""Values within this factor of the first value of their group count as one level (one model size read off a
figure with some jitter, or token counts that differ by rounding)."""


def distinct_levels(values: np.ndarray, factor: float = SAME_LEVEL) -> int:
    """Number of groups when sorted values are grouped greedily, each group spanning at most ``factor``."""
    width = np.log(factor)
    levels, start = 0, -np.inf
    for v in np.sort(np.log(values)):
        if v > start + width:
            levels, start = levels + 1, v
    return levels


def data_limits(form: Form, points: Points) -> list[str]:
    """Reasons the data cannot pin the coefficients down, whatever the fit does."""
    reasons = []
    for values, name, what in ((points.N, "N", "model size"), (points.X, form.x_name, "second variable")):
        distinct = distinct_levels(values)
        if distinct < 3:
            reasons.append(f"only {distinct} distinct {name} values: the {what} exponent is not determined")
    if len(points) < 2 * form.k:
        reasons.append(f"{len(points)} points for {form.k} coefficients: the fit can nearly interpolate them")
    return reasons


def data_ranges(N: np.ndarray, D: np.ndarray | None) -> dict[str, list[float]]:
    """[min, max] of N, and of D and D/N when the second variable is tokens."""
    out = {"N": [float(np.min(N)), float(np.max(N))]}
    if D is not None:
        out["D"] = [float(np.min(D)), float(np.max(D))]
        out["tokens_per_param"] = [float(np.min(D / N)), float(np.max(D / N))]
    return out


def diagnostics(
    form: Form,
    theta: np.ndarray,
    points: Points,
    *,
    bounds: tuple[np.ndarray, np.ndarray] | None,
    degenerate_reasons: list[str],
    heldout_error: float | None,
    heldout_points: int | None,
) -> Diagnostics:
    r = log_residuals(form, theta, points)
    return Diagnostics(
        residual_rms=float(np.sqrt(np.mean(r * r))),
        residual_max=float(np.max(np.abs(r))),
        residual_mean=float(np.mean(r)),
        heldout_error=heldout_error,
        heldout_points=heldout_points,
        compute_range=[float(points.compute.min()), float(points.compute.max())],
        data_ranges=data_ranges(points.N, points.X if form.x_name == "D" else None),
        degenerate=bool(degenerate_reasons),
        at_bounds=at_bounds(form, theta, bounds),
    )
