"""Chinchilla form (Hoffmann et al. 2022, approach 3): L(N, D) = E + A/N^alpha + B/D^beta.

N counts all parameters (Hoffmann's convention), D training tokens, L nats per token, C FLOPs with C = 6·N·D.
Coefficient keys are exactly E, A, B, alpha, beta, so a set is passed as ``loss(N, D, **BESIROGLU2024)``.

Under C = 6·N·D the loss-minimising split has a closed form:
    G = (alpha·A / (beta·B))^(1/(alpha+beta))
    N_opt = G·(C/6)^a,  D_opt = (C/6)^b / G,  a = beta/(alpha+beta),  b = alpha/(alpha+beta)
and the loss at the optimum is L*(C) = E + K·(C/6)^(−alpha·beta/(alpha+beta)), which inverts in closed form.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from fits.laws import Coefficient, FloatOrArray, LawDomainError, as_array, as_result

COEFFICIENTS: tuple[Coefficient, ...] = (
    Coefficient(name="E", unit="nats/token", low=0.0, high=10.0, description="irreducible loss of the data"),
    Coefficient(name="A", unit="nats/token·params^alpha", low=1e-3, high=1e12, description="model-size term scale"),
    Coefficient(name="B", unit="nats/token·tokens^beta", low=1e-3, high=1e12, description="data term scale"),
    Coefficient(name="alpha", unit="1", low=1e-2, high=2.0, description="model-size exponent"),
    Coefficient(name="beta", unit="1", low=1e-2, high=2.0, description="data exponent"),
)
"""Specs of law family "chinchilla"; bounds span the fitting grid of laws.md §2 (alpha, beta up to 2)."""

HOFFMANN2022: dict[str, float] = {"E": 1.69337, "A": 406.401, "B": 410.723, "alpha": 0.33917, "beta": 0.28491}
"""Hoffmann et al. 2022 approach-3 fit on MassiveText, unrounded (the canonical set here)."""

HOFFMANN2022_ROUNDED: dict[str, float] = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
"""The same fit rounded as printed in the paper; its allocation differs visibly (93 vs 59 tokens/param)."""

BESIROGLU2024: dict[str, float] = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
"""Besiroglu et al. 2024 (Epoch AI) refit of 240 points read off Hoffmann's Fig. 4."""

BESIROGLU2024_INTERVALS: dict[str, list[float]] = {
    "E": [1.769, 1.871],
    "A": [285.2, 743.6],
    "B": [1042.4, 5810.3],
    "alpha": [0.317, 0.373],
    "beta": [0.331, 0.415],
}
"""Epoch's 95% bootstrap intervals (4,000 resamples)."""


def loss(
    N: npt.ArrayLike, D: npt.ArrayLike, *, E: float, A: float, B: float, alpha: float, beta: float
) -> FloatOrArray:
    """L(N, D) = E + A/N^alpha + B/D^beta."""
    return as_result(E + A / as_array(N) ** alpha + B / as_array(D) ** beta)


def allocation_exponent(*, alpha: float, beta: float, **_: float) -> float:
    """a = beta/(alpha+beta), the exponent in N_opt ∝ C^a (D_opt ∝ C^(1−a)). Extra coefficients are ignored."""
    return beta / (alpha + beta)


def g_factor(*, A: float, B: float, alpha: float, beta: float, **_: float) -> float:
    """G = (alpha·A/(beta·B))^(1/(alpha+beta)). Extra coefficients (E) are ignored."""
    return (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))


class Allocation(NamedTuple):
    """Compute-optimal split of a budget C = 6·N·D."""

    N: FloatOrArray
    D: FloatOrArray
    loss: FloatOrArray


def optimal_allocation(C: npt.ArrayLike, *, E: float, A: float, B: float, alpha: float, beta: float) -> Allocation:
    """N_opt, D_opt and the loss there, for training FLOPs C under C = 6·N·D."""
    x = as_array(C) / 6.0
    g = g_factor(A=A, B=B, alpha=alpha, beta=beta)
    a = beta / (alpha + beta)
    n = g * x**a
    d = x ** (1.0 - a) / g
    return Allocation(N=as_result(n), D=as_result(d), loss=loss(n, d, E=E, A=A, B=B, alpha=alpha, beta=beta))


def n_opt_for_data(D: npt.ArrayLike, *, A: float, B: float, alpha: float, beta: float, **_: float) -> FloatOrArray:
    """The model size whose compute-optimal token count equals D (inverse of D_opt along the frontier)."""
    g = g_factor(A=A, B=B, alpha=alpha, beta=beta)
    b = alpha / (alpha + beta)
    x = (as_array(D) * g) ** (1.0 / b)  # C/6 at which D_opt = D
    return as_result(x / as_array(D))


def _frontier_scale(A: float, B: float, alpha: float, beta: float) -> tuple[float, float]:
    # L*(C) − E = K·(C/6)^(−gamma): both penalty terms scale with the same power along the frontier.
    g = g_factor(A=A, B=B, alpha=alpha, beta=beta)
    gamma = alpha * beta / (alpha + beta)
    k = A * g ** (-alpha) + B * g**beta
    return k, gamma


def compute_for_loss(
    L_target: npt.ArrayLike, *, E: float, A: float, B: float, alpha: float, beta: float
) -> FloatOrArray:
    """Least training FLOPs that reach L_target, i.e. the budget whose compute-optimal loss is L_target.

    Raises LawDomainError when L_target ≤ E: no finite budget gets there.
    """
    lt = as_array(L_target)
    if np.any(lt <= E):
        raise LawDomainError(f"{lt!s} is not above the irreducible loss E = {E}; unreachable", field="L_target")
    k, gamma = _frontier_scale(A, B, alpha, beta)
    return as_result(6.0 * (k / (lt - E)) ** (1.0 / gamma))


def tokens_per_parameter(C: npt.ArrayLike, *, E: float, A: float, B: float, alpha: float, beta: float) -> FloatOrArray:
    """D_opt/N_opt at budget C (about 18 with Epoch's set at Chinchilla's 5.76e23 FLOPs)."""
    alloc = optimal_allocation(C, E=E, A=A, B=B, alpha=alpha, beta=beta)
    return as_result(as_array(alloc.D) / as_array(alloc.N))
