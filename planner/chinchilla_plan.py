"""Chinchilla-family loss model for the planner: L(N, D) = E + A/N^α + B/D^β with D = C/(6·N).

Unconstrained budgets use the closed-form allocation (fits.laws.chinchilla); constrained ones hand this
model's vectorised loss(N, C) to planner.constraints. Repeated data is priced with Muennighoff et al.'s
effective N' and D' (fits.laws.repeated).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fits.laws import chinchilla, repeated

KEYS = ("E", "A", "B", "alpha", "beta")

# Hoffmann et al. 2022 trained 70M–16B models on IsoFLOP profiles from 6e18 to 3e21 FLOPs; Epoch's refit
# reads the same runs off their Fig. 4. Chinchilla itself (5.76e23) was a prediction, not a fitted point.
PUBLISHED_COMPUTE_RANGE = (6e18, 3e21)


class ChinchillaModel:
    """Loss as a function of parameters and training compute, for one Chinchilla coefficient set."""

    family = "chinchilla"
    tokens_ratio = 1.0
    """6·N·D / C: exact for this family."""

    def __init__(self, coefficients: Mapping[str, float]) -> None:
        missing = [k for k in KEYS if k not in coefficients]
        if missing:
            raise ValueError(f"fit: chinchilla coefficients missing {', '.join(missing)}")
        self.c = {k: float(coefficients[k]) for k in KEYS}
        self.floor = self.c["E"]
        self.frontier_exponent = self.c["alpha"] * self.c["beta"] / (self.c["alpha"] + self.c["beta"])
        """L*(C) − E ∝ C^−γ along the compute-optimal frontier."""

    def optimum(self, C: float) -> tuple[float, float]:
        alloc = chinchilla.optimal_allocation(C, **self.c)
        return float(alloc.N), float(alloc.D)

    def tokens(self, N, C):
        return C / (6.0 * N)

    def compute_for_tokens(self, N, D):
        return 6.0 * N * D

    def loss(self, N, C, unique: float | None = None):
        D = C / (6.0 * N)
        if unique is None:
            return chinchilla.loss(N, D, **self.c)
        return repeated.loss_repeated(N, D, unique, self.c)

    def loss_nd(self, N, D, unique: float | None = None):
        return self.loss(N, 6.0 * N * D, unique)

    def min_compute_for_loss(self, L: float) -> float:
        """Least training FLOPs reaching L at the optimal size (raises LawDomainError when L ≤ E)."""
        return float(chinchilla.compute_for_loss(L, **self.c))

    def compute_for_loss(self, N, L):
        """FLOPs a size-N model needs to reach L; inf where L is at or below its converged loss E + A/N^α."""
        c = self.c
        rest = np.asarray(L - c["E"] - c["A"] / np.asarray(N, dtype=float) ** c["alpha"], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            D = np.where(rest > 0, (c["B"] / np.where(rest > 0, rest, 1.0)) ** (1.0 / c["beta"]), np.inf)
        out = 6.0 * np.asarray(N, dtype=float) * D
        return float(out) if out.ndim == 0 else out

    def converged_loss(self, N: float) -> float:
        """Loss at size N with unlimited data: the floor a max_params constraint sets."""
        return self.c["E"] + self.c["A"] / N ** self.c["alpha"]

    def n_opt_for_data(self, U: float) -> float:
        return float(chinchilla.n_opt_for_data(U, **self.c))
