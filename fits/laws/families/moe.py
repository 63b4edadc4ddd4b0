"""Fine-grained mixture of experts (Krajewski et al. 2024, "Scaling Laws for Fine-Grained Mixture of Experts",
arXiv:2402.07871, eq. 9):

    L(N, D, G) = c + (g/G^γ + a)/N^α + b/D^β

N the total non-embedding parameters (attention and every expert; Krajewski et al. §6.1 count
N = d²·(8E + 4)·n_blocks), D tokens, G the granularity d_ff/expert_d_ff. Their Table 1 fits the MoE row at an
expansion rate E = 64 (experts = E·G, each token routed to G experts so that it uses one dense FFN's worth of
expert parameters) and a dense row of the same form without the g term; App. D (Table 8) refits at E = 16.
The set's ``expansion`` coefficient records the E it was fitted at (1 for the dense row).

For a fixed layout the law is Chinchilla's form with A = a + g/G^γ, and the compute is 6·N_active·D with
N_active = r·N (r the layout's active fraction, fits.accounting.MoeSpec), so the allocation and its inverse are
Chinchilla's closed forms at C/r. The law is what the planner is asked with a MoE request
(``LossModel.for_moe``); a MoE set asked for no layout plans the one it was fitted at (E experts, top-1,
G = 1), and the dense set refuses a MoE layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from fits.accounting import MoeSpec
from fits.errors import BadInput
from fits.laws import Coefficient, chinchilla, repeated
from fits.laws.base import Conventions, LawFamily, LossModel, PredictParts

NAME = "krajewski-moe"
KEYS = ("a", "alpha", "b", "beta", "g", "gamma", "c", "expansion")

COEFFICIENTS: tuple[Coefficient, ...] = (
    Coefficient(name="a", unit="nats·N^α", low=0.0, high=1e4, description="model-size term at infinite granularity"),
    Coefficient(name="alpha", unit="1", low=0.01, high=1.0, description="exponent of total non-embedding N"),
    Coefficient(name="b", unit="nats·D^β", low=0.0, high=1e4, description="data term"),
    Coefficient(name="beta", unit="1", low=0.01, high=1.0, description="exponent of tokens D"),
    Coefficient(name="g", unit="nats·N^α", low=0.0, high=1e3, description="granularity term (0: a dense fit)"),
    Coefficient(name="gamma", unit="1", low=0.0, high=5.0, description="exponent of granularity G"),
    Coefficient(name="c", unit="nats", low=0.0, high=10.0, description="irreducible loss"),
    Coefficient(name="expansion", unit="1", low=1.0, high=1e4,
                description="expansion rate E = experts/G the set was fitted at (1: dense)"),
)

# Krajewski et al. 2024 Table 1 (E = 64), Table 5 (the same fit without the 20% lowest-loss runs), Table 8
# (App. D, E = 16); the dense row of Table 1 has no g, γ. c = 0.47 is printed for both Table 1 rows.
KRAJEWSKI2024: dict[str, float] = {"a": 18.1, "alpha": 0.115, "b": 30.8, "beta": 0.147, "g": 2.1, "gamma": 0.58,
                                   "c": 0.47, "expansion": 64.0}
KRAJEWSKI2024_VALIDATION: dict[str, float] = {"a": 17.6, "alpha": 0.114, "b": 26.7, "beta": 0.140, "g": 2.07,
                                              "gamma": 0.570, "c": 0.472, "expansion": 64.0}
KRAJEWSKI2024_E16: dict[str, float] = {"a": 19.64, "alpha": 0.124, "b": 57.07, "beta": 0.169, "g": 1.18,
                                       "gamma": 0.986, "c": 0.472, "expansion": 16.0}
KRAJEWSKI2024_DENSE: dict[str, float] = {"a": 16.3, "alpha": 0.126, "b": 26.7, "beta": 0.127, "g": 0.0,
                                         "gamma": 0.0, "c": 0.47, "expansion": 1.0}

# Training FLOPs of the runs behind each set (App. A Tables 3, 4, 7; 6·N_active·D): the E = 64 runs go from
# 64×3M active on 16B tokens (2.9e17) to 64×85M on 33B and 64×13M on 130B (1.7e19, 1.0e19); the dense runs
# from 3M on 16B to 85M on 33B; the E = 16 runs from 16×3M on 8B to 16×25M on 33B and 16×13M on 66B.
PUBLISHED_RANGES: dict[str, tuple[float, float]] = {
    "krajewski2024": (2.9e17, 1.7e19),
    "krajewski2024-dense": (2.9e17, 1.7e19),
    "krajewski2024-e16": (1.4e17, 5.1e18),
}
SOURCES: tuple[tuple[dict[str, float], str], ...] = (
    (KRAJEWSKI2024, "Table 1, MoE row (E = 64)"),
    (KRAJEWSKI2024_VALIDATION, "Table 5 (E = 64, the 20% lowest-loss runs left out)"),
    (KRAJEWSKI2024_E16, "App. D Table 8 (E = 16)"),
    (KRAJEWSKI2024_DENSE, "Table 1, dense row"),
)
"""Where each printed set comes from, for a plan's assumptions."""
CITATION = "Krajewski et al. 2024, Scaling Laws for Fine-Grained Mixture of Experts (arXiv:2402.07871)"
FITTED_GRANULARITY = (1.0, 16.0)
"""G of the runs behind the E = 64 fit (Table 3; 1–16 at E = 16 too)."""


def loss(N: Any, D: Any, G: Any = 1.0, *, a: float, alpha: float, b: float, beta: float, g: float, gamma: float,
         c: float, **_: float) -> Any:
    """Eq. 9 of Krajewski et al. 2024, vectorised; N total non-embedding parameters, D tokens, G granularity."""
    n, d, gr = (np.asarray(x, dtype=float) for x in (N, D, G))
    out = c + (g / gr**gamma + a) / n**alpha + b / d**beta
    return float(out) if out.ndim == 0 else out


class KrajewskiModel(LossModel):
    """Eq. 9 at one layout: Chinchilla's form in total N with A = a + g/G^γ, priced at C = 6·N_active·D."""

    def __init__(self, coefficients: Mapping[str, float], moe: MoeSpec | None = None) -> None:
        missing = [k for k in KEYS if k not in coefficients]
        if missing:
            raise BadInput(f"{NAME} coefficients missing {', '.join(missing)}", field="fit")
        super().__init__(coefficients)
        self.c = {k: float(coefficients[k]) for k in KEYS}
        self.moe = moe
        self.granularity = 1.0 if moe is None else float(moe.granularity)
        self.active_fraction = 1.0 if moe is None else moe.active_fraction
        self.tokens_ratio = 1.0 / self.active_fraction
        """6·N·D / C with C = 6·r·N·D."""
        self.floor = self.c["c"]
        self.chin = {"E": self.c["c"], "A": self.c["a"] + self.c["g"] / self.granularity ** self.c["gamma"],
                     "B": self.c["b"], "alpha": self.c["alpha"], "beta": self.c["beta"]}
        self.frontier_exponent = self.c["alpha"] * self.c["beta"] / (self.c["alpha"] + self.c["beta"])

    @property
    def dense(self) -> bool:
        """The set was fitted on dense models (expansion 1, no granularity term)."""
        return self.c["expansion"] <= 1.0 and self.c["g"] == 0.0

    def for_moe(self, moe: MoeSpec | None) -> LossModel:
        if moe is None:
            if self.dense:
                return self
            # No layout asked for: the one the set was fitted at, E experts of the dense FFN's width, top-1.
            return KrajewskiModel(self.raw, MoeSpec(experts=round(self.c["expansion"]), top_k=1, granularity=1.0))
        if self.dense:
            raise BadInput(
                "krajewski2024-dense was fitted on dense models: plan a mixture of experts with krajewski2024 "
                "(E = 64) or krajewski2024-e16",
                field="moe_experts",
            )
        return KrajewskiModel(self.raw, moe)

    def active_params(self, N):
        return self.active_fraction * np.asarray(N, dtype=float) if np.ndim(N) else self.active_fraction * float(N)

    # -- closed forms: Chinchilla's at C' = C / r
    def loss_nd(self, N, D, unique: float | None = None):
        d = D if unique is None else repeated.effective_data(D, unique)
        return chinchilla.loss(N, d, **self.chin)

    def optimum(self, C: float) -> tuple[float, float]:
        alloc = chinchilla.optimal_allocation(C / self.active_fraction, **self.chin)
        return float(alloc.N), float(alloc.D)

    def optimum_loss(self, C: float) -> float:
        n, d = self.optimum(C)
        return float(chinchilla.loss(n, d, **self.chin))

    def min_compute_for_loss(self, L: float) -> float:
        return self.active_fraction * float(chinchilla.compute_for_loss(L, **self.chin))

    def compute_for_loss(self, N, L):
        k = self.chin
        n = np.asarray(N, dtype=float)
        rest = np.asarray(L - k["E"] - k["A"] / n ** k["alpha"], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(rest > 0, (k["B"] / np.where(rest > 0, rest, 1.0)) ** (1.0 / k["beta"]), np.inf)
        out = 6.0 * self.active_fraction * n * d
        return float(out) if out.ndim == 0 else out

    def converged_loss(self, N: float) -> float:
        return self.chin["E"] + self.chin["A"] / N ** self.chin["alpha"]

    # -- what plans say about it
    def law_warnings(self, params: float, c_min: float, unique: float | None) -> list[str]:
        if self.moe is None:
            return []
        out = []
        fitted_e = self.c["expansion"]
        if not math.isclose(self.moe.expansion_rate, fitted_e, rel_tol=1e-9):
            out.append(
                f"expansion rate experts/granularity = {self.moe.expansion_rate:g}, but this set was fitted at "
                f"E = {fitted_e:g} only (Krajewski et al. 2024 fit E = 64 in Table 1 and E = 16 in Table 8): the "
                "law has no published basis at this expansion rate"
            )
        if not math.isclose(self.moe.top_k, self.moe.granularity, rel_tol=1e-9):
            out.append(
                f"top_k {self.moe.top_k} ≠ granularity {self.moe.granularity:g}: Krajewski et al. route each token "
                "to G experts (one dense FFN's worth of expert parameters); the law sees only total N and G, so "
                "other top-k have no published basis"
            )
        lo, hi = FITTED_GRANULARITY
        if not lo <= self.moe.granularity <= hi:
            out.append(
                f"granularity {self.moe.granularity:g} is outside the {lo:g}–{hi:g} the law was fitted on"
            )
        if self.moe.shared_experts:
            out.append(
                f"{self.moe.shared_experts} shared expert(s): the law was fitted without shared experts; they "
                "are counted in N (memory) and in the active parameters (FLOPs) with no published basis for "
                "their effect on the loss"
            )
        return out

    def source(self) -> str:
        """Which printed table the coefficients are, when they are one."""
        for values, where in SOURCES:
            if all(self.raw.get(k) == v for k, v in values.items()):
                return f"coefficients: {CITATION}, {where}, as printed"
        return "coefficients: as stored with the fit (no printed table matches them)"

    def assumptions(self, published: bool) -> list[str]:
        if self.moe is None:
            return [self.source(),
                    "Krajewski et al. 2024 dense form L = c + a/N^α + b/D^β (N non-embedding) with C = 6·N·D; "
                    "closed-form optimum as Chinchilla's"]
        m = self.moe
        return [
            self.source(),
            "Krajewski et al. 2024 eq. 9: L = c + (g/G^γ + a)/N^α + b/D^β with N the total non-embedding "
            f"parameters and G = {m.granularity:g}; at this layout the law is Chinchilla's form with "
            f"A = a + g/G^γ = {self.chin['A']:.4g}",
            f"FLOPs from the active parameters: C = 6·N_active·D with N_active = {self.active_fraction:.4g}·N "
            f"(per layer (4 + 8·(top_k + shared)/G)·d² of (4 + 8·(experts + shared)/G)·d², router and LayerNorm "
            "gains left out of the ratio); the closed-form optimum is Chinchilla's at C/r. Krajewski et al.'s own "
            "eq. 10 prices the router at 14 FLOPs per parameter, not 6: scaleplan counts it in the active "
            "parameters at 6",
        ]

    def predict(self, N: float, tokens: float, steps: float | None, batch: float | None,
                unique: float | None) -> PredictParts:
        value = float(self.loss_nd(N, tokens, unique))
        text = f"Krajewski et al. 2024 eq. 9 at G = {self.granularity:g}, N the total non-embedding parameters"
        if self.moe is not None:
            text += (f", {self.moe.experts} experts top-{self.moe.top_k}: compute 6·N_active·D with N_active = "
                     f"{self.active_fraction:.4g}·N")
        return PredictParts(loss=value, critical_batch=self.b_crit(value), assumptions=[text])


class KrajewskiMoe(LawFamily):
    """Krajewski et al.'s form; N counts total non-embedding parameters, FLOPs the active ones, GPT-2 tokens."""

    name = NAME
    coefficients = COEFFICIENTS
    conventions = Conventions(params="non-embedding", flops="6N", tokenizer="gpt2 (C4)", seq_len=256,
                              vocab_size=50257, hyperparams="steplaw")
    model_class = KrajewskiModel
    fit_columns: tuple[str, ...] = ()
    """Published-only here: a fit needs the granularity of each run, which the points files do not carry."""
    optional_columns: tuple[str, ...] = ()
    reports_allocation = True
    published_ranges: Mapping[str, tuple[float, float]] = PUBLISHED_RANGES
    reference_range = PUBLISHED_RANGES["krajewski2024"]

    def loss(self, coefficients: Mapping[str, float], N, D):
        return loss(N, D, 1.0, **{k: coefficients[k] for k in KEYS})

    def exponents(self, coefficients: Mapping[str, float]) -> dict[str, float]:
        return {"alpha": coefficients["alpha"], "beta": coefficients["beta"], "gamma": coefficients["gamma"],
                "a": coefficients["beta"] / (coefficients["alpha"] + coefficients["beta"])}

    def allocation_exponent(self, coefficients: Mapping[str, float]) -> float:
        """N_opt ∝ C^(β/(α+β)) at any fixed layout."""
        return coefficients["beta"] / (coefficients["alpha"] + coefficients["beta"])


KRAJEWSKI_MOE = KrajewskiMoe()
