"""The Chinchilla form L = E + A/N^alpha + B/D^beta, fitted the way Hoffmann et al. and Epoch did (laws.md §2).

The paper's coordinates are (a, b, e, alpha, beta) with A = e^a, B = e^b, E = e^e, so that
ln L = LSE(a − alpha·ln N, b − beta·ln D, e), and its start grid is 4,500 points in those coordinates.
The optimiser works in centred coordinates a' = a − alpha·ln N0, b' = b − beta·ln D0 (N0, D0 fixed reference
sizes, the geometric means of the data): a linear change of variables with the same minima and the same start
points, but far better conditioned (a and alpha are nearly collinear when ln N ≈ 20), so L-BFGS needs fewer
steps. a' is the log of the model-size term at N0, which is also what the robust bounds constrain.
"""

from __future__ import annotations

import itertools
import math
from typing import Unpack

import numpy as np
import numpy.typing as npt

from fits.fitting.engine import FitOptions, fit_with
from fits.fitting.form import Data, Form, Points, huber_parts, linear_max, nd_points
from fits.laws import chinchilla as law
from fits.result import FitResult

GRID_A = GRID_B = tuple(np.arange(0.0, 25.0 + 1e-9, 5.0))
GRID_E = tuple(np.arange(-1.0, 1.0 + 1e-9, 0.5))
GRID_EXPONENT = tuple(np.arange(0.0, 2.0 + 1e-9, 0.5))

E_MIN = 0.1
"""Lower bound on E (nats/token). Natural text has an entropy far above this on any tokenizer; an E pushed
to 0 means the power-law terms are absorbing the constant, the classic degenerate fit."""
EXPONENT_BOUNDS = (0.05, 1.5)
"""Published alpha, beta lie in 0.25–0.5 (Hoffmann 0.34/0.28, Epoch 0.35/0.37). Below 0.05 a term changes by
under 40% across the ~3 decades a data set spans and trades off freely against E; above 1.5 it dies within a
decade, so it only fits the curvature of the few smallest points."""
TERM_FLOOR = 1e-3
"""Lower bound (nats) on each penalty term at the reference size N0 / D0: a term smaller than this everywhere
in the data is not measured by it. The upper bound is the largest observed loss, since E > 0."""
ABSURD_SCALE = 1e12
"""A or B above this (fits.laws' upper limit for the family) means scale and exponent ran up a ridge together."""
UNRESOLVED_TERM = 0.005
"""A penalty term below this fraction of the loss at every point is not resolved by the data."""
STEEP_EXPONENT = 1.0
"""No language-model scaling study reports alpha or beta near 1; a fit there is riding a ridge with its scale."""


class ChinchillaForm(Form):
    law = "chinchilla"
    theta_names = ("a'", "b'", "e", "alpha", "beta")
    coefficient_names = ("E", "A", "B", "alpha", "beta")
    theta_coefficient = ("A", "B", "E", "alpha", "beta")
    x_name = "D"

    def __init__(self, ln_n0: float, ln_d0: float) -> None:
        self.ln_n0 = float(ln_n0)
        self.ln_x0 = float(ln_d0)

    @classmethod
    def for_points(cls, points: Points) -> ChinchillaForm:
        return cls(float(np.log(points.N).mean()), float(np.log(points.X).mean()))

    def paper_grid(self) -> np.ndarray:
        """The 4,500 starts of laws.md §2 in the paper's coordinates (a, b, e, alpha, beta)."""
        return np.array(list(itertools.product(GRID_A, GRID_B, GRID_E, GRID_EXPONENT, GRID_EXPONENT)), dtype=float)

    def grid(self) -> np.ndarray:
        g = self.paper_grid()
        g[:, 0] -= g[:, 3] * self.ln_n0
        g[:, 1] -= g[:, 4] * self.ln_x0
        return g

    def to_coefficients(self, theta: np.ndarray) -> dict[str, float]:
        a, b, e, alpha, beta = (float(v) for v in theta)
        return {
            "E": math.exp(e),
            "A": math.exp(a + alpha * self.ln_n0),
            "B": math.exp(b + beta * self.ln_x0),
            "alpha": alpha,
            "beta": beta,
        }

    def to_theta(self, c: dict[str, float]) -> np.ndarray:
        return np.array(
            [
                math.log(c["A"]) - c["alpha"] * self.ln_n0,
                math.log(c["B"]) - c["beta"] * self.ln_x0,
                math.log(c["E"]),
                c["alpha"],
                c["beta"],
            ]
        )

    def bounds(self, points: Points) -> tuple[np.ndarray, np.ndarray]:
        e_low = math.log(E_MIN)
        e_high = max(math.log(float(points.loss.min())), e_low + 1e-6)  # every observed loss lies above E
        t_lo, t_hi = math.log(TERM_FLOOR), math.log(float(points.loss.max()))
        lo = np.array([t_lo, t_lo, e_low, EXPONENT_BOUNDS[0], EXPONENT_BOUNDS[0]])
        hi = np.array([t_hi, t_hi, e_high, EXPONENT_BOUNDS[1], EXPONENT_BOUNDS[1]])
        return lo, hi

    def log_predict(self, theta: np.ndarray, data: Data) -> np.ndarray:
        a, b, e, alpha, beta = (theta[:, i : i + 1] for i in range(5))
        u = a - alpha * data.ln_n
        v = b - beta * data.ln_x
        return np.logaddexp(np.logaddexp(u, v), e)

    def chunk_fg(
        self, theta: np.ndarray, data: Data, weights: np.ndarray | None, work: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        u, v, s, r, c, cw = work
        a, b, e, alpha, beta = theta.T
        # Shift by the row's largest exponent over all points (exact, from the ranges) so exp never overflows.
        m = np.maximum(
            np.maximum(linear_max(a, alpha, data.ln_n_range), linear_max(b, beta, data.ln_x_range)), e
        )
        # Affine terms as (rows × 2) @ (2 × points) products: one BLAS pass instead of outer product + add.
        np.matmul(np.stack([a - m, -alpha], axis=1), data.one_ln_n_t, out=u)
        np.exp(u, out=u)
        np.matmul(np.stack([b - m, -beta], axis=1), data.one_ln_x_t, out=v)
        np.exp(v, out=v)
        pe = np.exp(e - m)
        np.add(u, v, out=s)
        s += pe[:, None]
        np.log(s, out=r)
        np.matmul(np.stack([m, np.ones_like(m)], axis=1), data.zero_neg_ln_l, out=c)
        r += c  # r = ln(pred) − ln(observed)
        f, cw = huber_parts(r, weights, c, cw)
        cw /= s  # d(objective)/d(ln pred), divided by the LSE denominator
        u *= cw
        v *= cw
        gu = u @ data.one_ln_n  # columns: Σ, Σ·ln N
        gv = v @ data.one_ln_x
        g = np.empty((theta.shape[0], 5), dtype=theta.dtype)
        g[:, 0] = gu[:, 0]
        g[:, 1] = gv[:, 0]
        g[:, 2] = pe * (cw @ data.ones)
        g[:, 3] = -gu[:, 1]
        g[:, 4] = -gv[:, 1]
        return f, g

    def predict(self, coefficients: dict[str, float], N: np.ndarray, X: np.ndarray) -> np.ndarray:
        return np.asarray(law.loss(N, X, **coefficients), dtype=float)

    def degeneracy(self, c: dict[str, float], points: Points) -> list[str]:
        reasons = []
        if c["E"] < 1.1 * E_MIN:
            reasons.append(f"E = {c['E']:.3g} ≈ 0: the power-law terms absorb the irreducible loss")
        for name in ("A", "B"):
            if c[name] > ABSURD_SCALE:
                reasons.append(f"{name} = {c[name]:.3g} is absurd (scale and exponent ran up a ridge together)")
        for name in ("alpha", "beta"):
            if c[name] > STEEP_EXPONENT:
                reasons.append(f"{name} = {c[name]:.3g} is implausibly steep (scale and exponent trade off)")
            elif c[name] <= 0:
                reasons.append(f"{name} = {c[name]:.3g}: the term does not fall with size")
        for term, what in (
            (c["A"] / points.N ** c["alpha"], "A/N^alpha"),
            (c["B"] / points.X ** c["beta"], "B/D^beta"),
        ):
            if np.all(term < UNRESOLVED_TERM * points.loss):
                reasons.append(
                    f"{what} is below {UNRESOLVED_TERM:.1%} of the loss at every point: not resolved by the data"
                )
        return reasons

    def n_opt(self, c: dict[str, float], budget: float) -> float:
        """Compute-optimal N at a training budget in FLOPs (C = 6·N·D)."""
        return float(law.optimal_allocation(budget, **c).N)


chinchilla_points = nd_points


def fit_chinchilla(
    N: npt.ArrayLike, D: npt.ArrayLike, loss: npt.ArrayLike, *, group: npt.ArrayLike | None = None,
    **options: Unpack[FitOptions],
) -> FitResult:
    """Fit L = E + A/N^alpha + B/D^beta to (N, D, loss) points by the procedure of laws.md §2.

    Options: ``method="grid"`` is that procedure as published (unbounded, lowest objective wins); "robust"
    (default) adds physical bounds and decides between near-equal minima by held-out extrapolation.
    ``bootstrap`` resamples (default 0, drawn from ``seed``, default 0) give percentile intervals for every
    coefficient and for the derived quantities: the loss at each (N, D) in ``predict`` and N_opt at each FLOP
    budget in ``budgets``; ``progress`` is told of each resample. ``group`` labels the run each point comes
    from when several share one; the bootstrap then resamples runs.
    """
    points = chinchilla_points(N, D, loss, group)
    return fit_with(ChinchillaForm.for_points(points), points, options)
