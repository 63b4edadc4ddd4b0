"""Kaplan et al. 2020 families: the published set ("kaplan"), a refitted L(N, D) ("kaplan-nd") and a refitted
L(N, S) with B_crit(L) ("kaplan-ns"); N counts non-embedding parameters, tokens are GPT-2 BPE tokens.

Loss models for the planner (fits.laws.kaplan2020 supplies every law):

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
from typing import Any, Self

import numpy as np

from fits.fitting.linear_forms import KaplanNDLinear
from fits.laws import kaplan2020 as k20
from fits.laws import repeated
from fits.laws.base import Conventions, LawFamily, LossModel, PredictParts, numeric_columns, reject_options
from fits.laws.numerics import solve_increasing
from fits.units import PF_DAY

# Kaplan et al. trained 768 to 1.5e9 non-embedding parameters, about 8 orders of magnitude of C_min; the
# largest runs (1.5e9 params, 2.5e5 steps of 2^19 tokens) used about 1.2e21 FLOPs.
PUBLISHED_COMPUTE_RANGE = (1e13, 1.2e21)
C_STAR_PFD = 1e4
"""Eq. 6.8: C_min where L(C_min) meets the one-epoch L(D) floor (uncertain by an order of magnitude)."""
OVERFIT_WARNING = 0.02


def _as_float(x):
    arr = np.asarray(x, dtype=float)
    return float(arr) if arr.ndim == 0 else arr


class _Kaplan(LossModel):
    """What the three Kaplan models share: batch-adjusted compute, eq. 5.7, the C* and overfitting limits."""

    batch_adjusted = True
    raw: dict[str, float]

    def loss_nd(self, N, D, unique: float | None = None):
        return self.loss(N, self.compute_for_tokens(N, D), unique)

    def early_stop_steps(self, params: float, data: float, batch: float, loss: float) -> int | None:
        """Kaplan eq. 5.7 on the unique data, converted to steps at the batch with eq. 5.4."""
        try:
            nd = k20.nd_coefficients(self.raw)
        except ValueError:
            return None
        kw = {k: self.raw[k] for k in ("alpha_S", "S_c") if k in self.raw}
        s_stop = float(k20.s_stop(params, data, **nd, **kw))
        steps = float(k20.steps_at_batch(s_stop, batch, loss, **k20.batch_coefficients(self.raw)))
        return round(steps) if math.isfinite(steps) and steps < 1e15 else None

    def law_warnings(self, params: float, c_min: float, unique: float | None) -> list[str]:
        w = []
        if c_min / PF_DAY >= C_STAR_PFD:
            w.append(
                f"C_min = {c_min / PF_DAY:.3g} PF-days is past Kaplan's C* ≈ 1e4 PF-days (eq. 6.8), where L(C_min) "
                "meets the one-epoch data floor and the laws must break down"
            )
        if unique is not None:
            try:
                delta = float(k20.overfitting(params, unique, **k20.nd_coefficients(self.raw)))
            except ValueError:
                delta = None
            if delta is not None and delta > OVERFIT_WARNING:
                w.append(
                    f"overfitting risk: δL = {delta:.3f} > 0.02 on {unique:.3g} unique tokens (Kaplan eq. 4.3); "
                    f"eq. 4.4 wants ≳ {float(k20.d_required(params)):.3g}"
                )
        return w

    def predict(self, N: float, tokens: float, steps: float | None, batch: float | None,
                unique: float | None) -> PredictParts:
        """L(N, S) with S_min = S/(1 + B_crit(L)/B) solved for L (Table 3 for the published set); with tokens
        only, the same at B = B_crit; eq. 4.3's overfitting excess on finite unique data."""
        n, c = N, self.raw
        ns = k20.ns_coefficients(c)
        bc = k20.batch_coefficients(c)
        out = PredictParts(loss=0.0, critical_batch=0.0)
        if steps is not None:
            loss = float(k20.loss_after_steps(n, float(steps), batch, **ns, **bc))
            out.assumptions.append("L(N, S) with S_min = S/(1 + B_crit(L)/B), eqs. 1.6, 5.4 (Kaplan et al. 2020)")
        else:
            loss = float(KaplanNSModel(c).loss(n, 6.0 * n * tokens))
            out.assumptions.append("L(N, S) at B = B_crit (S = 2·S_min, D = 2·B_crit·S_min), eqs. 1.6, 5.3")
        try:
            nd = k20.nd_coefficients(c)
        except ValueError:
            nd = None
        if nd is not None:
            data = unique if unique is not None else tokens
            out.overfitting = float(k20.overfitting(n, data, **nd))
            if unique is not None:
                loss *= 1.0 + out.overfitting
                out.assumptions.append("finite unique data: loss × (1 + δL), eq. 4.3")
            if out.overfitting > 0.02:
                out.warnings.append(f"overfitting risk: δL = {out.overfitting:.3f} > 0.02 (eq. 4.3)")
            s_stop = float(k20.s_stop(n, data, **nd))
            at = batch if batch is not None else float(k20.b_crit(loss, **bc))
            stop = float(k20.steps_at_batch(s_stop, at, loss, **bc))
            out.early_stop = round(stop) if stop < 1e15 else None
        out.loss = loss
        out.critical_batch = float(k20.b_crit(loss, **bc))
        return out


class KaplanTable6Model(_Kaplan):
    """Published Kaplan 2020: Table 6 at the optimum, B.16/B.17 away from it."""

    def __init__(self, coefficients: Mapping[str, float], batch_ratio: float = 1.0) -> None:
        self.c = {k: float(v) for k, v in coefficients.items()}
        self.raw = self.c
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

    def optimum_loss(self, C: float) -> float:
        """Eq. 1.3 at the Table 6 optimum."""
        return float(self.frontier(C).loss)

    def critical_batch(self, params: float, train_compute: float, loss: float) -> tuple[float, float | None]:
        """Table 6's B_crit at C_eff: C_min itself on the optimum, off it the B.16 loss level of this size."""
        c_eff = float(self.c_min_pfd(train_compute))
        if abs(params / self.n_opt(c_eff) - 1.0) > 1e-9:
            c_eff = float(self.effective_c_min(params, train_compute))
        return self.critical_batch_at(c_eff), c_eff

    def steps(self, params: float, tokens: float, batch: int, b_crit: float, c_eff: float | None, *,
              floor_steps: bool) -> int:
        """Table 6: S = S_min·(1 + B_crit/B), times B.17 off the optimal size."""
        if c_eff is None or floor_steps:
            return super().steps(params, tokens, batch, b_crit, c_eff, floor_steps=floor_steps)
        r = float(params / self.n_opt(c_eff))
        s = self.s_min_at(c_eff) * (1.0 + b_crit / batch) * (self.steps_factor(r) if abs(r - 1) > 1e-9 else 1.0)
        return max(1, round(s))

    def loss_band(self, params: float, steps: int, batch: int, b_crit: float, loss: float
                  ) -> tuple[float, float, str]:
        """K3 cross-check: L(N, S_min) with Table 3, S_min the batch-adjusted steps (eq. 5.4)."""
        s_min = steps / (1.0 + b_crit / batch)
        k3 = float(k20.loss_ns(params, s_min, **k20.ns_coefficients(self.c)))
        lo, hi = min(loss, k3), max(loss, k3)
        return (
            lo - 0.02,
            hi + 0.02,
            f"from eq. 1.3 (Table 5, {loss:.3f}) to L(N, S_min) with Table 3 ({k3:.3f}), widened by Kaplan's "
            "0.02 seed-to-seed spread",
        )

    def assumptions(self, published: bool) -> list[str]:
        return [
            "Kaplan 2020 Table 6 point estimates at C_min = C/(1 + B/B_crit) (C/2 at B = B_crit), loss from "
            "eq. 1.3; sizes off the optimum priced by eq. B.16, steps by B.17; Table 6's rounded prefactors "
            f"make 6·N·D = {self.tokens_ratio:.2f}·C and steps·batch ≈ 1.08·D"
        ]


class _Refitted(_Kaplan):
    """A refitted Kaplan law: its stored coefficients, eq. 5.4's batch ones among them, at batch ratio q."""

    tokens_ratio = 1.0

    def __init__(self, coefficients: Mapping[str, float], batch_ratio: float = 1.0) -> None:
        self.raw = dict(coefficients)
        self.batch = k20.batch_coefficients(coefficients)
        self.q = batch_ratio
        self.floor = 0.0

    def with_batch_ratio(self, q: float) -> Self:
        return type(self)(self.raw, q)


class KaplanNSModel(_Refitted):
    """A refitted L(N, S_min) = (N_c/N)^α_N + (S_c/S_min)^α_S with B_crit(L); App. B's frontier."""

    def __init__(self, coefficients: Mapping[str, float], batch_ratio: float = 1.0) -> None:
        self.ns = k20.ns_coefficients(coefficients)
        super().__init__(coefficients, batch_ratio)
        self.frontier_exponent = k20.alpha_c_theory(self.ns["alpha_N"], self.ns["alpha_S"], self.batch["alpha_B"])

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

    def assumptions(self, published: bool) -> list[str]:
        return ["App. B frontier derived from L(N, S_min) and B_crit(L) (eqs. B.3–B.10), B.15 off the optimum"]


class KaplanNDModel(_Refitted):
    """A refitted L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D with D = C/(6·N)."""

    def __init__(self, coefficients: Mapping[str, float], batch_ratio: float = 1.0) -> None:
        self.nd = k20.nd_coefficients(coefficients)
        super().__init__(coefficients, batch_ratio)
        # Along C = 6·N·D at the optimum both terms of eq. 1.5 shrink together, roughly as C^(α_N·α_D/(α_N+α_D)).
        a_n, a_d = self.nd["alpha_N"], self.nd["alpha_D"]
        self.frontier_exponent = a_n * a_d / (a_n + a_d)

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

    def assumptions(self, published: bool) -> list[str]:
        return ["L(N, D) of eq. 1.5 minimised numerically along C = 6·N·D at B = B_crit(L)"]

    def predict(self, N: float, tokens: float, steps: float | None, batch: float | None,
                unique: float | None) -> PredictParts:
        """Eq. 1.5 directly (early-stopped loss on D tokens)."""
        loss = float(self.loss(N, 6.0 * N * tokens, unique))
        return PredictParts(loss=loss, critical_batch=float(k20.b_crit(loss, **self.batch)),
                            assumptions=["L(N, D) of eq. 1.5 (early-stopped loss on D tokens)"])


# ---------------------------------------------------------------------------------------------- families

KAPLAN_CONVENTIONS = Conventions(params="non-embedding", flops="6N", tokenizer="gpt2-bpe (WebText2)", seq_len=1024,
                                 vocab_size=50257, hyperparams="kaplan")


class _KaplanND(LawFamily):
    """Shared by the published set and a refitted L(N, D): eq. 1.5 for final losses."""

    conventions = KAPLAN_CONVENTIONS

    @property
    def scope_law(self) -> str:
        return "kaplan-nd"

    @property
    def final_law(self) -> str:
        return "kaplan-nd"

    def loss(self, coefficients: Mapping[str, float], N, D):
        return k20.loss_nd(N, D, **k20.nd_coefficients(coefficients))

    def data_penalty(self, coefficients: Mapping[str, float], N: float, D: float) -> tuple[float, float]:
        nd = k20.nd_coefficients(coefficients)
        l_nd = float(k20.loss_nd(N, D, **nd))
        return l_nd, l_nd - float(k20.loss_n(N, alpha_N=nd["alpha_N"], N_c=nd["N_c"]))

    def critical_batch(self, coefficients: Mapping[str, float], loss: float) -> float:
        return float(k20.b_crit(loss, **k20.batch_coefficients(coefficients)))


class KaplanPublished(_KaplanND):
    """The published Kaplan 2020 set (Tables 2, 3, 5, 6 in one); planned with Table 6, not fittable."""

    name = "kaplan"
    coefficients = k20.COEFFICIENTS
    model_class = KaplanTable6Model
    fit_columns = ()
    optional_columns = ()
    published_ranges: Mapping[str, tuple[float, float]] = {"kaplan2020": PUBLISHED_COMPUTE_RANGE}

    def loss_after_steps(self, coefficients: Mapping[str, float], N, S, B):
        return k20.loss_after_steps(N, S, B, **k20.ns_coefficients(coefficients),
                                    **k20.batch_coefficients(coefficients))

    def exponents(self, coefficients: Mapping[str, float]) -> dict[str, float]:
        ns = k20.ns_coefficients(coefficients)
        return {"alpha_N": ns["alpha_N"], "alpha_S": ns["alpha_S"]}


class KaplanND(_KaplanND):
    """A refitted L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D (eq. 1.5)."""

    name = "kaplan-nd"
    coefficients = k20.ND_COEFFICIENTS
    model_class = KaplanNDModel
    linear_form = KaplanNDLinear()

    def exponents(self, coefficients: Mapping[str, float]) -> dict[str, float]:
        nd = k20.nd_coefficients(coefficients)
        return {"alpha_N": nd["alpha_N"], "alpha_D": nd["alpha_D"]}

    def form(self, points: Any) -> Any:
        from fits.fitting.kaplan_fit import KaplanNDForm

        return KaplanNDForm()


class KaplanNS(LawFamily):
    """A refitted L(N, S_min) = (N_c/N)^α_N + (S_c/S_min)^α_S with B_crit(L) (eqs. 1.6, 5.4): fitted on
    validation-loss curves, so it predicts the loss after S steps at batch B, not L(N, D)."""

    name = "kaplan-ns"
    coefficients = k20.NS_COEFFICIENTS
    conventions = KAPLAN_CONVENTIONS
    model_class = KaplanNSModel
    in_steps = True
    fit_columns = ("N", "B", "step", "loss")
    optional_columns = ("warmup", "group")
    fit_options = ("warmup", "batch")
    refit_options: Mapping[str, Any] = {"batch": "fitted"}
    """Kaplan's B_star and alpha_B are in GPT-2 BPE tokens: a refit profiles its own (kaplan_fit.profile_batch)."""

    @property
    def final_law(self) -> str:
        return "kaplan-nd"  # final losses are (N, D) points

    def loss(self, coefficients: Mapping[str, float], N, D):
        raise ValueError("kaplan-ns predictions need the steps and the batch")

    def loss_after_steps(self, coefficients: Mapping[str, float], N, S, B):
        return k20.loss_after_steps(N, S, B, **k20.ns_coefficients(coefficients),
                                    **k20.batch_coefficients(coefficients))

    def final_loss(self, coefficients: Mapping[str, float], N: float, D: float, *, steps: float | None = None,
                   batch_tokens: float | None = None) -> float:
        if steps is None or batch_tokens is None:
            raise ValueError("kaplan-ns predictions need the steps and the batch")
        return float(self.loss_after_steps(coefficients, N, steps, batch_tokens))

    def data_penalty(self, coefficients: Mapping[str, float], N: float, D: float) -> None:
        return None

    def stop_steps(self, coefficients: Mapping[str, float], excess: float, loss: float,
                   batch_tokens: float) -> float:
        """Eq. 5.7, S_c/excess^(1/α_S) in S_min, converted to steps at the batch with eq. 5.4."""
        ns = k20.ns_coefficients(coefficients)
        s_min = ns["S_c"] / excess ** (1.0 / ns["alpha_S"])
        return float(k20.steps_at_batch(s_min, batch_tokens, loss, **k20.batch_coefficients(coefficients)))

    def exponents(self, coefficients: Mapping[str, float]) -> dict[str, float]:
        ns = k20.ns_coefficients(coefficients)
        return {"alpha_N": ns["alpha_N"], "alpha_S": ns["alpha_S"]}

    def critical_batch(self, coefficients: Mapping[str, float], loss: float) -> float:
        return float(k20.b_crit(loss, **k20.batch_coefficients(coefficients)))

    def points_for(self, columns: Mapping[str, Any], warmup: float | None = None, *,
                   batch: Mapping[str, float] | None = None,
                   coefficients: Mapping[str, float] | None = None) -> tuple[Any, Any]:
        """Points in S_min: steps converted with ``batch`` (or ``coefficients``' own B_star, alpha_B; default
        Kaplan's), after ``warmup`` steps (or a ``warmup`` column)."""
        from fits.fitting.kaplan_fit import KaplanNSForm, ns_points

        if batch is None and coefficients is not None:
            batch = k20.batch_coefficients(coefficients)
        cols, group = numeric_columns(columns)
        steps = cols.get("warmup") if warmup is None else warmup
        return KaplanNSForm(), ns_points(cols["N"], cols["B"], cols["step"], cols["loss"], steps,
                                         batch=dict(batch) if batch else None, group=group)

    def fit(self, columns: Mapping[str, Any], *, warmup: float | None = None, batch: str = "published",
            **options: Any) -> Any:
        """fit_kaplan_ns: ``batch`` ("published" or "fitted") says where eq 5.4's B_star, alpha_B come from."""
        from fits.fitting.kaplan_fit import fit_kaplan_ns

        reject_options(self, warmup=warmup, batch=batch)
        cols, group = numeric_columns(columns)
        steps = cols.get("warmup") if warmup is None else warmup
        return fit_kaplan_ns(cols["N"], cols["B"], cols["step"], cols["loss"], warmup=steps, batch=batch,
                             group=group, **options)


KAPLAN = KaplanPublished()
KAPLAN_ND = KaplanND()
KAPLAN_NS = KaplanNS()
