"""Learning-rate and batch-size laws, each with the range it was fitted on so callers can warn outside it.

DeepSeek LLM 2024   eta_opt = 0.3118·C^−0.1250,  B_opt = 0.2920·C^0.3271 tokens,
                    M_opt = 0.1715·C^0.5243 FLOPs/token,  D_opt = 5.8316·C^0.4757 tokens,
                    with C = M·D and M = non-embedding FLOPs per token (attention included, see
                    deepseek_flops_per_token); fitted on C 1e17–2e19 (checked at 1e20).
Step Law 2025       eta_opt = 1.79·N^−0.713·D^0.307,  B_opt = 0.58·D^0.571 tokens;
                    fitted on N 2e8–1.1e9, D 4e9–1e11 (Li et al. 2025).
Kaplan 2020         LR(N) = 0.003239 − 0.0001395·ln N (eq D.1, natural log; fits.laws.kaplan2020).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from fits import accounting
from fits.laws import FloatOrArray, as_array, as_result, kaplan2020


class FittedRange(NamedTuple):
    """The span of one input over which a law was fitted."""

    variable: str
    low: float
    high: float
    unit: str


DEEPSEEK2024: dict[str, float] = {
    "lr_coef": 0.3118,
    "lr_exp": -0.1250,
    "batch_coef": 0.2920,
    "batch_exp": 0.3271,
    "m_coef": 0.1715,
    "m_exp": 0.5243,
    "d_coef": 5.8316,
    "d_exp": 0.4757,
}
DEEPSEEK2024_RANGES: tuple[FittedRange, ...] = (FittedRange("C", 1e17, 2e19, "FLOPs (C = M·D)"),)

STEP_LAW2025: dict[str, float] = {
    "lr_coef": 1.79,
    "lr_exp_N": -0.713,
    "lr_exp_D": 0.307,
    "batch_coef": 0.58,
    "batch_exp": 0.571,
}
STEP_LAW2025_RANGES: tuple[FittedRange, ...] = (
    FittedRange("N", 2e8, 1.1e9, "parameters"),
    FittedRange("D", 4e9, 1e11, "tokens"),
)

KAPLAN2020_LR_RANGES: tuple[FittedRange, ...] = (FittedRange("N", 768.0, 1.5e9, "non-embedding parameters"),)
"""Sizes trained in the paper; the rule breaks down outright above kaplan2020.LR_VALID_MAX_N (1e10)."""


def range_warnings(ranges: tuple[FittedRange, ...], **values: npt.ArrayLike) -> list[str]:
    """One message per input that falls outside its fitted range, e.g. range_warnings(DEEPSEEK2024_RANGES, C=c)."""
    messages = []
    for r in ranges:
        if r.variable not in values:
            continue
        v = as_array(values[r.variable])
        if np.any(v < r.low) or np.any(v > r.high):
            span = f"{v.min():.3g}" if v.min() == v.max() else f"{v.min():.3g}..{v.max():.3g}"
            messages.append(
                f"{r.variable} = {span} {r.unit} is outside the fitted range {r.low:.3g}..{r.high:.3g}; extrapolating"
            )
    return messages


# DeepSeek LLM 2024


def deepseek_flops_per_token(n_layer: npt.ArrayLike, d_model: npt.ArrayLike, seq_len: npt.ArrayLike) -> FloatOrArray:
    """M = 72·n_layer·d_model² + 6·n_layer·d_model·seq_len: non-embedding training FLOPs per token, i.e.
    fits.accounting's "kaplan" convention on N = 12·n_layer·d_model², without the head."""
    return as_result(accounting.shape_flops_per_token(as_array(n_layer), as_array(d_model), as_array(seq_len),
                                                      "kaplan"))


def deepseek_lr(C: npt.ArrayLike) -> FloatOrArray:
    """Optimal peak learning rate at compute C = M·D FLOPs."""
    return as_result(DEEPSEEK2024["lr_coef"] * as_array(C) ** DEEPSEEK2024["lr_exp"])


def deepseek_batch(C: npt.ArrayLike) -> FloatOrArray:
    """Optimal batch size in tokens at compute C = M·D FLOPs."""
    return as_result(DEEPSEEK2024["batch_coef"] * as_array(C) ** DEEPSEEK2024["batch_exp"])


def deepseek_m_opt(C: npt.ArrayLike) -> FloatOrArray:
    """Compute-optimal non-embedding FLOPs per token M at compute C."""
    return as_result(DEEPSEEK2024["m_coef"] * as_array(C) ** DEEPSEEK2024["m_exp"])


def deepseek_d_opt(C: npt.ArrayLike) -> FloatOrArray:
    """Compute-optimal training tokens at compute C."""
    return as_result(DEEPSEEK2024["d_coef"] * as_array(C) ** DEEPSEEK2024["d_exp"])


# Step Law (Li et al. 2025)


def step_law_lr(N: npt.ArrayLike, D: npt.ArrayLike) -> FloatOrArray:
    """Optimal peak learning rate for N parameters trained on D tokens."""
    s = STEP_LAW2025
    return as_result(s["lr_coef"] * as_array(N) ** s["lr_exp_N"] * as_array(D) ** s["lr_exp_D"])


def step_law_batch(D: npt.ArrayLike) -> FloatOrArray:
    """Optimal batch size in tokens for D training tokens (independent of N)."""
    return as_result(STEP_LAW2025["batch_coef"] * as_array(D) ** STEP_LAW2025["batch_exp"])


# Kaplan 2020 reference

kaplan_lr = kaplan2020.learning_rate
"""LR(N) = 0.003239 − 0.0001395·ln N (eq D.1, natural log)."""
