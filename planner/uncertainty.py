"""Bands around a predicted loss, and how each was made.

Chinchilla fits with intervals on E, A, B, alpha, beta: the interval corners (or independent draws) pair a
steep exponent with a small prefactor the data never allowed, and give bands of ±1 nat at 1e21 FLOPs. The
intervals come from a bootstrap whose resamples all still fit the points, so the band here keeps that
property: draw alpha, beta, E from split normals matching their 95% intervals, solve A and B by weighted
least squares so the law reproduces the point fit on anchor points spread over the fit's compute range
(optimal and 3× off-optimal sizes), keep the draws whose A and B stay inside their intervals and whose
anchor error is at most the fit's residual RMS (1% when unknown), and report the 2.5–97.5 percentiles of
the kept draws at the plan's (N, D). The band is tight inside the fitted range and widens with
extrapolation. Draws are seeded (SEED) and cached per coefficient set.

A fit stored with its bootstrap draws (``fit --law auto`` or ``--predict FILE`` with ``--save``; the draws
resample whole runs, so each is a coefficient set the data allowed jointly) is banded by its predictive interval
instead (fits.fitting.auto.predict_from_fit at 95%: the joint draws, one run's noise, the competitive forms'
spread, the backtest's extrapolation record), and its N_opt and D_opt at a budget get the 2.5–97.5 percentiles
of the draws' compute-optimal allocations (``allocation_interval``). Only a fit without joint draws falls back
on the conditioned marginal draws above (the published sets, which carry intervals only).

Fits without intervals get ±residual RMS·L when the fit records one, else ±0.02 nats, Kaplan's seed-to-seed
loss spread (§4.4). Kaplan's published set is banded by the spread between its two compute-efficient loss
estimates, eq. 1.3 (Table 5) and L(N, S_min) (Table 3), widened by that 0.02.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from fits.fit import Fit
from fits.laws import chinchilla
from planner.plan import LossEstimate

SEED = 20240417
DRAWS = 4000
KEEP = 1000
SEED_NOISE = 0.02
CHINCHILLA_KEYS = ("E", "A", "B", "alpha", "beta")


def _split_normal(rng: np.random.Generator, point: float, low: float, high: float, size: int) -> np.ndarray:
    z = rng.standard_normal(size)
    return np.where(z < 0, point + z * (point - low) / 1.96, point + z * (high - point) / 1.96)


@lru_cache(maxsize=64)
def _chinchilla_draws(
    coefficients: tuple[tuple[str, float], ...],
    intervals: tuple[tuple[str, float, float], ...],
    compute_range: tuple[float, float],
    tolerance: float,
) -> np.ndarray | None:
    """Rows of (E, A, B, alpha, beta) consistent with the point fit on its own compute range."""
    point = dict(coefficients)
    box = {name: (lo, hi) for name, lo, hi in intervals}
    rng = np.random.default_rng(SEED)
    alpha = _split_normal(rng, point["alpha"], *box["alpha"], DRAWS)
    beta = _split_normal(rng, point["beta"], *box["beta"], DRAWS)
    e = _split_normal(rng, point["E"], *box["E"], DRAWS)

    budgets = np.geomspace(compute_range[0], compute_range[1], 5)
    alloc = chinchilla.optimal_allocation(budgets, **point)
    n_anchor = np.concatenate([alloc.N / 3.0, alloc.N, alloc.N * 3.0])
    d_anchor = np.concatenate([alloc.D * 3.0, alloc.D, alloc.D / 3.0])
    l_anchor = np.asarray(chinchilla.loss(n_anchor, d_anchor, **point))

    w = 1.0 / l_anchor  # relative errors
    x1 = n_anchor[None, :] ** -alpha[:, None] * w
    x2 = d_anchor[None, :] ** -beta[:, None] * w
    y = (l_anchor[None, :] - e[:, None]) * w
    a11, a12, a22 = (x1 * x1).sum(1), (x1 * x2).sum(1), (x2 * x2).sum(1)
    b1, b2 = (x1 * y).sum(1), (x2 * y).sum(1)
    det = a11 * a22 - a12 * a12
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (a22 * b1 - a12 * b2) / det
        b = (a11 * b2 - a12 * b1) / det
    residual = y - a[:, None] * x1 - b[:, None] * x2
    rms = np.sqrt((residual**2).mean(1))
    keep = (
        np.isfinite(rms)
        & (rms <= tolerance)
        & (a >= box["A"][0])
        & (a <= box["A"][1])
        & (b >= box["B"][0])
        & (b <= box["B"][1])
    )
    if keep.sum() < 50:
        return None
    rows = np.stack([e, a, b, alpha, beta], axis=1)[keep]
    return rows[:KEEP]


MIN_JOINT_DRAWS = 10
"""Fewer stored draws than this give no usable spread: the marginal fallback is used."""


def joint_band(fit: Fit):
    """A function (N, D) -> (low, high, method) from the fit's stored joint draws, or None without them."""
    pr = fit.diagnostics.predictive
    if pr is None or len(pr.draws) < MIN_JOINT_DRAWS:
        return None
    from fits.fitting.auto import predict_from_fit

    method = (f"95% predictive interval from the fit's {len(pr.draws)} joint bootstrap draws (over runs), one "
              "run's noise" + (f" and {len(pr.alternatives)} competitive forms" if pr.alternatives else ""))

    def band(N: float, D: float) -> tuple[float, float, str]:
        p = predict_from_fit(fit, [N], [D], 0.95)[0]
        return p.low, p.high, method

    return band


def _draw_rows(fit: Fit, coefficients: Mapping[str, float],
               compute_range: tuple[float, float] | None) -> np.ndarray | None:
    """Rows of (E, A, B, alpha, beta): the fit's joint draws when stored, else the conditioned marginal draws."""
    pr = fit.diagnostics.predictive
    if pr is not None and len(pr.draws) >= MIN_JOINT_DRAWS and all(k in pr.draws[0] for k in CHINCHILLA_KEYS):
        return np.array([[d[k] for k in CHINCHILLA_KEYS] for d in pr.draws], dtype=float)
    if compute_range is None or not all(k in fit.intervals and len(fit.intervals[k]) == 2 for k in CHINCHILLA_KEYS):
        return None
    return _chinchilla_draws(
        tuple((k, float(coefficients[k])) for k in CHINCHILLA_KEYS),
        tuple((k, float(fit.intervals[k][0]), float(fit.intervals[k][1])) for k in CHINCHILLA_KEYS),
        (float(compute_range[0]), float(compute_range[1])),
        float(fit.diagnostics.residual_rms or 0.01),
    )


def percentiles(values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """``np.percentile(values, qs)`` (the default linear method, the same floats) from one partial sort: a
    tenth of np.percentile's time on the few hundred draws of a plan, which it computes on every solve."""
    count = len(values)
    where = [(count - 1) * (q / 100.0) for q in qs]
    below = [min(int(h), count - 1) for h in where]
    above = [min(i + 1, count - 1) for i in below]
    ordered = np.partition(values, sorted({*below, *above}))
    out = []
    for h, i, j in zip(where, below, above, strict=True):
        a, b, t = float(ordered[i]), float(ordered[j]), h - i
        out.append(b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t)  # numpy's _lerp, both halves
    return out


def allocation_interval(fit: Fit, coefficients: Mapping[str, float], compute: float,
                        compute_range: tuple[float, float] | None) -> tuple[list[float], list[float]] | None:
    """2.5–97.5% of the compute-optimal N and D at ``compute`` (C = 6·N·D) over the fit's coefficient draws
    (Chinchilla-form coefficients only), or None when the fit has neither joint draws nor intervals."""
    if not all(k in coefficients for k in CHINCHILLA_KEYS):
        return None
    rows = _draw_rows(fit, coefficients, compute_range)
    if rows is None:
        return None
    _, a, b, alpha, beta = rows.T
    with np.errstate(all="ignore"):
        g = (alpha * a / (beta * b)) ** (1.0 / (alpha + beta))
        n = g * (compute / 6.0) ** (beta / (alpha + beta))
    ok = np.isfinite(n) & (n > 0)
    if ok.sum() < MIN_JOINT_DRAWS:
        return None
    n_lo, n_hi = percentiles(n[ok], (2.5, 97.5))
    return [float(n_lo), float(n_hi)], [float(compute / (6.0 * n_hi)), float(compute / (6.0 * n_lo))]


def chinchilla_band(fit: Fit, coefficients: Mapping[str, float], compute_range: tuple[float, float]):
    """A function (N, D) -> (low, high, method): the fit's joint draws when it has them (``joint_band``), else
    conditioned draws for a Chinchilla fit with intervals, else None."""
    joint = joint_band(fit)
    if joint is not None:
        return joint
    if not all(k in fit.intervals and len(fit.intervals[k]) == 2 for k in CHINCHILLA_KEYS):
        return None
    tolerance = fit.diagnostics.residual_rms or 0.01
    draws = _chinchilla_draws(
        tuple((k, float(coefficients[k])) for k in CHINCHILLA_KEYS),
        tuple((k, float(fit.intervals[k][0]), float(fit.intervals[k][1])) for k in CHINCHILLA_KEYS),
        (float(compute_range[0]), float(compute_range[1])),
        float(tolerance),
    )
    if draws is None:
        return None
    e, a, b, alpha, beta = draws.T
    method = (
        f"2.5–97.5% of {len(draws)} coefficient draws within the fit's 95% intervals that reproduce the point "
        f"fit to {100 * tolerance:.1f}% over {compute_range[0]:.0e}–{compute_range[1]:.0e} FLOPs (seed {SEED})"
    )

    lo_rank, hi_rank = round(0.025 * (len(draws) - 1)), round(0.975 * (len(draws) - 1))

    def band(N: float, D: float) -> tuple[float, float, str]:
        losses = np.partition(e + a * N**-alpha + b * D**-beta, (lo_rank, hi_rank))
        return float(losses[lo_rank]), float(losses[hi_rank]), method

    return band


def estimate(mean: float, low: float, high: float, method: str) -> LossEstimate:
    """A LossEstimate whose band holds the point value strictly inside it.

    Coefficient draws can all fall on one side of the point fit (far outside the fitted range the draws'
    spread is skewed); the band then keeps its far side and mirrors it through the point, rather than
    ending at the point (a band whose mean is its own end says nothing about that side).
    """
    if not high > mean:
        high = mean + max(mean - low, SEED_NOISE)
    if not low < mean:
        low = mean - max(high - mean, SEED_NOISE)
    return LossEstimate(mean=mean, low=low, high=high, method=method)


def residual_band(fit: Fit, mean: float) -> LossEstimate:
    rms = fit.diagnostics.residual_rms
    if rms:
        return estimate(mean, mean * (1 - rms), mean * (1 + rms), f"±{100 * rms:.2g}% (the fit's residual RMS)")
    return estimate(
        mean,
        mean - SEED_NOISE,
        mean + SEED_NOISE,
        "±0.02 nats, Kaplan's seed-to-seed loss spread (§4.4); this fit carries no intervals",
    )
