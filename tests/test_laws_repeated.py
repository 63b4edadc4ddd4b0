"""Repeated-data law (Muennighoff et al. 2023, spec/laws.md §5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fits.laws import LawDomainError
from fits.laws import chinchilla as ch
from fits.laws import repeated as rp

EPOCH = ch.BESIROGLU2024


def test_constants():
    assert rp.R_STAR_D == 15.4
    assert rp.R_STAR_N == 5.3


def test_formula_at_known_points():
    u = 1e9
    # 4 epochs: R_D = 3, D' = U(1 + 15.4·(1 − e^(−3/15.4)))
    assert rp.effective_data(4e9, u) == pytest.approx(u * (1 + 15.4 * (1 - math.exp(-3 / 15.4))))
    assert rp.effective_data(4e9, u) / 4e9 > 0.9  # up to ~4 epochs repeats are worth almost as much as new data
    assert rp.effective_data(41e9, u) / 41e9 < 0.4  # past ~40 epochs they are worth little


@pytest.mark.parametrize(("effective", "r_star"), [(rp.effective_data, rp.R_STAR_D),
                                                   (rp.effective_params, rp.R_STAR_N)], ids=["data", "params"])
@settings(max_examples=200, deadline=None)
@given(U=st.floats(1e6, 1e13), repeats=st.floats(0.01, 1e3))
def test_effective_size_identities(effective, r_star, U, repeats):
    """D' (epochs = D/U) and N' (N/U_N) alike: never above the raw size or U·(1 + R*), exact up to U,
    and more repeats never lose value, only gain less."""
    size = U * repeats
    eff = effective(size, U)
    assert eff <= size * (1 + 1e-12)
    assert eff <= U * (1 + r_star) * (1 + 1e-12)
    if repeats <= 1:
        assert eff == size
    else:
        assert eff >= U
        assert effective(size * 1.5, U) >= eff


@given(U=st.floats(1e6, 1e13))
def test_effective_data_saturates(U):
    assert rp.effective_data(U * 1e6, U) == pytest.approx(U * (1 + rp.R_STAR_D), rel=1e-9)
    assert rp.effective_params(U * 1e6, U) == pytest.approx(U * (1 + rp.R_STAR_N), rel=1e-9)


def test_unique_params_from_coefficients_or_callable():
    u_d = 6.0e10
    n_opt = ch.optimal_allocation(1e21, **EPOCH).N  # its D_opt is 6.0e10
    assert rp.unique_params(1e12, u_d, EPOCH) == pytest.approx(ch.n_opt_for_data(u_d, **EPOCH))
    assert rp.unique_params(1e12, u_d, EPOCH) == pytest.approx(n_opt, rel=0.01)
    assert rp.unique_params(1e8, u_d, EPOCH) == 1e8
    assert rp.unique_params(1e12, u_d, lambda d: d / 20) == pytest.approx(3e9)


def test_loss_repeated_equals_chinchilla_without_repetition():
    N, D = 1e8, 2e10  # N below N_opt(D), so no parameters are in excess of the data
    assert rp.loss_repeated(N, D, U_D=D, coeffs=EPOCH) == ch.loss(N, D, **EPOCH)
    assert rp.loss_repeated(N, D, U_D=10 * D, coeffs=EPOCH) == ch.loss(N, D, **EPOCH)


def test_excess_parameters_are_discounted_even_on_fresh_data():
    D = 2e10
    N = 3 * ch.n_opt_for_data(D, **EPOCH)
    assert rp.loss_repeated(N, D, U_D=D, coeffs=EPOCH) > ch.loss(N, D, **EPOCH)


@settings(max_examples=100, deadline=None)
@given(N=st.floats(1e7, 1e12), U=st.floats(1e8, 1e12), epochs=st.floats(1.0, 200.0))
def test_repetition_never_beats_fresh_data(N, U, epochs):
    D = U * epochs
    repeated = rp.loss_repeated(N, D, U, EPOCH)
    assert repeated >= ch.loss(N, D, **EPOCH) - 1e-12
    # and the repeated tokens still help relative to stopping after one epoch at the same effective size
    assert repeated <= rp.loss_repeated(N, U, U, EPOCH) + 1e-12


def test_loss_repeated_is_vectorised():
    U = np.array([1e9, 1e10, 1e11])
    out = rp.loss_repeated(1e9, 1e11, U, EPOCH)
    assert out.shape == (3,)
    assert np.all(np.diff(out) < 0)  # more unique data, lower loss


def test_rejects_non_positive_sizes():
    with pytest.raises(LawDomainError, match="U_D"):
        rp.effective_data(1e9, 0.0)
