"""IsoFLOP estimation (Hoffmann et al.'s Approach 2): profiles of equal compute, the parabola vertex of each,
and the power law N_opt ∝ C^a through the vertices, with standard errors throughout.

Approach 2 assumes no loss-law form: at a fixed budget C the loss against ln N is locally a parabola whose
vertex is the compute-optimal size, and the vertices of several budgets lie on a line in (ln C, ln N). That
makes it the form-free reference for the allocation next to a fitted law's ``N_opt(C)``, and the only one
that stays right when the law's form is wrong but the points have isoFLOP structure.

Every function is closed-form numpy on numbers (no fitting engine, no store), so a caller can simulate it
thousands of times (tests/test_isoflop.py, tests/test_check_stats.py) and the verifier judges its IsoFLOP
experiments with the same code (verifier.check.experiment; verifier.check.stats for the design's power).

API::

    vertex(sizes, losses, rel_sigma) -> Vertex          one profile: weighted parabola in ln N, vertex ± se
    vertex_se(x, coef, sigma) -> float                  the vertex's delta-method error for a given design
    exponent(budgets, vertices) -> Exponent             ln N_opt = a·ln C + b by weighted least squares;
                                                        Exponent.n_opt(C) -> NOpt | None
    profiles(N, D, L, tol=0.1) -> list[Profile]         group arbitrary points into IsoFLOP profiles
                                                        Profile: budget (geometric mean C), indices
    approach2(N, D, L, rel_sigma, tol=0.1) -> Approach2 | None
                                                        a vertex per profile, then the line through them
                                                        (None: fewer than 2 determined vertices)
                                                        Approach2: vertices (ProfileVertex: budget, n, se,
                                                        reason, indices, vertex), a, se, intercept, cov,
                                                        rel_sigma; Approach2.n_opt(C) -> NOpt
    NOpt(n, ln_se)                                      N_opt and the standard error of ln N_opt;
                                                        NOpt.interval(z=1.96) -> (low, high)
    allocation_backtest(N, D, L, rel_sigma, fit_and_optimum=None, tol=0.1) -> AllocationBacktest
                                                        rolling origin over the profiles: |ln N* error| of
                                                        Approach 2 and, given fit_and_optimum(train_mask) ->
                                                        (C -> N), of a loss-law form on the same vertices
                                                        AllocationBacktest: folds (BacktestFold: origin,
                                                        budgets, approach2, law), approach2, law (means)

Compute is C = 6·N·D (Hoffmann's convention, fits.accounting's "6N"). Noise is the caller's: ``rel_sigma`` is
one run's relative loss noise (from seed repeats), because a profile of 5-7 points leaves too few degrees of
freedom to estimate it from the parabola's own residuals.

The parabola is an approximation: a Chinchilla profile in ln N is a sum of two exponentials, slightly
asymmetric when α ≠ β. Fitted over sizes 1/4-4× N_opt, each vertex sits about 0.4% low in N (Epoch's
coefficients), the same at every budget because the profile has one shape in ln(N/N_opt), so the exponent is
unbiased and only the level moves, by much less than 0.5% loss noise resolves (tests/test_isoflop.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from fits import accounting
from fits.errors import BadInput

__all__ = [
    "Z95",
    "AllocationBacktest",
    "Approach2",
    "BacktestFold",
    "Exponent",
    "NOpt",
    "Profile",
    "ProfileVertex",
    "Vertex",
    "allocation_backtest",
    "approach2",
    "exponent",
    "profiles",
    "vertex",
    "vertex_se",
]

Z95 = NormalDist().inv_cdf(0.975)
MIN_SIZES = 3
"""A parabola needs three distinct sizes; fewer give no vertex."""
DEFAULT_TOL = 0.1
"""Points within ±10% of a profile's budget count as one budget: real IsoFLOP grids round N and D, so their
C scatter by a few percent, while the budgets of a design are usually a factor 2 or more apart."""


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


# ------------------------------------------------------------------------------------ arbitrary points


def _columns(N: npt.ArrayLike, D: npt.ArrayLike, L: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cols = {}
    for field, v in (("N", N), ("D", D), ("loss", L)):
        a = np.asarray(v, dtype=float).reshape(-1)
        bad = np.flatnonzero(~(np.isfinite(a) & (a > 0)))
        if bad.size:
            raise BadInput(f"must be finite and positive; row {int(bad[0])} is {a[bad[0]]!r}", field=field)
        cols[field] = a
    n, d, loss = cols["N"], cols["D"], cols["loss"]
    if not n.size == d.size == loss.size:
        raise BadInput(f"N, D and loss differ in length ({n.size}, {d.size}, {loss.size})", field="D")
    return n, d, loss


def _compute(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    # Hoffmann's C = 6·N·D: the isoFLOP budgets of published grids are stated in it (no attention term).
    return np.asarray(accounting.flops_per_token(n, 0, 0, 0, "6N")) * d


def _check_tol(tol: float) -> float:
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise BadInput(f"relative tolerance must lie in (0, 1), got {tol!r}", field="tol")
    return float(tol)


def _check_sigma(rel_sigma: float) -> float:
    if not (isinstance(rel_sigma, (int, float)) and math.isfinite(rel_sigma) and rel_sigma > 0):
        raise BadInput(f"one run's relative loss noise must be positive, got {rel_sigma!r}", field="rel_sigma")
    return float(rel_sigma)


@dataclass(frozen=True)
class Profile:
    """Points of one compute budget."""

    budget: float
    """Geometric mean of the points' C = 6·N·D."""
    indices: tuple[int, ...]
    """Rows of the input, in increasing N."""


def profiles(N: npt.ArrayLike, D: npt.ArrayLike, L: npt.ArrayLike, tol: float = DEFAULT_TOL) -> list[Profile]:
    """The IsoFLOP profiles among arbitrary points, in increasing budget.

    A profile is a set of points whose C span at most a factor (1+tol)² (each within ±tol of the middle of
    their range) and that holds at least 3 distinct N. Taken one at a time, the window of C with the most
    distinct sizes (then the most points, then the narrowest) first, so a stray point just below a profile
    does not cut it in two as a scan from the smallest C would. Points in no such window (a grid of a few sizes
    × many token counts, a lone run) belong to no profile: their C coincide by accident, not by design, and a
    parabola through 2 sizes has no vertex. ``L`` is checked with the rest but not used."""
    n, d, _ = _columns(N, D, L)
    span = 2.0 * math.log1p(_check_tol(tol))
    lc = np.log(_compute(n, d))
    left = np.argsort(lc, kind="stable")
    out: list[Profile] = []
    while left.size:
        sizes, start, stop = _densest(lc[left], n[left], span)
        if sizes < MIN_SIZES:
            break
        rows = left[start:stop]
        rows = rows[np.argsort(n[rows], kind="stable")]
        out.append(Profile(budget=float(math.exp(lc[rows].mean())), indices=tuple(int(r) for r in rows)))
        left = np.concatenate([left[:start], left[stop:]])
    return sorted(out, key=lambda p: p.budget)


def _densest(lc: np.ndarray, n: np.ndarray, span: float) -> tuple[int, int, int]:
    """(distinct sizes, start, stop) of the best window [lc[start], lc[start] + span] of sorted ``lc``."""
    best: tuple[int, int, float] = (0, 0, 0.0)
    where = (0, 0)
    counts: dict[float, int] = {}
    stop = 0
    for start in range(lc.size):
        while stop < lc.size and lc[stop] - lc[start] <= span:
            counts[n[stop]] = counts.get(n[stop], 0) + 1
            stop += 1
        key = (len(counts), stop - start, -(lc[stop - 1] - lc[start]))
        if key > best:
            best, where = key, (start, stop)
        counts[n[start]] -= 1
        if not counts[n[start]]:
            del counts[n[start]]
    return best[0], where[0], where[1]


@dataclass(frozen=True)
class ProfileVertex:
    """One profile's vertex at its budget."""

    budget: float
    vertex: Vertex
    indices: tuple[int, ...]
    """Rows of the input the parabola went through."""

    @property
    def n(self) -> float | None:
        """N* at the vertex (None where the profile gives none)."""
        return self.vertex.n

    @property
    def se(self) -> float | None:
        """Standard error of ln N*."""
        return self.vertex.se

    @property
    def reason(self) -> str:
        """Why the vertex is not used ("" where it is)."""
        return self.vertex.reason

    @property
    def determined(self) -> bool:
        return self.vertex.determined


def _vertices(n: np.ndarray, loss: np.ndarray, found: Sequence[Profile], rel_sigma: float) -> list[ProfileVertex]:
    return [ProfileVertex(p.budget, vertex(n[list(p.indices)], loss[list(p.indices)], rel_sigma), p.indices)
            for p in found]


@dataclass(frozen=True)
class Approach2:
    """ln N_opt = a·ln C + b through the vertices of the IsoFLOP profiles."""

    vertices: tuple[ProfileVertex, ...]
    """Every profile's vertex, the undetermined ones with their reason (they do not enter the line)."""
    a: float
    se: float
    """Standard error of ``a``."""
    intercept: float
    cov: tuple[tuple[float, float], tuple[float, float]]
    """Covariance of (intercept, a) from the weighted least squares."""
    rel_sigma: float

    def n_opt(self, C: float) -> NOpt:
        """N_opt at budget ``C`` with the standard error of ln N_opt (the line's prediction variance)."""
        return _on_line(self.intercept, self.a, self.cov, C)


def _approach2(vs: Sequence[ProfileVertex], rel_sigma: float) -> Approach2 | None:
    e = exponent([v.budget for v in vs], [v.vertex for v in vs])
    if e.a is None or e.se is None or e.intercept is None or e.cov is None:
        return None
    return Approach2(vertices=tuple(vs), a=e.a, se=e.se, intercept=e.intercept, cov=e.cov, rel_sigma=rel_sigma)


def approach2(N: npt.ArrayLike, D: npt.ArrayLike, L: npt.ArrayLike, rel_sigma: float,
              tol: float = DEFAULT_TOL) -> Approach2 | None:
    """Approach 2 on arbitrary (N, D, loss) points: a vertex per IsoFLOP profile (``profiles``), each a
    parabola in ln N weighted by ``rel_sigma``·loss, then the weighted line through the determined vertices.
    None when fewer than 2 profiles give a determined vertex: the points have no isoFLOP structure to speak
    of, and the allocation must come from a loss law."""
    n, d, loss = _columns(N, D, L)
    rel_sigma = _check_sigma(rel_sigma)
    return _approach2(_vertices(n, loss, profiles(n, d, loss, tol), rel_sigma), rel_sigma)


# ------------------------------------------------------------------------------------ backtest


@dataclass(frozen=True)
class BacktestFold:
    """One origin: fitted on the profiles below ``origin``, scored on every later determined vertex."""

    origin: float
    """Budget of the first held-out profile; the training points are those with smaller C."""
    budgets: tuple[float, ...]
    """Budgets of the held-out vertices scored."""
    approach2: tuple[float, ...]
    """|ln N_opt predicted by the Approach-2 line − ln vertex| per held-out budget."""
    law: tuple[float, ...] | None
    """The same for the loss-law form's compute-optimal N (None without ``fit_and_optimum``)."""


@dataclass(frozen=True)
class AllocationBacktest:
    folds: tuple[BacktestFold, ...]
    approach2: float | None
    """Mean |ln error| over every (fold, held-out vertex) pair; None without a fold."""
    law: float | None
    """The same for the loss-law form, on the same pairs."""


def allocation_backtest(N: npt.ArrayLike, D: npt.ArrayLike, L: npt.ArrayLike, rel_sigma: float,
                        fit_and_optimum: Callable[[np.ndarray], Callable[[float], float] | None] | None = None,
                        tol: float = DEFAULT_TOL, origins: int | None = None) -> AllocationBacktest:
    """Rolling-origin backtest of the allocation, scored against the observed IsoFLOP vertices (``origins``:
    at most this many origins, evenly spaced among those possible, the last always kept; each costs the
    caller's form a fit).

    The profiles sorted by budget; for each origin k with at least 2 determined vertices among profiles
    0..k-1, the Approach-2 line through those predicts ln N* of every later determined vertex. Given
    ``fit_and_optimum(train_mask)`` — fit a loss-law form on the points where ``train_mask`` is True (C below
    the origin's first held-out point) and return its compute-optimal N as a function of C, or None where it
    cannot be fitted (that origin is then skipped for both) — the form is scored on the same vertices, so the
    two numbers compare like with like. Scored against vertices, not losses,
    because the allocation is what Approach 2 estimates; a form can predict the loss well and the optimum badly
    (a flat profile)."""
    n, d, loss = _columns(N, D, L)
    rel_sigma = _check_sigma(rel_sigma)
    compute = _compute(n, d)
    vs = _vertices(n, loss, profiles(n, d, loss, tol), rel_sigma)
    folds = []
    ks = list(range(2, len(vs)))
    if origins is not None and len(ks) > origins > 0:
        ks = sorted({ks[round(float(i))] for i in np.linspace(0, len(ks) - 1, origins)})
    for k in ks:
        line = _approach2(vs[:k], rel_sigma)
        later = [v for v in vs[k:] if v.determined]
        if line is None or not later:
            continue
        observed = np.log([v.n for v in later])
        a2 = np.abs(np.log([line.n_opt(v.budget).n for v in later]) - observed)
        law = None
        if fit_and_optimum is not None:
            optimum = fit_and_optimum(compute < compute[list(vs[k].indices)].min())
            if optimum is None:  # the form cannot be fitted on this origin's points: score both on the others
                continue
            law = tuple(float(x) for x in np.abs(np.log([float(optimum(v.budget)) for v in later]) - observed))
        folds.append(BacktestFold(origin=vs[k].budget, budgets=tuple(v.budget for v in later),
                                  approach2=tuple(float(x) for x in a2), law=law))
    pairs = [x for f in folds for x in f.approach2]
    law_pairs = [x for f in folds for x in (f.law or ())]
    return AllocationBacktest(folds=tuple(folds), approach2=float(np.mean(pairs)) if pairs else None,
                              law=float(np.mean(law_pairs)) if law_pairs else None)
