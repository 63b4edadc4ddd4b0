"""IsoFLOP estimation (Hoffmann et al.'s Approach 2): profiles of equal compute, the parabola vertex of each,
and the power law N_opt ∝ C^a through the vertices, with standard errors throughout.

Approach 2 assumes no loss-law form: at a fixed budget C the loss against ln N is locally a parabola whose
vertex is the compute-optimal size, and the vertices of several budgets lie on a line in (ln C, ln N). That
makes it the form-free reference for the allocation next to a fitted law's ``N_opt(C)``.

Every function is closed-form numpy on numbers (no fitting engine, no store), so a caller can simulate it
thousands of times (tests/test_check_stats.py) and the verifier judges its IsoFLOP experiments with the same
code (verifier.check.experiment, verifier.check.stats for the design's power).

API::

    vertex(sizes, losses, rel_sigma) -> Vertex          one profile: weighted parabola in ln N, vertex ± se
    vertex_se(x, coef, sigma) -> float                  the vertex's delta-method error for a given design
    exponent(budgets, vertices) -> Exponent             ln N_opt = a·ln C + b by weighted least squares;
                                                        Exponent.n_opt(C) -> NOpt(n, ln_se)

Noise is the caller's: ``rel_sigma`` is one run's relative loss noise (from seed repeats), because a profile of
5-7 points leaves too few degrees of freedom to estimate it from the parabola's own residuals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats as sps

from fits.errors import BadInput

__all__ = [
    "Z95",
    "Exponent",
    "NOpt",
    "Vertex",
    "exponent",
    "vertex",
    "vertex_se",
]

Z95 = float(sps.norm.ppf(0.975))
MIN_SIZES = 3
"""A parabola needs three distinct sizes; fewer give no vertex."""


# ------------------------------------------------------------------------------------ one profile


@dataclass(frozen=True)
class Vertex:
    ln_n: float | None
    """ln N at the parabola's vertex (None: the profile does not curve upwards)."""
    se: float | None
    """Standard error of ``ln_n``."""
    curvature: float
    reason: str = ""

    @property
    def n(self) -> float | None:
        return None if self.ln_n is None else math.exp(self.ln_n)

    @property
    def determined(self) -> bool:
        """A vertex the exponent may use: found, with an error, and inside (or near) the sizes tried."""
        return self.ln_n is not None and bool(self.se) and not self.reason

    def interval(self, z: float = Z95) -> tuple[float, float] | None:
        if self.ln_n is None or self.se is None:
            return None
        return math.exp(self.ln_n - z * self.se), math.exp(self.ln_n + z * self.se)


def _design(x: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(x), x, x * x], axis=1)


def vertex_se(x: np.ndarray, coef: np.ndarray, sigma: np.ndarray) -> float:
    """Delta-method standard error of the vertex -c1/(2·c2) of a parabola fitted with point errors ``sigma``."""
    X = _design(x)
    w = 1.0 / sigma**2
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    c1, c2 = coef[1], coef[2]
    g = np.array([0.0, -1.0 / (2 * c2), c1 / (2 * c2 * c2)])
    return float(math.sqrt(max(g @ cov @ g, 0.0)))


def vertex(sizes: Sequence[float], losses: Sequence[float], rel_sigma: float) -> Vertex:
    """The vertex of a weighted parabola through (ln N, loss), each loss with error ``rel_sigma``·loss (the
    measured seed noise), and its standard error. With 5 points the parabola's own residuals have 2 degrees of
    freedom, too few to estimate the noise from; a profile that is not a parabola shows as a vertex that
    misses the prediction, not as a wider interval."""
    x = np.log(np.asarray(sizes, dtype=float))
    y = np.asarray(losses, dtype=float)
    if len(x) < MIN_SIZES or len(set(x.tolist())) < MIN_SIZES:
        return Vertex(None, None, 0.0, "fewer than 3 sizes")
    centre = float(x.mean())
    xc = x - centre
    sigma = np.maximum(rel_sigma * y, 1e-9)
    X = _design(xc)
    w = 1.0 / sigma**2
    coef = np.linalg.solve(X.T @ (X * w[:, None]), X.T @ (w * y))
    if coef[2] <= 0:
        return Vertex(None, None, float(coef[2]), "the profile does not curve upwards")
    v = -coef[1] / (2 * coef[2])
    se = vertex_se(xc, coef, sigma)
    reason = ""
    if v < xc.min() - math.log(2) or v > xc.max() + math.log(2):
        reason = "vertex more than 2× outside the sizes tried"
    return Vertex(float(v + centre), se, float(coef[2]), reason)


# ------------------------------------------------------------------------------------ the exponent


class NOpt(NamedTuple):
    """A compute-optimal size with the standard error of its logarithm (errors of a power law are
    multiplicative, so the interval is ``n·exp(±z·ln_se)``)."""

    n: float
    ln_se: float

    def interval(self, z: float = Z95) -> tuple[float, float]:
        return self.n * math.exp(-z * self.ln_se), self.n * math.exp(z * self.ln_se)


@dataclass(frozen=True)
class Exponent:
    a: float | None
    se: float | None
    intercept: float | None = None
    reason: str = ""
    cov: tuple[tuple[float, float], tuple[float, float]] | None = None
    """Covariance of (intercept, a): what the prediction error of ln N_opt at another budget needs."""

    def interval(self, z: float = Z95) -> tuple[float, float] | None:
        if self.a is None or self.se is None:
            return None
        return self.a - z * self.se, self.a + z * self.se

    def n_opt(self, c: float) -> NOpt | None:
        """N_opt at budget ``c`` on the line, with its error (None without a line)."""
        if self.a is None or self.intercept is None or self.cov is None:
            return None
        return _on_line(self.intercept, self.a, self.cov, c)


def _on_line(intercept: float, a: float, cov: tuple[tuple[float, float], tuple[float, float]], c: float) -> NOpt:
    """exp(b + a·ln c) with the regression's prediction error of ln N_opt there, x'·cov·x for x = (1, ln c):
    it grows with the distance from the budgets fitted, which is what extrapolating the line costs."""
    if not (math.isfinite(c) and c > 0):
        raise BadInput(f"a compute budget must be finite and positive, got {c!r}", field="C")
    x = np.array([1.0, math.log(c)])
    return NOpt(math.exp(intercept + a * x[1]), float(math.sqrt(max(x @ np.asarray(cov) @ x, 0.0))))


def exponent(budgets: Sequence[float], vertices: Sequence[Vertex]) -> Exponent:
    """a of ln N_opt = a·ln C + b, weighted by the vertices' errors, with its standard error. Only
    determined vertices count (``Vertex.determined``): one far outside its sizes is an extrapolation of the
    parabola, not a measurement."""
    pts = [(math.log(c), v.ln_n, v.se) for c, v in zip(budgets, vertices, strict=True) if v.determined]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return Exponent(None, None, reason=f"{len(pts)} budget(s) with a determined vertex; the exponent needs 2")
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    w = 1.0 / np.array([p[2] for p in pts]) ** 2
    X = np.stack([np.ones_like(x), x], axis=1)
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    coef = cov @ (X.T @ (w * y))
    return Exponent(float(coef[1]), float(math.sqrt(cov[1, 1])), float(coef[0]),
                    cov=((float(cov[0, 0]), float(cov[0, 1])), (float(cov[1, 0]), float(cov[1, 1]))))
