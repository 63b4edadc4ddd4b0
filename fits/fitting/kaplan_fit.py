"""Kaplan et al. 2020 joint laws as fitting forms (kaplan2020.md §4, §6).

kaplan-nd, eq 1.5:  L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D
    ln L = alpha_D·LSE(p·(c_N − ln N), c_D − ln D),  p = alpha_N/alpha_D,  θ = (c_N, c_D, alpha_N, alpha_D)
kaplan-ns, eq 1.6:  L(N, S_min) = (N_c/N)^alpha_N + (S_c/S_min)^alpha_S
    ln L = LSE(alpha_N·(c_N − ln N), alpha_S·(c_S − ln S_min)),  θ = (c_N, c_S, alpha_N, alpha_S)
with c_N = ln N_c, c_D = ln D_c, c_S = ln S_c. Both are fitted with the same summed log-space Huber objective
as the Chinchilla form, so objectives and diagnostics read the same across families.

kaplan-ns is fitted on loss curves: each point (N, B, step, loss) after warm-up becomes (N, S_min, loss) with
S_min = step/(1 + B_crit(L)/B) and B_crit(L) = B_star/L^(1/alpha_B) (eq 5.4). ``batch="published"`` uses
Kaplan's B_star and alpha_B; they are measured in GPT-2 BPE tokens at WebText2 losses, and on another tokenizer
(bytes: a lower loss per token, so a far larger B_crit(L)) they turn every step into a tiny S_min and the fit
collapses. ``batch="fitted"`` profiles B_star and alpha_B on the curves themselves (``profile_batch``) and
stores them with the fit, so every prediction from it converts steps the way the fit did.
"""

from __future__ import annotations

import itertools
import math
from abc import abstractmethod
from typing import Unpack

import numpy as np
import numpy.typing as npt

from fits.errors import BadInput
from fits.fitting.engine import FitOptions, fit_with
from fits.fitting.form import Data, Form, Points, Problem, as_group, huber_parts, linear_max, nd_points
from fits.fitting.multistart import coarse_stage, distinct
from fits.laws import kaplan2020 as law
from fits.result import FitResult

LN10 = math.log(10.0)
GRID_LOG10_SCALE = (8.0, 11.0, 14.0, 17.0, 20.0)
"""N_c, D_c: Kaplan's are 6.4e13 and 1.8e13; small models on other tokenizers land orders of magnitude away."""
GRID_LOG10_S_C = (1.0, 2.0, 3.0, 4.0, 5.0)
GRID_EXPONENT = (0.03, 0.07, 0.15, 0.3, 0.6)
GRID_ALPHA_S = (0.25, 0.5, 1.0, 2.0)

SCALE_BOUNDS = (1e2, 1e20)
"""N_c, D_c: the range fits.laws declares for the family. Kaplan's are ~1e13 (GPT-2 BPE, 1e6-1e9 parameters);
proxy models of 1e4-1e5 parameters on bytes put them near their own sizes and token counts."""
S_C_BOUNDS = (1.0, 1e8)
EXPONENT_BOUNDS = (0.01, 1.0)
"""alpha_N, alpha_D: Kaplan's are 0.076 and 0.095-0.103 (no irreducible term, so they are small). Below 0.01
the law is flat to within 7% over three decades and its scale constant runs away; above 1 no language-model
measurement has come close."""
ALPHA_S_BOUNDS = (0.05, 3.0)
"""Kaplan's alpha_S is 0.76; the upper end matches fits.laws' spec."""
UNRESOLVED_TERM = 0.005


def _grid(*axes: tuple[float, ...]) -> np.ndarray:
    return np.array(list(itertools.product(*axes)), dtype=float)


class _TwoTermForm(Form):
    """ln L = outer·LSE(off_N − slope_N·ln N, off_X − slope_X·ln X): the shape both Kaplan forms share.

    θ is (ln scale_N, ln scale_X, exponent_N, exponent_X); ``theta_coefficient`` names the coefficient of each
    coordinate, ``grid_axes`` its starts (log10 for the two scales) and ``box`` its bounds in coefficient units.
    """

    grid_axes: tuple[tuple[float, ...], ...]
    box: tuple[tuple[float, float], ...]

    def grid(self) -> np.ndarray:
        scales = tuple(tuple(v * LN10 for v in axis) for axis in self.grid_axes[:2])
        return _grid(*scales, *self.grid_axes[2:])

    def to_coefficients(self, theta: np.ndarray) -> dict[str, float]:
        values = [float(v) for v in theta]
        by_name = dict(zip(self.theta_coefficient, [math.exp(v) for v in values[:2]] + values[2:], strict=True))
        return {name: by_name[name] for name in self.coefficient_names}

    def to_theta(self, c: dict[str, float]) -> np.ndarray:
        scale_n, scale_x, exp_n, exp_x = self.theta_coefficient
        return np.array([math.log(c[scale_n]), math.log(c[scale_x]), c[exp_n], c[exp_x]])

    def bounds(self, points: Points) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = (np.array(side, dtype=float) for side in zip(*self.box, strict=True))
        lo[:2], hi[:2] = np.log(lo[:2]), np.log(hi[:2])
        return lo, hi

    @abstractmethod
    def terms(self, c_n: np.ndarray, c_x: np.ndarray, a_n: np.ndarray, a_x: np.ndarray) -> tuple[np.ndarray, ...]:
        """(off_N, slope_N, off_X, slope_X, outer or None) of lse_fg for rows of θ."""

    @abstractmethod
    def last_gradient(self, theta: np.ndarray, gv: np.ndarray, g_alpha_n: np.ndarray,
                      weighted_lse: np.ndarray | None) -> np.ndarray:
        """The gradient in the X exponent, which is where the two forms' chain rules differ."""

    def chunk_fg(
        self, theta: np.ndarray, data: Data, weights: np.ndarray | None, work: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        c_n, c_x, a_n, a_x = theta.T
        f, gu, gv, weighted_lse = self.lse_fg(data, weights, work, *self.terms(c_n, c_x, a_n, a_x))
        g = np.empty((theta.shape[0], 4), dtype=theta.dtype)
        g[:, 0] = a_n * gu[:, 0]
        g[:, 1] = a_x * gv[:, 0]
        g[:, 2] = c_n * gu[:, 0] - gu[:, 1]
        g[:, 3] = self.last_gradient(theta, gv, g[:, 2], weighted_lse)
        return f, g

    @staticmethod
    def lse_fg(
        data: Data, weights: np.ndarray | None, work: list[np.ndarray], off_n: np.ndarray, slope_n: np.ndarray,
        off_x: np.ndarray, slope_x: np.ndarray, outer: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Objective of the two-term log-sum-exp, the H'-weighted sums of each term against [1, ln N] and
        [1, ln X], and (with ``outer``) Σ w·H'·outer·LSE, for the chain rule through ``outer``."""
        u, v, s, r, c, cw = work
        one = np.ones_like(off_n)
        m = np.maximum(linear_max(off_n, slope_n, data.ln_n_range), linear_max(off_x, slope_x, data.ln_x_range))
        np.matmul(np.stack([off_n - m, -slope_n], axis=1), data.one_ln_n_t, out=u)
        np.exp(u, out=u)
        np.matmul(np.stack([off_x - m, -slope_x], axis=1), data.one_ln_x_t, out=v)
        np.exp(v, out=v)
        np.add(u, v, out=s)
        np.log(s, out=r)
        if outer is not None:
            r *= outer[:, None]
        np.matmul(np.stack([m if outer is None else outer * m, one], axis=1), data.zero_neg_ln_l, out=c)
        r += c  # r = outer·LSE − ln(observed)
        f, cw = huber_parts(r, weights, c, cw)
        weighted_lse = None if outer is None else np.einsum("ij,ij->i", cw, r) + cw @ data.ln_l
        cw /= s
        u *= cw
        v *= cw
        return f, u @ data.one_ln_n, v @ data.one_ln_x, weighted_lse


class KaplanNDForm(_TwoTermForm):
    law = "kaplan-nd"
    theta_names = ("ln N_c", "ln D_c", "alpha_N", "alpha_D")
    coefficient_names = ("alpha_N", "alpha_D", "N_c", "D_c")
    theta_coefficient = ("N_c", "D_c", "alpha_N", "alpha_D")
    x_name = "D"
    grid_axes = (GRID_LOG10_SCALE, GRID_LOG10_SCALE, GRID_EXPONENT, GRID_EXPONENT)
    box = (SCALE_BOUNDS, SCALE_BOUNDS, EXPONENT_BOUNDS, EXPONENT_BOUNDS)

    def log_predict(self, theta: np.ndarray, data: Data) -> np.ndarray:
        c_n, c_d, a_n, a_d = (theta[:, i : i + 1] for i in range(4))
        return a_d * np.logaddexp(a_n / a_d * (c_n - data.ln_n), c_d - data.ln_x)

    def terms(self, c_n: np.ndarray, c_d: np.ndarray, a_n: np.ndarray, a_d: np.ndarray) -> tuple[np.ndarray, ...]:
        p = a_n / a_d
        return p * c_n, p, c_d, np.ones_like(c_d), a_d

    def last_gradient(self, theta: np.ndarray, gv: np.ndarray, g_alpha_n: np.ndarray,
                      weighted_lse: np.ndarray | None) -> np.ndarray:
        _, _, a_n, a_d = theta.T
        return weighted_lse / a_d - a_n / a_d * g_alpha_n

    def predict(self, coefficients: dict[str, float], N: np.ndarray, X: np.ndarray) -> np.ndarray:
        return np.asarray(law.loss_nd(N, X, **coefficients), dtype=float)

    def n_opt(self, c: dict[str, float], budget: float) -> float:
        """Minimises L(N, C/(6N)): N^(p+1) = p·N_c^p·C/(6·D_c), p = alpha_N/alpha_D."""
        p = c["alpha_N"] / c["alpha_D"]
        return float((p * c["N_c"] ** p * budget / (6.0 * c["D_c"])) ** (1.0 / (p + 1.0)))

    def degeneracy(self, c: dict[str, float], points: Points) -> list[str]:
        n_term = (c["N_c"] / points.N) ** (c["alpha_N"] / c["alpha_D"])
        d_term = c["D_c"] / points.X
        return _unresolved(n_term, d_term, "N", "D")


class KaplanNSForm(_TwoTermForm):
    law = "kaplan-ns"
    theta_names = ("ln N_c", "ln S_c", "alpha_N", "alpha_S")
    coefficient_names = ("alpha_N", "alpha_S", "N_c", "S_c")
    theta_coefficient = ("N_c", "S_c", "alpha_N", "alpha_S")
    x_name = "S_min"
    grid_axes = (GRID_LOG10_SCALE, GRID_LOG10_S_C, GRID_EXPONENT, GRID_ALPHA_S)
    box = (SCALE_BOUNDS, S_C_BOUNDS, EXPONENT_BOUNDS, ALPHA_S_BOUNDS)

    def log_predict(self, theta: np.ndarray, data: Data) -> np.ndarray:
        c_n, c_s, a_n, a_s = (theta[:, i : i + 1] for i in range(4))
        return np.logaddexp(a_n * (c_n - data.ln_n), a_s * (c_s - data.ln_x))

    def terms(self, c_n: np.ndarray, c_s: np.ndarray, a_n: np.ndarray, a_s: np.ndarray) -> tuple[np.ndarray, ...]:
        return a_n * c_n, a_n, a_s * c_s, a_s, None

    def last_gradient(self, theta: np.ndarray, gv: np.ndarray, g_alpha_n: np.ndarray,
                      weighted_lse: np.ndarray | None) -> np.ndarray:
        return theta[:, 1] * gv[:, 0] - gv[:, 1]

    def predict(self, coefficients: dict[str, float], N: np.ndarray, X: np.ndarray) -> np.ndarray:
        return np.asarray(law.loss_ns(N, X, **coefficients), dtype=float)

    def n_opt(self, c: dict[str, float], budget: float) -> float:
        """Frontier of App. B (fits.laws.kaplan2020.frontier_ns) for a budget spent at B = B_crit."""
        c_min = float(law.c_min_of_budget(budget))
        return float(law.frontier_ns(c_min, **c).N)

    def degeneracy(self, c: dict[str, float], points: Points) -> list[str]:
        n_term = (c["N_c"] / points.N) ** c["alpha_N"]
        s_term = (c["S_c"] / points.X) ** c["alpha_S"]
        return _unresolved(n_term, s_term, "N", "S_min")


def _unresolved(term_a: np.ndarray, term_b: np.ndarray, a: str, b: str) -> list[str]:
    total = term_a + term_b
    out = []
    for term, name in ((term_a, a), (term_b, b)):
        if np.all(term < UNRESOLVED_TERM * total):
            out.append(f"the {name} term is below {UNRESOLVED_TERM:.1%} of the loss at every point: not resolved")
    return out


def ns_points(
    N: np.ndarray,
    B: np.ndarray,
    step: np.ndarray,
    loss: np.ndarray,
    warmup: np.ndarray | float | None = None,
    *,
    batch: dict[str, float] | None = None,
    group: npt.ArrayLike | None = None,
) -> Points:
    """Loss-curve points → (N, S_min, loss) points for kaplan-ns, dropping those inside warm-up (step ≤ warmup).

    ``batch``: the B_star and alpha_B of eq 5.4 (default: Kaplan's); ``group``: the run of each point."""
    keep, N, B, step, loss = _after_warmup(warmup, N, B, step, loss)
    runs = as_group(group, keep.size)
    s_min = np.asarray(law.s_min(step, B, loss, **(batch or law.batch_coefficients())), dtype=float)
    return Points(N=N, X=s_min.reshape(step.shape), loss=loss, compute=6.0 * N * B * step,
                  group=None if runs is None else runs[keep])


def _after_warmup(warmup: npt.ArrayLike | float | None, N: npt.ArrayLike, B: npt.ArrayLike, step: npt.ArrayLike,
                  loss: npt.ArrayLike) -> tuple[np.ndarray, ...]:
    """(mask of points after warm-up, then N, B, step, loss restricted to them) as float arrays."""
    N, B, step, loss = (np.asarray(a, dtype=float) for a in (N, B, step, loss))
    keep = np.ones(step.shape, dtype=bool) if warmup is None else step > np.asarray(warmup, dtype=float)
    return keep, N[keep], B[keep], step[keep], loss[keep]


BATCH_MODES = ("published", "fitted")
PROFILE_ALPHA_B = (0.21, 1.0, 100.0)
"""alpha_B values profiled: near Kaplan's 0.21, 1, and 100 (B_crit all but constant over a curve's losses)."""
PROFILE_DECADES = 2.0
"""B_crit at the median loss is profiled from this many decades below the smallest batch to as many above the
largest: beyond that S_min barely depends on B_crit (B_crit ≪ B) or only through L (B_crit ≫ B). Kaplan's own
B_star, alpha_B are scored as well, so curves on their tokenizer keep them unless others fit better."""
PROFILE_STEP = 0.25
"""Coarse profile spacing in decades of B_crit; the best point is then refined at a quarter of it."""
PROFILE_STARTS = 8
"""Warm starts carried from one profile point to the next (distinct end points of the previous point)."""


def profile_batch(
    N: npt.ArrayLike, B: npt.ArrayLike, step: npt.ArrayLike, loss: npt.ArrayLike,
    warmup: npt.ArrayLike | float | None = None,
) -> dict[str, float]:
    """B_star and alpha_B of eq 5.4 that let eq 1.6 fit these curves best (lowest bounded objective).

    A profile: for each alpha_B in PROFILE_ALPHA_B and each B_crit at the median loss on a log grid spanning
    the batches used, convert steps to S_min and minimise over the four kaplan-ns coefficients (the batched
    first stage of the multi-start, warm-started from the neighbouring grid point); the best point is refined
    on a finer grid. Curves of different batch sizes at a similar loss are what identify B_crit: with one
    batch size the profile is flat and the result arbitrary, though harmless to that batch's predictions.
    """
    _, N, B, step, loss = _after_warmup(warmup, N, B, step, loss)
    form = KaplanNSForm()
    l_mid = float(np.median(loss))

    def batch_at(log_b: float, alpha_b: float) -> dict[str, float]:
        return {"B_star": float(10.0**log_b * l_mid ** (1.0 / alpha_b)), "alpha_B": alpha_b}

    def score(log_b: float, alpha_b: float, starts: np.ndarray) -> tuple[float, np.ndarray]:
        points = ns_points(N, B, step, loss, batch=batch_at(log_b, alpha_b))
        res = coarse_stage(Problem(form, points, dtype=np.float32), starts, form.bounds(points))
        return float(np.nanmin(res.f)), res.x[distinct(res.x, res.f, PROFILE_STARTS)]

    lo = math.log10(float(B.min())) - PROFILE_DECADES
    hi = math.log10(float(B.max())) + PROFILE_DECADES
    published = law.batch_coefficients()
    log_published = math.log10(published["B_star"] / l_mid ** (1.0 / published["alpha_B"]))
    f, starts = score(log_published, published["alpha_B"], form.grid())
    best = (f, log_published, published["alpha_B"], starts)
    for alpha_b in PROFILE_ALPHA_B:
        starts = form.grid()
        for log_b in np.arange(lo, hi + PROFILE_STEP / 2, PROFILE_STEP):
            f, starts = score(float(log_b), alpha_b, starts)
            if f < best[0]:
                best = (f, float(log_b), alpha_b, starts)
    _, centre, alpha_b, starts = best
    if (centre, alpha_b) == (log_published, published["alpha_B"]):
        return published
    for log_b in centre + PROFILE_STEP / 4 * np.array([-3, -2, -1, 1, 2, 3]):
        f, found = score(float(log_b), alpha_b, starts)
        if f < best[0]:
            best = (f, float(log_b), alpha_b, found)
    return batch_at(best[1], best[2])


def fit_kaplan_nd(
    N: npt.ArrayLike, D: npt.ArrayLike, loss: npt.ArrayLike, *, group: npt.ArrayLike | None = None,
    **options: Unpack[FitOptions],
) -> FitResult:
    """Fit eq 1.5 to early-stopped (N, D, loss) points; options as for fit_chinchilla."""
    return fit_with(KaplanNDForm(), nd_points(N, D, loss, group), options)


def fit_kaplan_ns(
    N: npt.ArrayLike,
    B: npt.ArrayLike,
    step: npt.ArrayLike,
    loss: npt.ArrayLike,
    *,
    warmup: npt.ArrayLike | None = None,
    batch: str = "published",
    group: npt.ArrayLike | None = None,
    **options: Unpack[FitOptions],
) -> FitResult:
    """Fit eq 1.6 to loss curves: points (N, B tokens per step, step, loss); points with step ≤ warmup are
    dropped. ``batch``: "published" converts steps with Kaplan's B_star, alpha_B; "fitted" profiles them on
    these curves (``profile_batch``) and records them among the coefficients (their intervals are not
    bootstrapped: the bootstrap refits the four coefficients at the profiled batch). ``predict`` pairs are
    (N, S_min). Other options as for fit_chinchilla."""
    if batch not in BATCH_MODES:
        raise BadInput(f"unknown {batch!r}; expected one of {', '.join(BATCH_MODES)}", field="batch")
    coefficients = law.batch_coefficients() if batch == "published" else profile_batch(N, B, step, loss, warmup)
    result = fit_with(KaplanNSForm(), ns_points(N, B, step, loss, warmup, batch=coefficients, group=group), options)
    if batch == "fitted":
        result.coefficients.update(coefficients)
        result.message += (f"; batch profiled: B_star {coefficients['B_star']:.4g} tokens, "
                           f"alpha_B {coefficients['alpha_B']:g}")
    return result
