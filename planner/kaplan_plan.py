"""Kaplan-family loss models for the planner (fits.laws.kaplan2020 supplies every law).

law "kaplan" (the published set): Table 6 gives the compute-efficient point estimates (N, B_crit, S_min,
    D, and L from eq. 1.3). Sizes away from the optimum (a max_params, data or inference constraint) are
    priced with App. B eq. B.16: a size r·N_eff reaches N_eff's loss with B16(r) times the compute, so a
    size-N model given compute C reaches the loss of the Table 6 optimum at the C_eff solving
    C_eff·B16(N/N_opt(C_eff)) = C. Steps follow B.17.
law "kaplan-ns" (a refitted L(N, S) with B_crit(L)): App. B's derivation, eqs. B.3–B.10 and B.15.
law "kaplan-nd" (a refitted L(N, D)): eq. 1.5 with D = C/(6·N), minimised numerically.

All compute is batch-adjusted the paper's way: at a batch ratio q = B/B_crit the budget C buys
C_min = C/(1 + q) (eq. 5.5); q = 1 (training at B_crit, the paper's recommended compromise) unless a batch
bound moves the batch.

Repeated data: the Kaplan laws have no repetition term, so tokens drawn from fewer unique ones are priced
with Muennighoff et al.'s effective data D' (fits.laws.repeated): the run counts as compute C·D'/D.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from fits.laws import kaplan2020 as k20
from fits.laws import repeated
from fits.units import PF_DAY
from fits.laws.numerics import solve_increasing

# Kaplan et al. trained 768 to 1.5e9 non-embedding parameters, about 8 orders of magnitude of C_min; the
# largest runs (1.5e9 params, 2.5e5 steps of 2^19 tokens) used about 1.2e21 FLOPs.
PUBLISHED_COMPUTE_RANGE = (1e13, 1.2e21)
C_STAR_PFD = 1e4
"""Eq. 6.8: C_min where L(C_min) meets the one-epoch L(D) floor (uncertain by an order of magnitude)."""


def _as_float(x):
    arr = np.asarray(x, dtype=float)
    return float(arr) if arr.ndim == 0 else arr


class KaplanTable6Model:
    """Published Kaplan 2020: Table 6 at the optimum, B.16/B.17 away from it."""

    family = "kaplan"

    def __init__(self, coefficients: Mapping[str, float], batch_ratio: float = 1.0) -> None:
        self.c = {k: float(v) for k, v in coefficients.items()}
        self.q = batch_ratio
        self.floor = 0.0
        self.frontier_exponent = self.c["alpha_C_min"]
        self.alpha_N, self.alpha_S = self.c["alpha_N"], self.c["alpha_S"]
        # r below this cannot reach N_eff's loss at any compute (B.16 diverges).
        self.r_min = (1.0 + self.alpha_N / self.alpha_S) ** (-1.0 / self.alpha_N)

    def with_batch_ratio(self, q: float) -> KaplanTable6Model:
        return KaplanTable6Model(self.c, q)

    @property
    def tokens_ratio(self) -> float:
        """6·N·D / C: 6·N_e·D_e/(2 PF-day) = 0.90 with the rounded Table 6 prefactors, at any batch ratio.

        Exact when p_N + p_D = 1 (as published); B.16/B.17 keep it off the optimum too.
        """
        return 6.0 * self.c["N_e"] * self.c["D_e"] / (2.0 * PF_DAY)

    # -- the frontier
    def c_min_pfd(self, C):
        return np.asarray(C, dtype=float) / PF_DAY / (1.0 + self.q)

    def frontier(self, C: float) -> k20.Frontier:
        return k20.frontier_table6(float(self.c_min_pfd(C)), self.c)

    def optimum(self, C: float) -> tuple[float, float]:
        fr = self.frontier(C)
        # Table 6's D is the tokens at B_crit (2·E_min); at ratio q it is E_min·(1 + q) (eq. 5.1).
        return float(fr.N), float(fr.D) * (1.0 + self.q) / 2.0

    def n_opt(self, c_min_pfd):
        return self.c["N_e"] * c_min_pfd ** self.c["p_N"]

    def frontier_loss(self, c_min_pfd):
        return k20.loss_c_min(c_min_pfd, alpha_C_min=self.c["alpha_C_min"], C_c_min=self.c["C_c_min"])

    # -- off the frontier
    def _b16(self, r):
        return k20.excess_compute(r, alpha_N=self.alpha_N, alpha_S=self.alpha_S)

    def effective_c_min(self, N, C):
        """C_eff (PF-days, batch-adjusted) with C_eff·B16(N/N_opt(C_eff)) = C_min: the loss level N reaches."""
        n = np.asarray(N, dtype=float)
        log_c = np.log(self.c_min_pfd(C)) + np.zeros_like(n)
        p_n = self.c["p_N"]
        log_n_ratio = np.log(n / self.c["N_e"])

        def h(x):
            r = np.exp(log_n_ratio - p_n * x)
            with np.errstate(invalid="ignore", divide="ignore"):
                b16 = np.asarray(self._b16(np.maximum(r, self.r_min * (1 + 1e-12))), dtype=float)
            return x + np.log(b16) - log_c

        # Bracket: B16 ≥ 1 puts the root at or below ln C_min, and below x_sing where B16 diverges.
        # x0 = ln C_min − ln B16(r at C_min) lies above the root when r > 1 and below it when r < 1;
        # for r > 1, h rises at least (1 − p_N) per unit of x, which bounds the root from below.
        x_sing = (log_n_ratio - math.log(self.r_min)) / p_n
        hi = np.minimum(log_c, x_sing - 1e-9)
        r_c = np.exp(log_n_ratio - p_n * log_c)
        with np.errstate(invalid="ignore", divide="ignore"):
            x0 = log_c - np.log(np.asarray(self._b16(np.maximum(r_c, self.r_min * 1.000001)), dtype=float))
        slope = max(1.0 - p_n, 0.05)
        big = r_c > 1.0
        h_x0 = h(np.where(big, x0, hi))
        lo = np.where(big, x0 - np.maximum(h_x0, 0.0) / slope - 1e-9, np.where(r_c > self.r_min, x0, hi - 60.0))
        hi = np.where(big, x0, hi)
        # Far below r_min, x0 is meaningless: fall back to a wide bracket corrected the same way.
        far = ~big & (r_c <= self.r_min)
        if np.any(far):
            h_lo = h(lo)
            lo = np.where(far & (h_lo > 0), lo - h_lo / slope - 1.0, lo)
        return np.exp(solve_increasing(h, lo, hi, ftol=1e-11))

    def loss(self, N, C, unique: float | None = None):
        c_eff = self.effective_c_min(N, C)
        if unique is not None:
            D = self.tokens(N, C)
            discount = np.asarray(repeated.effective_data(D, unique), dtype=float) / D
            c_eff = self.effective_c_min(N, np.asarray(C, dtype=float) * discount)
        return _as_float(self.frontier_loss(c_eff))

    def tokens(self, N, C):
        return self.tokens_ratio * np.asarray(C, dtype=float) / (6.0 * np.asarray(N, dtype=float))

    def compute_for_tokens(self, N, D):
        return 6.0 * np.asarray(N, dtype=float) * np.asarray(D, dtype=float) / self.tokens_ratio

    def size_ratio(self, N, C) -> float:
        """N / N_opt(C_eff): how far a size-N model with compute C sits from the Table 6 optimum."""
        return float(np.asarray(N) / self.n_opt(self.effective_c_min(N, C)))

    def steps_factor(self, r: float) -> float:
        """B.17: steps relative to the optimal size at the same loss."""
        return float(k20.excess_steps(r, alpha_N=self.alpha_N, alpha_S=self.alpha_S))

    def critical_batch_at(self, c_eff_pfd: float) -> float:
        return float(self.c["B_e"] * c_eff_pfd ** self.c["p_B"])

    def s_min_at(self, c_eff_pfd: float) -> float:
        return float(self.c["S_e"] * c_eff_pfd ** self.c["p_S"])

    def min_compute_for_loss(self, L: float) -> float:
        """Inverse of eq. 1.3: C_min = C_c_min / L^(1/α), times (1 + q) for the batch used."""
        c_min = self.c["C_c_min"] / L ** (1.0 / self.c["alpha_C_min"])
        return c_min * PF_DAY * (1.0 + self.q)

    def compute_for_loss(self, N, L):
        """B.16 closed form: C_opt(L)·B16(N/N_opt(C_opt(L))); inf where N is too small ever to reach L."""
        c_opt_pfd = self.c["C_c_min"] / float(L) ** (1.0 / self.c["alpha_C_min"])
        r = np.asarray(N, dtype=float) / self.n_opt(c_opt_pfd)
        with np.errstate(invalid="ignore", divide="ignore"):
            b16 = np.where(r > self.r_min, self._b16(np.maximum(r, self.r_min * 1.000001)), np.inf)
        return _as_float(c_opt_pfd * PF_DAY * (1.0 + self.q) * b16)

    def converged_loss(self, N: float) -> float:
        """Lowest loss a size-N model reaches at any compute: the Table 6 loss where N = r_min·N_opt."""
        c_pfd = (N / self.r_min / self.c["N_e"]) ** (1.0 / self.c["p_N"])
        return float(self.frontier_loss(c_pfd))


class KaplanNSModel:
    """A refitted L(N, S_min) = (N_c/N)^α_N + (S_c/S_min)^α_S with B_crit(L); App. B's frontier."""

    family = "kaplan-ns"
    tokens_ratio = 1.0

    def __init__(self, coefficients: Mapping[str, float], batch_ratio: float = 1.0) -> None:
        self.raw = dict(coefficients)
        self.ns = k20.ns_coefficients(coefficients)
        self.batch = k20.batch_coefficients(coefficients)
        self.q = batch_ratio
        self.floor = 0.0
        self.frontier_exponent = k20.alpha_c_theory(self.ns["alpha_N"], self.ns["alpha_S"], self.batch["alpha_B"])

    def with_batch_ratio(self, q: float) -> KaplanNSModel:
        return KaplanNSModel(self.raw, q)

    def c_min_pfd(self, C):
        return np.asarray(C, dtype=float) / PF_DAY / (1.0 + self.q)

    def frontier(self, C: float) -> k20.Frontier:
        return k20.frontier_ns(float(self.c_min_pfd(C)), **self.ns, **self.batch)

    def optimum(self, C: float) -> tuple[float, float]:
        fr = self.frontier(C)
        return float(fr.N), float(fr.D) * (1.0 + self.q) / 2.0

    def loss(self, N, C, unique: float | None = None):
        n = np.asarray(N, dtype=float)
        c_min = self.c_min_pfd(C) * PF_DAY
        if unique is not None:
            D = self.tokens(n, C)
            c_min = c_min * np.asarray(repeated.effective_data(D, unique), dtype=float) / D
        a_n, a_s, n_c, s_c = self.ns["alpha_N"], self.ns["alpha_S"], self.ns["N_c"], self.ns["S_c"]
        b_star, a_b = self.batch["B_star"], self.batch["alpha_B"]
        l_inf = (n_c / n) ** a_n
        # L = L_inf + (S_c/S_min)^α_S with S_min = C_min/(6·N·B_crit(L)): B.3 solved for L (unique root).
        scale = s_c * 6.0 * n * b_star / c_min

        def f(L):
            return L - l_inf - (scale / L ** (1.0 / a_b)) ** a_s

        hi = l_inf + (scale / l_inf ** (1.0 / a_b)) ** a_s
        return _as_float(solve_increasing(f, l_inf + np.zeros_like(hi), hi))

    def tokens(self, N, C):
        return np.asarray(C, dtype=float) / (6.0 * np.asarray(N, dtype=float))

    def compute_for_tokens(self, N, D):
        return 6.0 * np.asarray(N, dtype=float) * np.asarray(D, dtype=float)

    def min_compute_for_loss(self, L: float) -> float:
        a_c = k20.alpha_c_theory(self.ns["alpha_N"], self.ns["alpha_S"], self.batch["alpha_B"])
        c_c = k20.c_c_theory(**self.ns, B_star=self.batch["B_star"])
        return c_c / L ** (1.0 / a_c) * PF_DAY * (1.0 + self.q)

    def compute_for_loss(self, N, L):
        """Eq. B.15 (batch-adjusted), times (1 + q); inf where L ≤ L(N, ∞)."""
        n = np.asarray(N, dtype=float)
        a_n, a_s, n_c, s_c = self.ns["alpha_N"], self.ns["alpha_S"], self.ns["N_c"], self.ns["S_c"]
        rest = L - (n_c / n) ** a_n
        with np.errstate(invalid="ignore", divide="ignore"):
            c_min = np.where(
                rest > 0,
                6.0
                * self.batch["B_star"]
                * s_c
                * n
                / L ** (1.0 / self.batch["alpha_B"])
                * np.where(rest > 0, rest, 1.0) ** (-1.0 / a_s),
                np.inf,
            )
        return _as_float(c_min * (1.0 + self.q))

    def converged_loss(self, N: float) -> float:
        return float(k20.loss_n(N, alpha_N=self.ns["alpha_N"], N_c=self.ns["N_c"]))


class KaplanNDModel:
    """A refitted L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D with D = C/(6·N)."""

    family = "kaplan-nd"
    tokens_ratio = 1.0

    def __init__(self, coefficients: Mapping[str, float], batch_ratio: float = 1.0) -> None:
        self.raw = dict(coefficients)
        self.nd = k20.nd_coefficients(coefficients)
        self.batch = k20.batch_coefficients(coefficients)
        self.q = batch_ratio
        self.floor = 0.0
        # Along C = 6·N·D at the optimum both terms of eq. 1.5 shrink together, roughly as C^(α_N·α_D/(α_N+α_D)).
        a_n, a_d = self.nd["alpha_N"], self.nd["alpha_D"]
        self.frontier_exponent = a_n * a_d / (a_n + a_d)

    def with_batch_ratio(self, q: float) -> KaplanNDModel:
        return KaplanNDModel(self.raw, q)

    def optimum(self, C: float) -> tuple[float, float]:
        """Minimum of L(N, C/(6N)): (N_c/N)^p + 6·D_c·N/C is smallest where N^(p+1) = p·N_c^p·C/(6·D_c),
        p = α_N/α_D (the bracket of eq. 1.5 is raised to a positive power, so its minimum is the loss's)."""
        p = self.nd["alpha_N"] / self.nd["alpha_D"]
        n = (p * self.nd["N_c"] ** p * C / (6.0 * self.nd["D_c"])) ** (1.0 / (p + 1.0))
        return float(n), float(C / (6.0 * n))

    def loss(self, N, C, unique: float | None = None):
        D = self.tokens(N, C)
        if unique is not None:
            D = repeated.effective_data(D, unique)
        return k20.loss_nd(N, D, **self.nd)

    def tokens(self, N, C):
        return np.asarray(C, dtype=float) / (6.0 * np.asarray(N, dtype=float))

    def compute_for_tokens(self, N, D):
        return 6.0 * np.asarray(N, dtype=float) * np.asarray(D, dtype=float)

    min_compute_for_loss = None

    def compute_for_loss(self, N, L):
        """Eq. 1.5 solved for D: D_c / (L^(1/α_D) − (N_c/N)^(α_N/α_D)); inf where L ≤ L(N, ∞)."""
        n = np.asarray(N, dtype=float)
        a_n, a_d, n_c, d_c = self.nd["alpha_N"], self.nd["alpha_D"], self.nd["N_c"], self.nd["D_c"]
        rest = L ** (1.0 / a_d) - (n_c / n) ** (a_n / a_d)
        with np.errstate(invalid="ignore", divide="ignore"):
            D = np.where(rest > 0, d_c / np.where(rest > 0, rest, 1.0), np.inf)
        return _as_float(6.0 * n * D)

    def converged_loss(self, N: float) -> float:
        return float(k20.loss_n(N, alpha_N=self.nd["alpha_N"], N_c=self.nd["N_c"]))
