"""Chinchilla-form law, the published sets and the hyperparameter laws, against spec/laws.md."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fits.fit import Fit
from fits.laws import LawDomainError, check_coefficients, hyperparams, published
from fits.laws import chinchilla as ch
from fits.laws.kaplan2020 import KAPLAN2020

SETS = {"hoffmann": ch.HOFFMANN2022, "epoch": ch.BESIROGLU2024}


def test_published_values():
    assert ch.HOFFMANN2022 == {"E": 1.69337, "A": 406.401, "B": 410.723, "alpha": 0.33917, "beta": 0.28491}
    assert ch.HOFFMANN2022_ROUNDED == {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    assert ch.BESIROGLU2024 == {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
    for name, (low, high) in ch.BESIROGLU2024_INTERVALS.items():
        assert low < ch.BESIROGLU2024[name] < high
    for coeffs in (ch.HOFFMANN2022, ch.HOFFMANN2022_ROUNDED, ch.BESIROGLU2024):
        assert check_coefficients("chinchilla", coeffs) == []


@pytest.mark.parametrize(
    ("set_name", "budget", "n_opt", "d_opt", "loss"),
    [
        ("hoffmann", 1e21, 2.22e9, 7.52e10, 2.296),
        ("hoffmann", 5.76e23, 4.04e10, 2.38e12, 1.918),
        ("epoch", 1e21, 2.78e9, 6.00e10, 2.306),
        ("epoch", 5.76e23, 7.23e10, 1.33e12, 1.974),
    ],
)
def test_worked_allocations(set_name, budget, n_opt, d_opt, loss):
    n, d, l_opt = ch.optimal_allocation(budget, **SETS[set_name])
    assert n == pytest.approx(n_opt, rel=0.01)
    assert d == pytest.approx(d_opt, rel=0.01)
    assert l_opt == pytest.approx(loss, rel=0.01)
    assert 6 * n * d == pytest.approx(budget)


def test_tokens_per_parameter_at_chinchilla_budget():
    assert ch.tokens_per_parameter(5.76e23, **ch.BESIROGLU2024) == pytest.approx(18, abs=0.5)
    assert ch.tokens_per_parameter(5.76e23, **ch.HOFFMANN2022) == pytest.approx(59, abs=0.5)
    assert ch.tokens_per_parameter(5.76e23, **ch.HOFFMANN2022_ROUNDED) == pytest.approx(93, abs=0.5)


def test_allocation_exponents():
    assert ch.allocation_exponent(**ch.BESIROGLU2024) == pytest.approx(0.513, abs=0.0005)
    assert ch.allocation_exponent(**ch.HOFFMANN2022) == pytest.approx(0.46, abs=0.005)
    c = np.array([1e19, 1e23])
    n = ch.optimal_allocation(c, **ch.BESIROGLU2024).N
    assert math.log(n[1] / n[0]) / math.log(c[1] / c[0]) == pytest.approx(ch.allocation_exponent(**ch.BESIROGLU2024))


def test_compute_for_loss_and_its_domain():
    for coeffs in SETS.values():
        for C in (1e18, 1e21, 5.76e23):
            target = ch.optimal_allocation(C, **coeffs).loss
            assert ch.compute_for_loss(target, **coeffs) == pytest.approx(C, rel=1e-9)
    with pytest.raises(LawDomainError, match="L_target"):
        ch.compute_for_loss(1.8172, **ch.BESIROGLU2024)
    with pytest.raises(LawDomainError):
        ch.compute_for_loss(np.array([2.5, 1.0]), **ch.BESIROGLU2024)


def test_n_opt_for_data_inverts_the_allocation():
    a = ch.optimal_allocation(np.logspace(18, 25, 5), **ch.BESIROGLU2024)
    assert ch.n_opt_for_data(a.D, **ch.BESIROGLU2024) == pytest.approx(a.N, rel=1e-9)


exponents = st.floats(0.1, 0.9)
scales = st.floats(10.0, 1e4)


@settings(max_examples=100, deadline=None)
@given(
    E=st.floats(0.5, 3.0),
    A=scales,
    B=scales,
    alpha=exponents,
    beta=exponents,
    C=st.floats(1e15, 1e26),
    shift=st.floats(0.05, 2.0),
)
def test_closed_form_optimum_beats_neighbours_on_the_budget_line(E, A, B, alpha, beta, C, shift):
    coeffs = {"E": E, "A": A, "B": B, "alpha": alpha, "beta": beta}
    best = ch.optimal_allocation(C, **coeffs)
    for factor in (math.exp(shift), math.exp(-shift)):
        n = best.N * factor
        assert ch.loss(n, C / (6 * n), **coeffs) > best.loss


@settings(max_examples=100, deadline=None)
@given(N=st.floats(1e6, 1e13), D=st.floats(1e8, 1e14), factor=st.floats(1.01, 100.0))
def test_loss_falls_with_size_and_data_and_stays_above_E(N, D, factor):
    for coeffs in SETS.values():
        base = ch.loss(N, D, **coeffs)
        assert ch.loss(N * factor, D, **coeffs) < base
        assert ch.loss(N, D * factor, **coeffs) < base
        assert base > coeffs["E"]


def test_vectorised_loss_matches_scalar_calls():
    n = np.array([1e8, 1e9, 1e10])
    d = np.array([1e10, 2e10, 4e10])
    out = ch.loss(n, d, **ch.BESIROGLU2024)
    assert isinstance(out, np.ndarray)
    assert out.tolist() == [ch.loss(a, b, **ch.BESIROGLU2024) for a, b in zip(n, d, strict=True)]
    assert isinstance(ch.loss(1e9, 2e10, **ch.BESIROGLU2024), float)


# --- published records --------------------------------------------------------------------------------------


def test_published_records():
    records = published.published_sets()
    assert [(r["name"], r["law"], r["scope"]) for r in records] == [
        ("kaplan2020", "kaplan", "webtext2"),
        ("hoffmann2022", "chinchilla", "massivetext"),
        ("besiroglu2024", "chinchilla", "massivetext"),
        ("krajewski2024-dense", "krajewski-moe", "c4"),
        ("krajewski2024-e16", "krajewski-moe", "c4"),
        ("krajewski2024", "krajewski-moe", "c4"),
    ]
    by_name = {r["name"]: r for r in records}
    assert by_name["kaplan2020"]["coefficients"] == KAPLAN2020
    assert by_name["hoffmann2022"]["coefficients"] == ch.HOFFMANN2022
    assert by_name["besiroglu2024"]["coefficients"] == ch.BESIROGLU2024
    assert by_name["besiroglu2024"]["intervals"]["alpha"] == [0.317, 0.373]
    assert "2e8" in by_name["kaplan2020"]["note"] and "3.1e8" in by_name["kaplan2020"]["note"]
    for r in records:
        assert r["citation"] and check_coefficients(r["law"], r["coefficients"]) == []
    records[0]["coefficients"]["alpha_N"] = 1.0  # copies: the module constants stay intact
    assert KAPLAN2020["alpha_N"] == 0.076


def test_published_fits_round_trip_through_json():
    fits = published.published_fits()
    assert [f.active for f in fits] == [True, False, True, False, False, True]
    for f in fits:
        assert f.provenance.source == "published"
        again = msgspec.json.decode(msgspec.json.encode(f), type=Fit)
        assert again == f


# --- hyperparameter laws ------------------------------------------------------------------------------------


def test_deepseek_laws():
    assert hyperparams.deepseek_lr(1e20) == pytest.approx(0.3118 * 1e20**-0.125)
    assert hyperparams.deepseek_batch(1e20) == pytest.approx(0.2920 * 1e20**0.3271)
    # M_opt·D_opt reproduces the budget (prefactors multiply to 1.0001, exponents sum to 1)
    c = np.logspace(17, 21, 5)
    assert hyperparams.deepseek_m_opt(c) * hyperparams.deepseek_d_opt(c) == pytest.approx(c, rel=1e-3)
    m = hyperparams.deepseek_flops_per_token(24, 2048, 4096)
    assert m == 72 * 24 * 2048**2 + 6 * 24 * 2048 * 4096
    assert hyperparams.range_warnings(hyperparams.DEEPSEEK2024_RANGES, C=1e18) == []
    (warning,) = hyperparams.range_warnings(hyperparams.DEEPSEEK2024_RANGES, C=np.array([1e18, 1e21]))
    assert warning.startswith("C = 1e+18..1e+21")


def test_step_law():
    assert hyperparams.step_law_lr(1e9, 1e11) == pytest.approx(1.79 * 1e9**-0.713 * 1e11**0.307)
    assert hyperparams.step_law_batch(1e11) == pytest.approx(0.58 * 1e11**0.571)
    assert hyperparams.step_law_lr(2e9, 1e11) < hyperparams.step_law_lr(1e9, 1e11)
    assert hyperparams.range_warnings(hyperparams.STEP_LAW2025_RANGES, N=5e8, D=1e10) == []
    warnings = hyperparams.range_warnings(hyperparams.STEP_LAW2025_RANGES, N=1e8, D=1e12)
    assert [w.split(" ")[0] for w in warnings] == ["N", "D"]
