"""Repeated data (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models").

Training on D tokens drawn from U_D unique tokens (D/U_D epochs) is priced by replacing D and N in the
Chinchilla form with effective values whose returns decay exponentially in the number of repetitions:

    R_D = D/U_D − 1,   D' = U_D + U_D·R*_D·(1 − exp(−R_D/R*_D)),   R*_D = 15.4
    U_N = min(N_opt(U_D), N),   R_N = N/U_N − 1,   N' = U_N + U_N·R*_N·(1 − exp(−R_N/R*_N)),   R*_N = 5.3

N_opt(U_D) is the model size whose compute-optimal token count equals U_D. With D ≤ U_D (no repetition)
D' = D; with N ≤ N_opt(U_D), N' = N. As repetitions grow, D' → U_D·(1 + R*_D).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from fits.laws import FloatOrArray, as_array, as_result, chinchilla, require_positive

R_STAR_D = 15.4
"""Repetitions after which repeated tokens have lost ~63% of their value (Muennighoff et al. 2023)."""
R_STAR_N = 5.3
"""The same decay constant for parameters in excess of the data-optimal size."""


def _effective(total: np.ndarray, unique: np.ndarray, r_star: float) -> np.ndarray:
    extra = np.maximum(total / unique - 1.0, 0.0)
    decayed = unique + unique * r_star * (-np.expm1(-extra / r_star))
    return np.where(total <= unique, total, decayed)


def effective_data(D: npt.ArrayLike, U_D: npt.ArrayLike, *, r_star: float = R_STAR_D) -> FloatOrArray:
    """Effective tokens D' of D tokens drawn from U_D unique ones."""
    d, u = require_positive("D", D), require_positive("U_D", U_D)
    return as_result(_effective(d, u, r_star))


def effective_params(N: npt.ArrayLike, U_N: npt.ArrayLike, *, r_star: float = R_STAR_N) -> FloatOrArray:
    """Effective parameters N' of a size-N model when only U_N parameters are worth training on the data."""
    n, u = require_positive("N", N), require_positive("U_N", U_N)
    return as_result(_effective(n, u, r_star))


def unique_params(
    N: npt.ArrayLike,
    U_D: npt.ArrayLike,
    n_opt_for_data: Callable[[np.ndarray], npt.ArrayLike] | Mapping[str, float],
) -> FloatOrArray:
    """U_N = min(N_opt(U_D), N).

    n_opt_for_data is either a callable U_D -> N_opt, or a Chinchilla coefficient set from which the
    closed-form allocation gives it.
    """
    u = as_array(U_D)
    if callable(n_opt_for_data):
        n_opt = as_array(n_opt_for_data(u))
    else:
        n_opt = as_array(chinchilla.n_opt_for_data(u, **n_opt_for_data))
    return as_result(np.minimum(n_opt, as_array(N)))


def loss_repeated(
    N: npt.ArrayLike,
    D: npt.ArrayLike,
    U_D: npt.ArrayLike,
    coeffs: Mapping[str, float],
    *,
    n_opt_for_data: Callable[[np.ndarray], npt.ArrayLike] | None = None,
    r_star_d: float = R_STAR_D,
    r_star_n: float = R_STAR_N,
) -> FloatOrArray:
    """Chinchilla loss at effective N' and D' for D tokens drawn from U_D unique tokens.

    coeffs is a Chinchilla set (E, A, B, alpha, beta); N_opt(U_D) comes from its allocation unless
    n_opt_for_data is given.
    """
    u_n = unique_params(N, U_D, coeffs if n_opt_for_data is None else n_opt_for_data)
    n_eff = effective_params(N, u_n, r_star=r_star_n)
    d_eff = effective_data(D, U_D, r_star=r_star_d)
    return chinchilla.loss(n_eff, d_eff, **{k: coeffs[k] for k in ("E", "A", "B", "alpha", "beta")})
