"""The statistics a check is judged by: predictive distributions, seed noise, coverage, IsoFLOP vertices with
intervals, the allocation exponent and the power of its test.

Everything here is numpy/scipy on numbers (no runs, no fits), so the design's power can be computed before
anything trains and tested against a simulation (tests/test_check_stats.py).

* A prediction is a normal distribution of the final loss (``Predictive``): the fit's uncertainty (spread of
  the bootstrap refits' predictions) and the run-to-run noise of one run (``seed_sigma``, from repeating ladder
  points with another seed) added in quadrature. Its 80% and 95% intervals are what a check pre-registers.
* An IsoFLOP profile is a parabola in ln N fitted by weighted least squares; its vertex has a delta-method
  standard error, and the vertices of several budgets give the exponent a of N_opt ∝ C^a with its own. That
  estimation lives in fits.fitting.isoflop (the fitter offers Approach 2 as an allocation of its own); this
  module keeps what only a check needs: the error a design *will* have (``exponent_se``, ``design_se``).
* ``power`` is the power of the two-sided 5% test that rejects an alternative exponent when the plan's
  is true, for a design (budgets, sizes, profile curvature, noise), by the same delta method.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from fits.fitting.isoflop import Z95, exponent, vertex, vertex_se

Z80 = float(sps.norm.ppf(0.9))
POWER_REQUIRED = 0.8
"""A test whose design has less power than this cannot pass: its verdict is "inconclusive"."""


@dataclass(frozen=True)
class Predictive:
    """A normal predictive distribution."""

    mean: float
    sigma: float

    def interval(self, level: float) -> tuple[float, float]:
        z = float(sps.norm.ppf(0.5 + level / 2))
        return self.mean - z * self.sigma, self.mean + z * self.sigma

    def z(self, x: float) -> float:
        return (x - self.mean) / self.sigma if self.sigma > 0 else math.inf * np.sign(x - self.mean)

    def log_density(self, x: float) -> float:
        return float(sps.norm.logpdf(x, self.mean, self.sigma))


def combine(mean: float, fit_sigma: float, noise_sigma: float) -> Predictive:
    """A fit's prediction with its own spread and one run's noise, in quadrature."""
    return Predictive(mean=mean, sigma=math.hypot(fit_sigma, noise_sigma))


def seed_sigma(pairs: Sequence[tuple[float, float]]) -> float | None:
    """Relative run-to-run noise of one run's final loss from pairs that differ only in the seed:
    sqrt(mean((ln a - ln b)²) / 2) (the difference of two runs has twice one run's variance)."""
    d = [math.log(a / b) for a, b in pairs if a and b and a > 0 and b > 0]
    if not d:
        return None
    return math.sqrt(sum(x * x for x in d) / (2 * len(d)))


@dataclass(frozen=True)
class Coverage:
    inside: int
    total: int
    level: float
    p_value: float | None
    """Two-sided exact binomial test of ``inside`` of ``total`` against ``level``."""
    log_score: float | None
    """Mean log predictive density of the observations (higher is better)."""


def coverage(inside: Sequence[bool], level: float, log_densities: Sequence[float] = ()) -> Coverage:
    k, n = int(sum(bool(x) for x in inside)), len(inside)
    p = float(sps.binomtest(k, n, level).pvalue) if n else None
    score = float(np.mean(log_densities)) if len(log_densities) else None
    return Coverage(inside=k, total=n, level=level, p_value=p, log_score=score)


def p_two_sided(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z: how surprising an observation z sigmas off its prediction is."""
    return float(2.0 * sps.norm.sf(abs(z))) if math.isfinite(z) else 0.0


def p_one_sided(z: float) -> float:
    """P(Z >= z): for items that fail in one direction only (a swept value beating the rule's)."""
    return float(sps.norm.sf(z)) if math.isfinite(z) else (0.0 if z > 0 else 1.0)


def p_rms(rms: float, points: int) -> float:
    """P(RMS of ``points`` independent standard normals >= rms) (chi-square with ``points`` degrees of freedom).
    Points along one curve are correlated, so this overstates the evidence of a long curve's misfit; the curve
    items are judged by their own rms <= 2 rule, and enter the family-wise test with this p."""
    return float(sps.chi2.sf(points * rms * rms, points)) if points > 0 and math.isfinite(rms) else 1.0


def coverage_low_p(inside: int, total: int, level: float) -> float | None:
    """One-sided exact binomial p that intervals of nominal ``level`` cover less often than that."""
    return float(sps.binomtest(inside, total, level, alternative="less").pvalue) if total else None


# ---------------------------------------------------------------------------------------------- IsoFLOP


def exponent_se(budgets: Sequence[float], factors: Sequence[float], curvature: Sequence[float],
                loss: Sequence[float], rel_sigma: float) -> float:
    """The standard error the exponent of a design will have: IsoFLOP profiles at ``budgets``, sizes
    ``factors``·N_opt each, a true profile of ``curvature`` (d²L/d(ln N)²/2) and loss level ``loss`` per budget,
    and relative noise ``rel_sigma`` per run (the delta method at the true parabola, as ``vertex`` computes)."""
    x = np.log(np.asarray(factors, dtype=float))
    return design_se(budgets, [(x, 0.0, k, level) for k, level in zip(curvature, loss, strict=True)], rel_sigma)


def design_se(budgets: Sequence[float], profiles: Sequence[tuple[Sequence[float], float, float, float]],
              rel_sigma: float) -> float:
    """``exponent_se`` for profiles given as (ln sizes, ln N_opt, curvature, loss level) each: sizes that are
    not centred on the optimum, or fewer of them, give the vertex a larger error. A profile of fewer than 3
    distinct sizes gives no vertex and drops out; with fewer than 2 vertices left the error is infinite."""
    var, kept = [], []
    for c, (ln_sizes, ln_opt, kappa, level) in zip(budgets, profiles, strict=True):
        x = np.asarray(ln_sizes, dtype=float)
        if len(set(x.tolist())) < 3:
            continue
        centre = float(x.mean())
        xc = x - centre
        v0 = ln_opt - centre
        coef = np.array([level + kappa * v0 * v0, -2 * kappa * v0, kappa])
        sigma = np.full_like(xc, rel_sigma * level)
        var.append(vertex_se(xc, coef, sigma) ** 2)
        kept.append(c)
    if len(kept) < 2:
        return math.inf
    lx = np.log(np.asarray(kept, dtype=float))
    w = 1.0 / np.asarray(var)
    X = np.stack([np.ones_like(lx), lx], axis=1)
    return float(math.sqrt(np.linalg.inv(X.T @ (X * w[:, None]))[1, 1]))


def power(se: float, difference: float, z: float = Z95) -> float:
    """Power of the two-sided test (level 2·(1-Φ(z))) to reject an exponent ``difference`` away from the truth
    when the estimate is normal with standard error ``se``."""
    if not se > 0:
        return 1.0
    if not math.isfinite(se):
        return 0.0
    shift = abs(difference) / se
    return float(sps.norm.cdf(shift - z) + sps.norm.cdf(-shift - z))


def simulate_rejections(budgets: Sequence[float], factors: Sequence[float], curvature: float, level: float,
                        rel_sigma: float, a_true: float, a_alt: float, *, repeats: int,
                        seed: int = 0) -> float:
    """Share of simulated experiments (parabolic IsoFLOP profiles with vertices on N_opt ∝ C^a_true, normal
    noise) whose fitted exponent rejects ``a_alt`` at 5%: what ``power`` predicts."""
    rng = np.random.default_rng(seed)
    lc = np.log(np.asarray(budgets, dtype=float))
    fx = np.log(np.asarray(factors, dtype=float))
    rejected = 0
    for _ in range(repeats):
        vs = []
        for c in lc:
            ln_opt = a_true * (c - lc[0])
            ln_n = ln_opt + fx
            y = level + curvature * (ln_n - ln_opt) ** 2
            y = y + rng.normal(0.0, rel_sigma * level, size=y.shape)
            vs.append(vertex(np.exp(ln_n), y, rel_sigma))
        e = exponent(np.exp(lc), vs)
        if e.a is not None and abs(e.a - a_alt) > Z95 * e.se:
            rejected += 1
    return rejected / repeats
