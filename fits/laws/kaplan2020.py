"""Kaplan et al. 2020, "Scaling Laws for Neural Language Models" (arXiv 2001.08361v1).

Units: N non-embedding parameters, D/B/E tokens, S optimizer steps, L nats per token. Compute arguments are
PF-days wherever the paper's constants are (``*_pfd`` names; 1 PF-day = 8.64e19 FLOPs, see fits.units), and
FLOPs elsewhere (``*_flops`` names). Every function accepts floats or arrays.

Constant sets (never mix them inside one formula):
    Table 5 (eqs 1.1-1.4, 1.6)   unprefixed keys of KAPLAN2020: alpha_N, N_c, alpha_D, D_c, alpha_C, C_c, ...
    Table 2 (L(N, D), eq 1.5)    ``nd_`` keys
    Table 3 (L(N, S), eq 1.6)    ``ns_`` keys
    Table 6 (allocation)         N_e, p_N, B_e, p_B, S_e, p_S, D_e, p_D; C_min in PF-days

Where the paper disagrees with itself, these choices are made (docs/laws.md lists them too):
    1. B_star = 2e8 tokens (eq 1.4 and §5.1 text), not 2.1e8 (Table 5, Fig. 10 legend): a ~5% effect on B_crit.
    2. C_c_min = 3.1e8 PF-days (eq 1.3, Table 5), not 2.3e8 (Fig. 1/13 legends): a ~1.5% effect on L.
    3. C_c = 1.6e7 PF-days (Table 5), not 2.0e7 (Fig. 13 legend, one transcription only).
    4. The theoretical alpha_C^min (eqs 6.4 / B.7 print 0.054 / 0.052) is computed, never stored:
       alpha_c_theory() gives 0.0520 with alpha_N = 0.076 and 0.0525 with 0.077.
    5. D_required = 5e3·N^0.74 (eq 4.4): the 0.74 is alpha_N/alpha_D of Table 2 (0.738), not of Table 5 (0.80).
    6. One-epoch data on the frontier uses Table 6 (D_e = 2e10, p_D = 0.27), not eq 6.7's 4e10·C^0.26.
    7. LR(N) (eq D.1) uses the natural log; the paper does not state the base (ln puts the zero crossing at
       1.2e10, matching the stated breakdown above 1e10).
The figure-legend alternatives are in KAPLAN2020_FIGURE_VARIANTS, keyed like KAPLAN2020 so that
``{**KAPLAN2020, **KAPLAN2020_FIGURE_VARIANTS}`` is a complete alternative set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from fits import accounting
from fits.errors import BadInput
from fits.laws import Coefficient, FloatOrArray, LawDomainError, as_array, as_result
from fits.units import PF_DAY

KAPLAN2020: dict[str, float] = {
    # Table 5 / eqs 1.1-1.4, 1.6
    "alpha_N": 0.076,
    "N_c": 8.8e13,  # non-embedding parameters
    "alpha_D": 0.095,
    "D_c": 5.4e13,  # tokens
    "alpha_C": 0.057,
    "C_c": 1.6e7,  # PF-days (naive, fixed batch 2^19)
    "alpha_C_min": 0.050,
    "C_c_min": 3.1e8,  # PF-days
    "alpha_B": 0.21,
    "B_star": 2e8,  # tokens; eq 1.4 text value (Table 5 prints 2.1e8)
    "alpha_S": 0.76,
    "S_c": 2.1e3,  # steps
    # Table 2: L(N, D)
    "nd_alpha_N": 0.076,
    "nd_alpha_D": 0.103,
    "nd_N_c": 6.4e13,
    "nd_D_c": 1.8e13,
    # Table 3: L(N, S)
    "ns_alpha_N": 0.077,
    "ns_alpha_S": 0.76,
    "ns_N_c": 6.5e13,
    "ns_S_c": 2.1e3,
    # Table 6: compute-efficient trends, C_min in PF-days
    "N_e": 1.3e9,
    "p_N": 0.73,
    "B_e": 2.0e6,
    "p_B": 0.24,
    "S_e": 5.4e3,
    "p_S": 0.03,
    "D_e": 2e10,
    "p_D": 0.27,
}
"""The published Kaplan 2020 constants, as one flat dict (the store's coefficient keys)."""

KAPLAN2020_FIGURE_VARIANTS: dict[str, float] = {
    "B_star": 2.1e8,  # Table 5 and Fig. 10 legend
    "C_c_min": 2.3e8,  # Fig. 1 and Fig. 13 legends
    "C_c": 2.0e7,  # Fig. 13 legend (single transcription)
    "D_e": 4e10,  # eq 6.7
    "p_D": 0.26,  # eq 6.7
}
"""Alternative values printed elsewhere in the paper; overlay on KAPLAN2020 to use them."""

D_REQUIRED_PREFACTOR = 5e3
D_REQUIRED_EXPONENT = 0.74
LR_INTERCEPT = 0.003239
LR_SLOPE = 0.0001395
LR_VALID_MAX_N = 1e10
"""Above this, eq D.1 breaks down (the LR reaches zero at N ≈ 1.2e10)."""


def _coef(name: str, unit: str, low: float, high: float, description: str) -> Coefficient:
    return Coefficient(name=name, unit=unit, low=low, high=high, description=description)


def _exp(name: str, description: str, high: float = 1.0) -> Coefficient:
    return _coef(name, "1", 1e-3, high, description)


COEFFICIENTS: tuple[Coefficient, ...] = (
    _exp("alpha_N", "L(N) exponent, eq 1.1"),
    _coef("N_c", "parameters", 1e6, 1e20, "L(N) scale, eq 1.1"),
    _exp("alpha_D", "L(D) exponent, eq 1.2"),
    _coef("D_c", "tokens", 1e6, 1e20, "L(D) scale, eq 1.2"),
    _exp("alpha_C", "naive L(C) exponent at fixed batch"),
    _coef("C_c", "PF-days", 1e-3, 1e15, "naive L(C) scale at fixed batch"),
    _exp("alpha_C_min", "L(C_min) exponent, eq 1.3"),
    _coef("C_c_min", "PF-days", 1e-3, 1e15, "L(C_min) scale, eq 1.3"),
    _exp("alpha_B", "critical-batch exponent, eq 1.4"),
    _coef("B_star", "tokens", 1e3, 1e12, "critical-batch scale, eq 1.4"),
    _exp("alpha_S", "step-term exponent, eq 1.6", high=3.0),
    _coef("S_c", "steps", 1.0, 1e8, "step-term scale, eq 1.6"),
    _exp("nd_alpha_N", "Table 2 N exponent"),
    _exp("nd_alpha_D", "Table 2 D exponent"),
    _coef("nd_N_c", "parameters", 1e2, 1e20, "Table 2 N scale"),
    _coef("nd_D_c", "tokens", 1e2, 1e20, "Table 2 D scale"),
    _exp("ns_alpha_N", "Table 3 N exponent"),
    _exp("ns_alpha_S", "Table 3 step exponent", high=3.0),
    _coef("ns_N_c", "parameters", 1e2, 1e20, "Table 3 N scale"),
    _coef("ns_S_c", "steps", 1.0, 1e8, "Table 3 step scale"),
    _coef("N_e", "parameters", 1e3, 1e15, "Table 6 N_opt prefactor (C_min in PF-days)"),
    _exp("p_N", "Table 6 N_opt exponent"),
    _coef("B_e", "tokens", 1e2, 1e10, "Table 6 batch prefactor"),
    _exp("p_B", "Table 6 batch exponent"),
    _coef("S_e", "steps", 1.0, 1e8, "Table 6 S_min prefactor"),
    _coef("p_S", "1", -0.5, 1.0, "Table 6 S_min exponent (may be zero)"),
    _coef("D_e", "tokens", 1e4, 1e15, "Table 6 one-epoch data prefactor"),
    _exp("p_D", "Table 6 one-epoch data exponent"),
)
"""Specs of every key of KAPLAN2020 (law family "kaplan")."""

_BY_NAME = {c.name: c for c in COEFFICIENTS}


def _unprefixed(spec: Coefficient, prefix: str) -> Coefficient:
    return _coef(spec.name.removeprefix(prefix), spec.unit, spec.low, spec.high, spec.description)


ND_NAMES = ("alpha_N", "alpha_D", "N_c", "D_c")
NS_NAMES = ("alpha_N", "alpha_S", "N_c", "S_c")
BATCH_NAMES = ("B_star", "alpha_B")
ND_COEFFICIENTS: tuple[Coefficient, ...] = tuple(_unprefixed(_BY_NAME["nd_" + n], "nd_") for n in ND_NAMES)
"""Family "kaplan-nd": L(N, D) of eq 1.5."""
NS_COEFFICIENTS: tuple[Coefficient, ...] = tuple(_unprefixed(_BY_NAME["ns_" + n], "ns_") for n in NS_NAMES)
"""Family "kaplan-ns": L(N, S_min) of eq 1.6; a fit may carry its own B_star and alpha_B (batch_coefficients)."""


def _pick(coeffs: Mapping[str, float], names: tuple[str, ...], prefix: str) -> dict[str, float]:
    # A published set carries prefixed keys; a refitted kaplan-nd / kaplan-ns fit carries bare ones.
    if all(prefix + n in coeffs for n in names):
        return {n: float(coeffs[prefix + n]) for n in names}
    missing = [n for n in names if n not in coeffs]
    if missing:
        raise BadInput(f"missing {', '.join(missing)} (or their {prefix} forms)", field="coefficients")
    return {n: float(coeffs[n]) for n in names}


def nd_coefficients(coeffs: Mapping[str, float] = KAPLAN2020) -> dict[str, float]:
    """alpha_N, alpha_D, N_c, D_c for loss_nd, from a published set (nd_ keys) or a kaplan-nd fit."""
    return _pick(coeffs, ND_NAMES, "nd_")


def ns_coefficients(coeffs: Mapping[str, float] = KAPLAN2020) -> dict[str, float]:
    """alpha_N, alpha_S, N_c, S_c for loss_ns, from a published set (ns_ keys) or a kaplan-ns fit."""
    return _pick(coeffs, NS_NAMES, "ns_")


def batch_coefficients(coeffs: Mapping[str, float] = KAPLAN2020) -> dict[str, float]:
    """B_star, alpha_B from coeffs, falling back to the published values (a kaplan-ns fit made with
    ``batch="fitted"`` carries the ones it converted its steps with)."""
    return {n: float(coeffs.get(n, KAPLAN2020[n])) for n in BATCH_NAMES}


_K = KAPLAN2020

TABLE2: dict[str, float] = {n: _K["nd_" + n] for n in ND_NAMES}
"""L(N, D) coefficients of Table 2: the defaults of loss_nd, overfitting and s_stop."""
TABLE3: dict[str, float] = {n: _K["ns_" + n] for n in NS_NAMES}
"""L(N, S) coefficients of Table 3: the defaults of loss_ns, loss_after_steps and the App. B frontier."""
TABLE5_BATCH: dict[str, float] = {n: _K[n] for n in BATCH_NAMES}
"""B_crit(L) coefficients of Table 5 (eq 1.4): the defaults wherever a batch is converted."""
TABLE5_STEPS: dict[str, float] = {"alpha_S": _K["alpha_S"], "S_c": _K["S_c"]}
"""The step term of Table 5, which eq 5.7 uses beside Table 2's surface."""


class _Coefficients(dict):
    """Coefficients by attribute (c.alpha_N) as well as by key."""

    __getattr__ = dict.__getitem__


def _given(coefficients: Mapping[str, float], *defaults: Mapping[str, float]) -> _Coefficients:
    """The coefficients a law function was called with, over the published sets it defaults to.

    Law functions take their coefficients as keywords (``loss_nd(N, D, **nd_coefficients(fit))``); one
    resolver, rather than a default per keyword in every signature, keeps each set's defaults in one place.
    """
    out = _Coefficients()
    for d in defaults:
        out.update(d)
    unknown = sorted(set(coefficients) - set(out))
    if unknown:
        raise TypeError(f"unexpected coefficient(s) {', '.join(unknown)}; expected {', '.join(out)}")
    out.update((k, float(v)) for k, v in coefficients.items())
    return out

# ---------------------------------------------------------------------------------------------------------
# Single-variable laws (Table 5)


def loss_n(N: npt.ArrayLike, *, alpha_N: float = _K["alpha_N"], N_c: float = _K["N_c"]) -> FloatOrArray:
    """Converged loss of a size-N model with enough data, eq 1.1."""
    return as_result((N_c / as_array(N)) ** alpha_N)


def loss_d(D: npt.ArrayLike, *, alpha_D: float = _K["alpha_D"], D_c: float = _K["D_c"]) -> FloatOrArray:
    """Early-stopped loss of a large model on D tokens, eq 1.2."""
    return as_result((D_c / as_array(D)) ** alpha_D)


def loss_c(C_pfd: npt.ArrayLike, *, alpha_C: float = _K["alpha_C"], C_c: float = _K["C_c"]) -> FloatOrArray:
    """Naive compute law at fixed batch 2^19 (Table 5), C in PF-days."""
    return as_result((C_c / as_array(C_pfd)) ** alpha_C)


def loss_c_min(
    C_min_pfd: npt.ArrayLike, *, alpha_C_min: float = _K["alpha_C_min"], C_c_min: float = _K["C_c_min"]
) -> FloatOrArray:
    """Loss on the compute-efficient frontier, eq 1.3, C_min in PF-days."""
    return as_result((C_c_min / as_array(C_min_pfd)) ** alpha_C_min)


# ---------------------------------------------------------------------------------------------------------
# Critical batch size and batch adjustments (eqs 5.1-5.5)


def b_crit(L: npt.ArrayLike, **batch: float) -> FloatOrArray:
    """Critical batch size in tokens at loss L, eq 1.4 / 5.3 (``batch``: B_star, alpha_B; Table 5 defaults)."""
    c = _given(batch, TABLE5_BATCH)
    return as_result(c.B_star / as_array(L) ** (1.0 / c.alpha_B))


def s_min(S: npt.ArrayLike, B: npt.ArrayLike, L: npt.ArrayLike, **batch: float) -> FloatOrArray:
    """Minimum steps equivalent to S steps at batch B when the target loss is L, eq 5.4."""
    bc = as_array(b_crit(L, **batch))
    return as_result(as_array(S) / (1.0 + bc / as_array(B)))


def steps_at_batch(S_min: npt.ArrayLike, B: npt.ArrayLike, L: npt.ArrayLike, **batch: float) -> FloatOrArray:
    """Inverse of s_min: steps at batch B, S = S_min·(1 + B_crit/B)."""
    bc = as_array(b_crit(L, **batch))
    return as_result(as_array(S_min) * (1.0 + bc / as_array(B)))


def c_min(C: npt.ArrayLike, B: npt.ArrayLike, L: npt.ArrayLike, **batch: float) -> FloatOrArray:
    """Minimum compute equivalent to compute C spent at batch B, eq 5.5 (any compute unit)."""
    bc = as_array(b_crit(L, **batch))
    return as_result(as_array(C) / (1.0 + as_array(B) / bc))


def e_min(E: npt.ArrayLike, B: npt.ArrayLike, L: npt.ArrayLike, **batch: float) -> FloatOrArray:
    """Minimum tokens equivalent to E tokens processed at batch B: E = E_min·(1 + B/B_crit), from eq 5.1."""
    return c_min(E, B, L, **batch)


# ---------------------------------------------------------------------------------------------------------
# L(N, D), overfitting, data requirement (eqs 1.5, 4.1-4.4; Table 2)


def loss_nd(N: npt.ArrayLike, D: npt.ArrayLike, **nd: float) -> FloatOrArray:
    """Early-stopped loss of a size-N model on D tokens, eq 1.5 (family "kaplan-nd"; ``nd``: alpha_N, alpha_D,
    N_c, D_c, Table 2 defaults)."""
    c = _given(nd, TABLE2)
    n, d = as_array(N), as_array(D)
    return as_result(((c.N_c / n) ** (c.alpha_N / c.alpha_D) + c.D_c / d) ** c.alpha_D)


def overfitting(N: npt.ArrayLike, D: npt.ArrayLike, **nd: float) -> FloatOrArray:
    """Relative loss excess δL = L(N, D)/L(N, ∞) − 1, eqs 4.2/4.3 (the 4.3 form is exact; Table 2 defaults)."""
    c = _given(nd, TABLE2)
    n, d = as_array(N), as_array(D)
    return as_result((1.0 + (n / c.N_c) ** (c.alpha_N / c.alpha_D) * c.D_c / d) ** c.alpha_D - 1.0)


def d_required(N: npt.ArrayLike) -> FloatOrArray:
    """Tokens needed to keep overfitting near the 0.02 seed noise, D ≳ 5e3·N^0.74 (eq 4.4)."""
    return as_result(D_REQUIRED_PREFACTOR * as_array(N) ** D_REQUIRED_EXPONENT)


def n_max_for_data(D: npt.ArrayLike) -> FloatOrArray:
    """Largest model that eq 4.4 allows on D tokens."""
    return as_result((as_array(D) / D_REQUIRED_PREFACTOR) ** (1.0 / D_REQUIRED_EXPONENT))


# ---------------------------------------------------------------------------------------------------------
# L(N, S) and its uses (eqs 1.6, 5.6, 5.7; Table 3)


def loss_ns(N: npt.ArrayLike, S_min: npt.ArrayLike, **ns: float) -> FloatOrArray:
    """Loss after S_min (batch-adjusted) steps with unlimited data, eq 1.6 (family "kaplan-ns"; ``ns``:
    alpha_N, alpha_S, N_c, S_c, Table 3 defaults)."""
    c = _given(ns, TABLE3)
    return as_result((c.N_c / as_array(N)) ** c.alpha_N + (c.S_c / as_array(S_min)) ** c.alpha_S)


def s_stop(N: npt.ArrayLike, D: npt.ArrayLike, **coefficients: float) -> FloatOrArray:
    """Lower bound on the early-stopping step, in S_min units, eq 5.7.

    L(N, D) and L(N, ∞) come from the L(N, D) surface (alpha_N, alpha_D, N_c, D_c; Table 2 by default);
    S_c, alpha_S from Table 5. Convert to steps at a batch with steps_at_batch.
    """
    c = _given(coefficients, TABLE2, TABLE5_STEPS)
    nd = {k: c[k] for k in ND_NAMES}
    excess = as_array(loss_nd(N, D, **nd)) - (c.N_c / as_array(N)) ** c.alpha_N
    return as_result(c.S_c / excess ** (1.0 / c.alpha_S))


class StepsToLoss(NamedTuple):
    """What it takes a size-N model to reach a target loss at batch B (compute in FLOPs)."""

    S_min: FloatOrArray
    B_crit: FloatOrArray
    S: FloatOrArray
    E: FloatOrArray
    E_min: FloatOrArray
    C_flops: FloatOrArray
    C_min_flops: FloatOrArray


def steps_to_loss(N: npt.ArrayLike, L_target: npt.ArrayLike, B: npt.ArrayLike, **coefficients: float) -> StepsToLoss:
    """Steps, tokens and FLOPs for a size-N model to reach L_target at batch B (coefficients: Table 3's
    L(N, S) and Table 5's B_crit by default).

    Raises LawDomainError when L_target ≤ L(N, ∞): the target is unreachable at that size.
    """
    c = _given(coefficients, TABLE3, TABLE5_BATCH)
    n, lt, b = as_array(N), as_array(L_target), as_array(B)
    l_inf = (c.N_c / n) ** c.alpha_N
    if np.any(lt <= l_inf):
        raise LawDomainError(
            f"{lt!s} is not above the converged loss L(N, ∞) = {l_inf!s}; unreachable at this N", field="L_target"
        )
    smin = c.S_c / (lt - l_inf) ** (1.0 / c.alpha_S)
    bc = c.B_star / lt ** (1.0 / c.alpha_B)
    s = smin * (1.0 + bc / b)
    e = b * s
    emin = bc * smin
    c = 6.0 * n * e
    return StepsToLoss(
        S_min=as_result(smin),
        B_crit=as_result(bc),
        S=as_result(s),
        E=as_result(e),
        E_min=as_result(emin),
        C_flops=as_result(c),
        C_min_flops=as_result(6.0 * n * emin),
    )


def loss_after_steps(
    N: npt.ArrayLike, S: npt.ArrayLike, B: npt.ArrayLike, *, iterations: int = 100, **coefficients: float
) -> FloatOrArray:
    """Loss after S steps at batch B with unlimited data, valid after warmup (coefficients: Table 3's L(N, S)
    and Table 5's B_crit by default).

    Solves L = (N_c/N)^α_N + (S_c/S_min)^α_S with S_min = S/(1 + B_crit(L)/B) by bisection: the right side
    falls as L rises (B_crit shrinks), so the root is unique and lies between the values the right side takes
    with B_crit → 0 and with B_crit = B_crit(L(N, ∞)).
    """
    c = _given(coefficients, TABLE3, TABLE5_BATCH)
    n, s, b = np.broadcast_arrays(as_array(N), as_array(S), as_array(B))
    l_inf = (c.N_c / n) ** c.alpha_N

    def rhs(L: np.ndarray) -> np.ndarray:
        bc = c.B_star / L ** (1.0 / c.alpha_B)
        return l_inf + (c.S_c * (1.0 + bc / b) / s) ** c.alpha_S

    lo = l_inf + (c.S_c / s) ** c.alpha_S
    hi = rhs(l_inf)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = rhs(mid) > mid  # root lies above mid
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
        if np.all(hi - lo <= 1e-12 * hi):
            break
    return as_result(0.5 * (lo + hi))


# ---------------------------------------------------------------------------------------------------------
# Compute-efficient frontier: empirical (Table 6) and theoretical (App. B.3-B.10)


class Frontier(NamedTuple):
    """Compute-efficient allocation at a given C_min.

    D is the tokens processed when training at B = B_crit (2·E_min), which is also the least unique data
    for single-epoch training; training at B_crit takes S = 2·S_min steps and C = 2·C_min.
    """

    N: FloatOrArray
    B_crit: FloatOrArray
    S_min: FloatOrArray
    D: FloatOrArray
    loss: FloatOrArray


def frontier_table6(C_min_pfd: npt.ArrayLike, coeffs: Mapping[str, float] = KAPLAN2020) -> Frontier:
    """Table 6 trends (eqs 6.1, 6.2) at C_min in PF-days; loss from eq 1.3 (Table 5)."""
    c = as_array(C_min_pfd)
    return Frontier(
        N=as_result(coeffs["N_e"] * c ** coeffs["p_N"]),
        B_crit=as_result(coeffs["B_e"] * c ** coeffs["p_B"]),
        S_min=as_result(coeffs["S_e"] * c ** coeffs["p_S"]),
        D=as_result(coeffs["D_e"] * c ** coeffs["p_D"]),
        loss=loss_c_min(c, alpha_C_min=coeffs["alpha_C_min"], C_c_min=coeffs["C_c_min"]),
    )


def c_min_of_budget(C_flops: npt.ArrayLike, batch_ratio: float = 1.0) -> FloatOrArray:
    """C_min in PF-days for a budget spent at B = batch_ratio·B_crit: C_min = C/(1 + B/B_crit), eq 5.5."""
    return as_result(as_array(C_flops) / PF_DAY / (1.0 + batch_ratio))


def alpha_c_theory(
    alpha_N: float = _K["ns_alpha_N"], alpha_S: float = _K["ns_alpha_S"], alpha_B: float = _K["alpha_B"]
) -> float:
    """Predicted frontier exponent α_C^min = 1/(1/α_S + 1/α_B + 1/α_N), eq B.7 (eq 6.4 prints 0.054)."""
    return 1.0 / (1.0 / alpha_S + 1.0 / alpha_B + 1.0 / alpha_N)


def c_c_theory(**coefficients: float) -> float:
    """Predicted frontier scale C_c in PF-days, eq B.8 (about 1.5e8 vs Table 5's 3.1e8); takes the whole
    L(N, S) + B_crit set, though B.8 does not depend on alpha_B."""
    c = _given(coefficients, TABLE3, TABLE5_BATCH)
    r = c.alpha_N / c.alpha_S
    flops = (6.0 * c.N_c * c.B_star * c.S_c * (1.0 + r) ** (1.0 / c.alpha_S + 1.0 / c.alpha_N)
             * (1.0 / r) ** (1.0 / c.alpha_S))
    return flops / PF_DAY


def frontier_ns(C_min_pfd: npt.ArrayLike, **coefficients: float) -> Frontier:
    """Frontier derived from L(N, S) and B_crit(L), eqs B.5-B.10: for fits with no Table 6.

    C and S in App. B are batch-adjusted (C_min, S_min). Satisfies C_min = 6·N·B_crit·S_min exactly.
    """
    k = _given(coefficients, TABLE3, TABLE5_BATCH)
    alpha_N, alpha_S, N_c, B_star, alpha_B = (k[n] for n in ("alpha_N", "alpha_S", "N_c", "B_star", "alpha_B"))
    c = as_array(C_min_pfd)
    a_c = alpha_c_theory(alpha_N, alpha_S, alpha_B)
    c_c = c_c_theory(**k)
    growth = 1.0 + alpha_N / alpha_S
    n = N_c * (c / c_c) ** (a_c / alpha_N) * growth ** (1.0 / alpha_N)  # B.9
    smin = c_c * PF_DAY / (6.0 * N_c * B_star) * growth ** (-1.0 / alpha_N) * (c / c_c) ** (a_c / alpha_S)  # B.10
    loss = (c_c / c) ** a_c  # B.6
    bc = B_star / loss ** (1.0 / alpha_B)
    return Frontier(
        N=as_result(n), B_crit=as_result(bc), S_min=as_result(smin), D=as_result(2.0 * bc * smin), loss=as_result(loss)
    )


# ---------------------------------------------------------------------------------------------------------
# Convergence factor (B.11-B.14) and the non-optimal size penalty (B.16, B.17)


def convergence_factor(alpha_N: float = _K["alpha_N"], alpha_S: float = _K["alpha_S"]) -> float:
    """f with L = (1 + f)·L(N, ∞) at the compute-efficient stopping point: f = α_N/α_S ≈ 0.10 (B.5)."""
    return alpha_N / alpha_S


class ConvergenceTradeoff(NamedTuple):
    """Ratios at equal loss between stopping at factor f and at factor f_prime (B.12-B.14)."""

    params: float
    steps: float
    compute: float


def convergence_tradeoff(
    f: float | None = None,
    f_prime: float = 0.02,
    *,
    alpha_N: float = _K["alpha_N"],
    alpha_S: float = _K["alpha_S"],
) -> ConvergenceTradeoff:
    """B.12-B.14; defaults compare compute-efficient (f = α_N/α_S) with training to within 2% of convergence."""
    if f is None:
        f = convergence_factor(alpha_N, alpha_S)
    params = ((1.0 + f) / (1.0 + f_prime)) ** (1.0 / alpha_N)
    steps = ((1.0 + 1.0 / f) / (1.0 + 1.0 / f_prime)) ** (1.0 / alpha_S)
    return ConvergenceTradeoff(params=params, steps=steps, compute=params * steps)


def _size_penalty_base(ratio: npt.ArrayLike, alpha_N: float, alpha_S: float) -> np.ndarray:
    r = as_array(ratio)
    return (1.0 + (alpha_S / alpha_N) * (1.0 - r ** (-alpha_N))) ** (-1.0 / alpha_S)


def excess_compute(
    ratio: npt.ArrayLike, *, alpha_N: float = _K["alpha_N"], alpha_S: float = _K["alpha_S"]
) -> FloatOrArray:
    """Compute multiplier for a model of size ratio·N_eff reaching N_eff's loss, eq B.16."""
    return as_result(as_array(ratio) * _size_penalty_base(ratio, alpha_N, alpha_S))


def excess_steps(
    ratio: npt.ArrayLike, *, alpha_N: float = _K["alpha_N"], alpha_S: float = _K["alpha_S"]
) -> FloatOrArray:
    """Step multiplier for a model of size ratio·N_eff reaching N_eff's loss, eq B.17."""
    return as_result(_size_penalty_base(ratio, alpha_N, alpha_S))


# ---------------------------------------------------------------------------------------------------------
# Where the laws must stop (eq 6.8)


class CriticalPoint(NamedTuple):
    C_min_pfd: float
    N: float
    D: float
    loss: float


def critical_point(
    coeffs: Mapping[str, float] = KAPLAN2020,
    *,
    data_prefactor: float | None = None,
    data_exponent: float | None = None,
) -> CriticalPoint:
    """Intersection of L(C_min) (eq 1.3) with L(D) (eq 1.2) along one-epoch frontier data D = D_e·C_min^p_D.

    The paper (eq 6.8) quotes C* ~ 1e4 PF-days, N* ~ 1e12, D* ~ 1e12, L* ~ 1.7, each uncertain by an order
    of magnitude; computing it from Table 5/6 gives D* nearer 3e11. Data defaults to Table 6's D_e, p_D.
    """
    d_e = coeffs["D_e"] if data_prefactor is None else data_prefactor
    p_d = coeffs["p_D"] if data_exponent is None else data_exponent
    a_c, c_c = coeffs["alpha_C_min"], coeffs["C_c_min"]
    a_d, d_c = coeffs["alpha_D"], coeffs["D_c"]
    # a_c·(ln C_c − ln C) = a_d·(ln D_c − ln d_e − p_d·ln C)
    log_c = (a_d * np.log(d_c / d_e) - a_c * np.log(c_c)) / (a_d * p_d - a_c)
    c = float(np.exp(log_c))
    return CriticalPoint(
        C_min_pfd=c,
        N=float(coeffs["N_e"] * c ** coeffs["p_N"]),
        D=float(d_e * c**p_d),
        loss=float((c_c / c) ** a_c),
    )


# ---------------------------------------------------------------------------------------------------------
# Learning rate (eq D.1) and parameter count (eq 2.1)


def learning_rate(N: npt.ArrayLike) -> FloatOrArray:
    """Adam LR rule of thumb, eq D.1: 0.003239 − 0.0001395·ln(N).

    Natural log (the paper omits the base; ln matches its stated breakdown above N ≈ 1e10, where this
    reaches zero at 1.2e10). Do not use past LR_VALID_MAX_N.
    """
    return as_result(LR_INTERCEPT - LR_SLOPE * np.log(as_array(N)))


def non_embedding_params(
    n_layer: npt.ArrayLike,
    d_model: npt.ArrayLike,
    d_ff: npt.ArrayLike | None = None,
    d_attn: npt.ArrayLike | None = None,
) -> FloatOrArray:
    """N ≈ 2·d_model·n_layer·(2·d_attn + d_ff), eq 2.1 (12·n_layer·d_model² for the standard shape);
    fits.accounting.kaplan_params in the law's float-or-array convention."""
    ff = None if d_ff is None else as_array(d_ff)
    attn = None if d_attn is None else as_array(d_attn)
    return as_result(accounting.kaplan_params(as_array(n_layer), as_array(d_model), ff, attn))
