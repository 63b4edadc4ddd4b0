"""Chinchilla family (Hoffmann et al. 2022): L(N, D) = E + A/N^α + B/D^β, N counting all parameters.

Unconstrained budgets use the closed-form allocation (fits.laws.chinchilla); constrained ones hand the
model's vectorised loss(N, C) to planner.constraints. Repeated data is priced with Muennighoff et al.'s
effective N' and D' (fits.laws.repeated).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fits.errors import BadInput
from fits.fitting.linear_forms import ChinchillaLinear
from fits.laws import chinchilla, repeated
from fits.laws.base import Conventions, LawFamily, LossModel, PredictParts

KEYS = ("E", "A", "B", "alpha", "beta")

# Hoffmann et al. 2022 trained 70M–16B models on IsoFLOP profiles from 6e18 to 3e21 FLOPs; Epoch's refit
# reads the same runs off their Fig. 4. Chinchilla itself (5.76e23) was a prediction, not a fitted point.
PUBLISHED_COMPUTE_RANGE = (6e18, 3e21)
PUBLISHED_DATA_RANGES: dict[str, tuple[float, float]] = {
    "N": (5.7e7, 1.6e10),
    "D": (8.2e8, 3.2e11),
    "tokens_per_param": (0.46, 341.0),
}
"""The 240 points Besiroglu et al. fitted (Epoch's reading of Hoffmann's Fig. 4, the 5 highest-loss rows
dropped): the runs Hoffmann's approach 3 was fitted on, as far as the figure shows them."""


class ChinchillaModel(LossModel):
    """Loss as a function of parameters and training compute, for one Chinchilla coefficient set."""

    tokens_ratio = 1.0
    """6·N·D / C: exact for this family."""

    def __init__(self, coefficients: Mapping[str, float]) -> None:
        missing = [k for k in KEYS if k not in coefficients]
        if missing:
            raise BadInput(f"chinchilla coefficients missing {', '.join(missing)}", field="fit")
        self.raw = {k: float(v) for k, v in coefficients.items()}
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

    # -- what plans and predictions say about it
    def effective_point(self, N: float, D: float, unique: float | None) -> tuple[float, float]:
        """Muennighoff's effective N', D' under repetition (N, D themselves with fresh data)."""
        if unique is None:
            return N, D
        n_eff = float(repeated.effective_params(N, repeated.unique_params(N, unique, self.c)))
        return n_eff, float(repeated.effective_data(D, unique))

    def repetition_warning(self, params: float, tokens: float, unique: float, epochs: float, loss: float) -> str:
        fresh = float(self.loss_nd(params, tokens))
        return (
            f"{epochs:.2g} epochs over {unique:.3g} unique tokens: the repeated-data law (Muennighoff et al. "
            f"2023) prices the repetition at +{loss - fresh:.3g} nats over fresh data"
        )

    def assumptions(self, published: bool) -> list[str]:
        out = [
            "Chinchilla form L = E + A/N^α + B/D^β with C = 6·N·D; closed-form optimum "
            "N = G·(C/6)^(β/(α+β)), numerical 1-D search in N when constraints bind"
        ]
        if published:
            out.append(
                "published Chinchilla sets count all parameters in N: the shape is sized so that its total "
                "parameters (embeddings included) are N, and params_non_embedding is what the batch and "
                "learning-rate rules get"
            )
        return out

    def predict(self, N: float, tokens: float, steps: float | None, batch: float | None,
                unique: float | None) -> PredictParts:
        loss = float(self.loss_nd(N, tokens, unique))
        return PredictParts(
            loss=loss,
            critical_batch=self.b_crit(loss),
            assumptions=["Chinchilla L(N, D)" + (" at Muennighoff's effective N', D'" if unique else "")],
            band_at=self.effective_point(N, tokens, unique),
        )


class Chinchilla(LawFamily):
    """Hoffmann et al.'s form; N counts all parameters, C = 6·N·D, constants in MassiveText tokens."""

    name = "chinchilla"
    coefficients = chinchilla.COEFFICIENTS
    conventions = Conventions(params="total", flops="6N", tokenizer="sentencepiece-32k (MassiveText)",
                              seq_len=2048, vocab_size=32000, hyperparams="deepseek")
    model_class = ChinchillaModel
    reports_allocation = True
    published_ranges: Mapping[str, tuple[float, float]] = {
        "hoffmann2022": PUBLISHED_COMPUTE_RANGE,
        "besiroglu2024": PUBLISHED_COMPUTE_RANGE,
    }
    published_data_ranges: Mapping[str, Mapping[str, tuple[float, float]]] = {
        "hoffmann2022": PUBLISHED_DATA_RANGES,
        "besiroglu2024": PUBLISHED_DATA_RANGES,
    }
    reference_range = PUBLISHED_COMPUTE_RANGE
    """Where a fit without a recorded range is taken to have been made, for its coefficient-draw band."""
    linear_form = ChinchillaLinear()

    def loss(self, coefficients: Mapping[str, float], N, D):
        return chinchilla.loss(N, D, **{k: coefficients[k] for k in KEYS})

    def data_penalty(self, coefficients: Mapping[str, float], N: float, D: float) -> tuple[float, float]:
        """The data term B/D^β is exactly L(N, D) − L(N, ∞)."""
        return float(self.loss(coefficients, N, D)), coefficients["B"] / D ** coefficients["beta"]

    def exponents(self, coefficients: Mapping[str, float]) -> dict[str, float]:
        return {"alpha": coefficients["alpha"], "beta": coefficients["beta"],
                "a": chinchilla.allocation_exponent(**coefficients)}

    def allocation_exponent(self, coefficients: Mapping[str, float]) -> float:
        return chinchilla.allocation_exponent(**coefficients)

    def form(self, points: Any) -> Any:
        from fits.fitting.chinchilla_fit import ChinchillaForm

        return ChinchillaForm.for_points(points)


CHINCHILLA = Chinchilla()
