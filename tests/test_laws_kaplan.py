"""Kaplan 2020 laws against the worked numbers of spec/kaplan2020.md, plus properties of the formulas."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from fits.laws import LawDomainError, check_coefficients, coefficient_specs, hyperparams
from fits.laws import kaplan2020 as k
from fits.units import PF_DAY


def assert_printed(actual: float, printed: str) -> None:
    """actual rounds to the printed value: within half a unit of its last printed digit (plus 10% slack)."""
    ulp = 10.0 ** Decimal(printed).as_tuple().exponent
    assert abs(actual - float(printed)) <= 0.55 * ulp, f"{actual:.6g} does not round to {printed}"


def test_assert_printed_rejects_a_wrong_digit():
    assert_printed(2.957, "2.957")
    assert_printed(1.6e8, "1.6e8")
    with pytest.raises(AssertionError):
        assert_printed(2.963, "2.957")
    with pytest.raises(AssertionError):
        assert_printed(1.7e8, "1.6e8")


# --- constants and coefficient specs ---------------------------------------------------------------------


def test_published_dict_has_the_exact_keys_and_values():
    expected = {
        "alpha_N": 0.076, "N_c": 8.8e13, "alpha_D": 0.095, "D_c": 5.4e13, "alpha_C": 0.057, "C_c": 1.6e7,
        "alpha_C_min": 0.050, "C_c_min": 3.1e8, "alpha_B": 0.21, "B_star": 2e8, "alpha_S": 0.76, "S_c": 2.1e3,
        "nd_alpha_N": 0.076, "nd_alpha_D": 0.103, "nd_N_c": 6.4e13, "nd_D_c": 1.8e13,
        "ns_alpha_N": 0.077, "ns_alpha_S": 0.76, "ns_N_c": 6.5e13, "ns_S_c": 2.1e3,
        "N_e": 1.3e9, "p_N": 0.73, "B_e": 2.0e6, "p_B": 0.24, "S_e": 5.4e3, "p_S": 0.03, "D_e": 2e10, "p_D": 0.27,
    }  # fmt: skip
    assert expected == k.KAPLAN2020
    assert set(k.KAPLAN2020_FIGURE_VARIANTS) <= set(k.KAPLAN2020)
    assert k.KAPLAN2020_FIGURE_VARIANTS["B_star"] == 2.1e8
    assert k.KAPLAN2020_FIGURE_VARIANTS["C_c_min"] == 2.3e8


def test_coefficient_specs_cover_and_bound_every_published_value():
    assert [c.name for c in k.COEFFICIENTS] == list(k.KAPLAN2020)
    assert check_coefficients("kaplan", k.KAPLAN2020) == []
    assert check_coefficients("kaplan-nd", k.nd_coefficients()) == []
    assert check_coefficients("kaplan-ns", k.ns_coefficients()) == []
    assert [c.name for c in coefficient_specs("kaplan-nd")] == ["alpha_N", "alpha_D", "N_c", "D_c"]
    assert [c.name for c in coefficient_specs("kaplan-ns")] == ["alpha_N", "alpha_S", "N_c", "S_c"]
    assert check_coefficients("kaplan-nd", {"alpha_N": 5.0, "alpha_D": 0.1, "N_c": 1e13}) == [
        "alpha_N: 5 outside [0.001, 1] 1",
        "D_c: missing",
    ]
    with pytest.raises(ValueError, match="law"):
        coefficient_specs("nope")


def test_family_helpers_strip_prefixes_and_accept_refit_dicts():
    assert k.nd_coefficients(k.KAPLAN2020) == {"alpha_N": 0.076, "alpha_D": 0.103, "N_c": 6.4e13, "D_c": 1.8e13}
    assert k.ns_coefficients(k.KAPLAN2020) == {"alpha_N": 0.077, "alpha_S": 0.76, "N_c": 6.5e13, "S_c": 2.1e3}
    refit = {"alpha_N": 0.08, "alpha_S": 0.7, "N_c": 1e13, "S_c": 1e3}
    assert k.ns_coefficients(refit) == refit
    assert k.batch_coefficients(refit) == {"B_star": 2e8, "alpha_B": 0.21}
    with pytest.raises(ValueError, match="D_c"):
        k.nd_coefficients({"alpha_N": 0.08, "alpha_D": 0.1, "N_c": 1e13})
    assert k.loss_nd(1e9, 1e10, **k.nd_coefficients()) == k.loss_nd(1e9, 1e10)


def test_scalar_in_scalar_out_array_in_array_out():
    assert isinstance(k.loss_n(1e8), float)
    out = k.loss_n(np.array([1e8, 1e9]))
    assert isinstance(out, np.ndarray) and out.shape == (2,)
    assert isinstance(k.loss_after_steps(1e8, 5e4, 2**19), float)


# --- §3.3 single-variable laws ----------------------------------------------------------------------------


@pytest.mark.parametrize(("N", "printed"), [(1e6, "4.02"), (1e8, "2.83"), (1.5e9, "2.30"), (1e10, "1.99")])
def test_loss_n_examples(N, printed):
    assert_printed(k.loss_n(N), printed)


def test_rules_of_thumb():
    assert_printed(k.loss_n(2e8) / k.loss_n(1e8), "0.95")
    assert_printed(k.loss_n(1e9) / k.loss_n(1e8), "0.839")
    assert_printed(k.loss_d(1e10) / k.loss_d(1e9), "0.804")
    assert_printed(k.loss_c_min(10.0) / k.loss_c_min(1.0), "0.891")
    # 1% lower loss on the frontier costs ~22% more compute
    assert_printed(brentq(lambda c: k.loss_c_min(c) - 0.99 * k.loss_c_min(1.0), 1.0, 2.0), "1.22")


# --- §4.4 L(N, D), overfitting, data requirement ----------------------------------------------------------


@pytest.mark.parametrize(
    ("N", "D", "l_nd", "l_inf", "delta", "d_req"),
    [
        (1e8, 1e9, "2.957", "2.762", "0.070", "4.2e9"),
        (1e8, 1e10, "2.788", "2.762", "0.009", "4.2e9"),
        (1e9, 1e10, "2.420", "2.319", "0.043", "2.3e10"),
        (1e9, 2.29e10, "2.368", "2.319", "0.021", "2.3e10"),
    ],
)
def test_overfitting_table(N, D, l_nd, l_inf, delta, d_req):
    assert_printed(k.loss_nd(N, D), l_nd)
    assert_printed(k.loss_n(N, **{n: k.nd_coefficients()[n] for n in ("alpha_N", "N_c")}), l_inf)
    assert_printed(k.loss_nd(N, np.inf), l_inf)
    assert_printed(k.overfitting(N, D), delta)
    assert_printed(k.d_required(N), d_req)


def test_data_requirement_rules():
    assert_printed(k.n_max_for_data(2.29e10), "1.0e9")
    assert_printed(k.d_required(8e9) / k.d_required(1e9), "4.66")
    # eq 4.4 data keeps δL at ~2.1% across the measured sizes
    sizes = np.logspace(7, np.log10(1.5e9), 9)
    assert np.allclose(k.overfitting(sizes, k.d_required(sizes)), 0.021, atol=0.0015)


# --- §5.2 critical batch ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("L", "printed"),
    [(10, "3.5e3"), (6, "3.9e4"), (4, "2.7e5"), (3, "1.07e6"), (2.5, "2.55e6"), (2.3, "3.8e6"), (2.0, "7.4e6")],
)
def test_b_crit_table(L, printed):
    assert_printed(k.b_crit(L), printed)


def test_b_crit_doubles_per_13_percent_loss_drop():
    assert_printed(k.b_crit(0.865) / k.b_crit(1.0), "2.0")


def test_batch_adjustments_are_consistent():
    L, B, S = 3.0, 2**19, 5e4
    smin = k.s_min(S, B, L)
    assert k.steps_at_batch(smin, B, L) == pytest.approx(S)
    E = B * S
    emin = k.e_min(E, B, L)
    assert emin == pytest.approx(k.b_crit(L) * smin)  # E_min = B_crit·S_min
    assert (S / smin - 1) * (E / emin - 1) == pytest.approx(1.0)  # eq 5.1
    assert k.c_min(6 * 1e8 * E, B, L) == pytest.approx(6 * 1e8 * emin)


# --- §6.2 and §7: L(N, S) and the early-stopping step -----------------------------------------------------


@pytest.mark.parametrize(("N", "table3", "eq11"), [(1e8, "2.803", "2.830"), (1e9, "2.347", "2.376")])
def test_ns_asymptote_vs_eq_1_1(N, table3, eq11):
    assert_printed(k.loss_ns(N, np.inf), table3)
    assert_printed(k.loss_n(N), eq11)


@pytest.mark.parametrize(("N", "D", "printed"), [(1e8, 1e9, "1.8e4"), (1e9, 1e10, "4.3e4"), (3e8, 2e8, "3.2e3")])
def test_s_stop_examples(N, D, printed):
    assert_printed(k.s_stop(N, D), printed)


# --- §8 compute-efficient frontier ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("C", "cmin", "N", "B", "S", "D", "L", "L_ns"),
    [
        (1e19, "0.058", "1.6e8", "1.0e6", "9.9e3", "9.3e9", "3.07", "3.22"),
        (1e20, "0.58", "8.7e8", "1.75e6", "1.06e4", "1.7e10", "2.73", "2.87"),
        (1e21, "5.8", "4.7e9", "3.05e6", "1.14e4", "3.2e10", "2.44", "2.55"),
        (1e22, "58", "2.5e10", "5.3e6", "1.22e4", "6.0e10", "2.17", "2.28"),
        (1e23, "579", "1.35e11", "9.2e6", "1.31e4", "1.1e11", "1.93", "2.03"),
    ],
)
def test_q1_budget_rows(C, cmin, N, B, S, D, L, L_ns):
    c_min = k.c_min_of_budget(C)  # train at B = B_crit: C_min = C/2
    f = k.frontier_table6(c_min)
    assert_printed(c_min, cmin)
    assert_printed(f.N, N)
    assert_printed(f.B_crit, B)
    assert_printed(2 * f.S_min, S)
    assert_printed(f.D, D)
    assert_printed(f.loss, L)
    assert_printed(k.loss_ns(f.N, f.S_min), L_ns)
    # B_crit from eq 1.4 at the frontier loss agrees with Table 6's batch trend within ~6%
    assert k.b_crit(f.loss) == pytest.approx(f.B_crit, rel=0.07)


def test_table6_internal_consistency():
    assert_printed(k.b_crit(k.loss_c_min(1.0)), "1.9e6")
    assert_printed(PF_DAY / (6 * 1.3e9 * 2e6), "5.5e3")
    growth = k.frontier_table6(10.0)
    base = k.frontier_table6(1.0)
    assert_printed(growth.N / base.N, "5.37")
    assert_printed(growth.D / base.D, "1.86")


def test_theory_numbers_of_section_8_2():
    assert_printed(k.alpha_c_theory(), "0.0525")
    assert_printed(k.alpha_c_theory(alpha_N=0.076), "0.0520")
    a_c = k.alpha_c_theory()
    assert_printed(a_c / 0.077, "0.68")
    assert_printed(a_c / 0.21, "0.25")
    assert_printed(a_c / 0.76, "0.07")
    assert_printed(k.c_c_theory(), "1.5e8")
    assert_printed(k.c_c_theory() * PF_DAY, "1.3e28")
    f = k.frontier_ns(1.0)
    assert_printed(f.N, "6e8")
    assert_printed(f.S_min, "1.3e4")


def test_ns_frontier_exponents_and_stopping_point():
    c = np.array([1e-2, 1e2])
    f = k.frontier_ns(c)
    slope = lambda y: np.log(y[1] / y[0]) / np.log(c[1] / c[0])  # noqa: E731
    a_c = k.alpha_c_theory()
    assert slope(f.N) == pytest.approx(a_c / 0.077)
    assert slope(f.B_crit) == pytest.approx(a_c / 0.21)
    assert slope(f.S_min) == pytest.approx(a_c / 0.76)
    # B.5: the frontier stops α_N/α_S above the converged loss, and L(N, S_min) reproduces B.6's loss
    assert f.loss == pytest.approx((1 + 0.077 / 0.76) * k.loss_ns(f.N, np.inf))
    assert k.loss_ns(f.N, f.S_min) == pytest.approx(f.loss)


@settings(max_examples=50, deadline=None)
@given(
    c=st.floats(1e-6, 1e6),
    alpha_N=st.floats(0.03, 0.3),
    alpha_S=st.floats(0.3, 1.5),
    N_c=st.floats(1e11, 1e15),
    S_c=st.floats(1e2, 1e4),
)
def test_ns_frontier_spends_exactly_its_compute_and_is_optimal(c, alpha_N, alpha_S, N_c, S_c):
    ns = {"alpha_N": alpha_N, "alpha_S": alpha_S, "N_c": N_c, "S_c": S_c}
    f = k.frontier_ns(c, **ns)
    assert 6 * f.N * f.B_crit * f.S_min / PF_DAY == pytest.approx(c, rel=1e-9)
    # B.4: a size off the frontier needs more C_min for the same loss
    for ratio in (0.7, 1.4):
        r = k.steps_to_loss(ratio * f.N, f.loss, 1e30, **ns)  # B → ∞: C_min = 6·N·B_crit·S_min
        assert r.C_min_flops / PF_DAY > c * (1 - 1e-9)


def test_convergence_tradeoff_b12_b14():
    t = k.convergence_tradeoff()
    assert (t.params, t.steps, t.compute) == pytest.approx((2.70, 0.133, 0.36), rel=0.01)
    t77 = k.convergence_tradeoff(alpha_N=0.077)
    assert (t77.params, t77.steps, t77.compute) == pytest.approx((2.71, 0.131, 0.354), rel=0.005)
    assert k.convergence_factor() == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("ratio", "compute", "steps"),
    [
        (0.5, "1.39", "2.79"), (0.6, "1.16", "1.94"), (1, "1.00", "1.00"), (1.5, "1.06", "0.71"), (2, "1.16", "0.58"),
        (2.2, "1.20", "0.55"), (3, "1.38", "0.46"), (5, "1.83", "0.37"), (10, "2.84", "0.28"),
    ],
)  # fmt: skip
def test_size_penalty_table(ratio, compute, steps):
    assert_printed(k.excess_compute(ratio), compute)
    assert_printed(k.excess_steps(ratio), steps)


def test_twenty_percent_band():
    lo = brentq(lambda r: k.excess_compute(r) - 1.2, 0.3, 1.0)
    hi = brentq(lambda r: k.excess_compute(r) - 1.2, 1.0, 5.0)
    assert_printed(lo, "0.58")
    assert_printed(hi, "2.18")


def test_critical_point():
    table6 = k.critical_point(data_prefactor=2 * PF_DAY / (6 * k.KAPLAN2020["N_e"]))
    assert_printed(table6.C_min_pfd, "1.7e4")
    assert_printed(table6.N, "1.6e12")
    assert_printed(table6.D, "3e11")
    assert_printed(table6.loss, "1.64")
    eq67 = k.critical_point({**k.KAPLAN2020, "D_e": 4e10, "p_D": 0.26})
    assert_printed(eq67.C_min_pfd, "1.1e5")
    assert_printed(eq67.loss, "1.49")
    default = k.critical_point()  # the paper's "C* ~ 1e4 PF-days, L* ~ 1.7"
    assert 1e4 <= default.C_min_pfd <= 2e4
    assert default.loss == pytest.approx(1.7, abs=0.05)
    assert k.loss_c_min(default.C_min_pfd) == pytest.approx(k.loss_d(default.D))
    assert_printed(k.loss_c_min(1e4), "1.68")
    assert_printed(k.frontier_table6(1e4).N, "1.1e12")


# --- §19 Q3 and Q4 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("N", "L", "B", "b_crit", "s_min", "S", "E", "C", "C_min"),
    [
        (1e8, 3.0, 2**19, "1.07e6", "1.8e4", "5.4e4", "2.8e10", "0.20", "0.13"),
        (1e9, 2.6, 2**19, "2.1e6", "1.28e4", "6.5e4", "3.4e10", "2.35", "1.88"),
        (1e9, 2.6, 4e6, "2.1e6", "1.28e4", "1.96e4", "7.9e10", "5.45", "1.88"),
    ],
)
def test_q3_steps_to_loss(N, L, B, b_crit, s_min, S, E, C, C_min):
    r = k.steps_to_loss(N, L, B)
    assert_printed(r.B_crit, b_crit)
    assert_printed(r.S_min, s_min)
    assert_printed(r.S, S)
    assert_printed(r.E, E)
    assert_printed(r.C_flops / PF_DAY, C)
    assert_printed(r.C_min_flops / PF_DAY, C_min)
    assert (r.S / r.S_min - 1) * (r.E / r.E_min - 1) == pytest.approx(1.0)


def test_q3_rejects_unreachable_target():
    with pytest.raises(LawDomainError, match="L_target"):
        k.steps_to_loss(1e8, 2.7, 2**19)  # L(N, ∞) = 2.80 with Table 3


@settings(max_examples=60, deadline=None)
@given(
    N=st.floats(1e5, 1e11),
    excess=st.floats(0.01, 3.0),
    B=st.floats(1e4, 1e8),
)
def test_q4_inverts_q3(N, excess, B):
    target = k.loss_ns(N, np.inf) + excess
    r = k.steps_to_loss(N, target, B)
    assert k.loss_after_steps(N, r.S, B) == pytest.approx(target, rel=1e-9)


def test_q4_is_vectorised_and_falls_with_steps():
    steps = np.array([1e3, 1e4, 1e5, 1e6])
    losses = k.loss_after_steps(1e8, steps, 2**19)
    assert losses.shape == (4,)
    assert np.all(np.diff(losses) < 0)
    assert np.all(losses > k.loss_ns(1e8, np.inf))


# --- monotonicity ----------------------------------------------------------------------------------------

sizes = st.floats(1e3, 1e13)
tokens = st.floats(1e6, 1e14)


@settings(max_examples=100, deadline=None)
@given(N=sizes, D=tokens, factor=st.floats(1.01, 100.0))
def test_losses_fall_with_size_and_data(N, D, factor):
    assert k.loss_nd(N * factor, D) < k.loss_nd(N, D)
    assert k.loss_nd(N, D * factor) < k.loss_nd(N, D)
    assert k.loss_ns(N * factor, 1e4) < k.loss_ns(N, 1e4)
    assert k.loss_ns(N, D * factor / 1e6) < k.loss_ns(N, D / 1e6)
    assert k.overfitting(N, D * factor) < k.overfitting(N, D)
    assert k.overfitting(N, D) > 0
    assert k.loss_nd(N, D) > max(k.loss_nd(N, np.inf), k.loss_d(D, alpha_D=0.103, D_c=1.8e13))


# --- §10 learning rate and eq 2.1 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("N", "printed"), [(768, "2.3e-3"), (3e6, "1.16e-3"), (1e8, "6.7e-4"), (1.5e9, "2.9e-4"), (1e10, "2.7e-5")]
)
def test_learning_rate_natural_log(N, printed):
    assert_printed(k.learning_rate(N), printed)
    assert hyperparams.kaplan_lr(N) == k.learning_rate(N)


def test_learning_rate_zero_crossing_and_range():
    assert_printed(brentq(k.learning_rate, 1e9, 1e11), "1.2e10")
    assert hyperparams.range_warnings(hyperparams.KAPLAN2020_LR_RANGES, N=1e8) == []
    assert hyperparams.range_warnings(hyperparams.KAPLAN2020_LR_RANGES, N=2e10)


@pytest.mark.parametrize(
    ("n_layer", "d_model", "printed"),
    [(2, 128, "3.93e5"), (36, 1280, "7.08e8"), (48, 1600, "1.47e9"), (6, 4288, "1.32e9"), (207, 768, "1.47e9")],
)
def test_reference_shapes(n_layer, d_model, printed):
    assert_printed(k.non_embedding_params(n_layer, d_model), printed)
