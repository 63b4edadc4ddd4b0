"""shape_for_params: Transformer shapes for a parameter count, down to the verifier's ~5e4-parameter models."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.shape import ASPECT_HIGH, ASPECT_LOW, shape_for_params


def check_rules(n: float) -> None:
    s = shape_for_params(n)
    assert s.d_model % 64 == 0 and s.d_model >= 64 and s.n_layer >= 1
    assert s.head_dim in (64, 128) and s.n_head * s.head_dim == s.d_model
    assert s.d_ff == 4 * s.d_model
    assert s.params == 12 * s.n_layer * s.d_model**2
    assert s.params_error == pytest.approx((s.params - n) / n)
    assert s.aspect_ratio == pytest.approx(s.d_model / s.n_layer)


@settings(max_examples=300, deadline=None)
@given(st.floats(math.log10(7e6), 13))
def test_large_models_meet_every_rule(log_n):
    n = 10**log_n
    check_rules(n)
    s = shape_for_params(n)
    assert abs(s.params_error) <= 0.05
    assert ASPECT_LOW <= s.aspect_ratio <= ASPECT_HIGH
    assert s.warnings == []


@settings(max_examples=300, deadline=None)
@given(st.floats(math.log10(5e4), math.log10(7e6)))
def test_small_models_get_valid_shapes_and_a_warning_when_a_rule_is_relaxed(log_n):
    n = 10**log_n
    check_rules(n)
    s = shape_for_params(n)
    if abs(s.params_error) > 0.05:
        assert any("within 5%" in w for w in s.warnings)
    elif not ASPECT_LOW <= s.aspect_ratio <= ASPECT_HIGH:
        assert any("aspect ratio" in w for w in s.warnings)
    else:
        assert s.warnings == []


@pytest.mark.parametrize(
    ("n", "layers", "width"),
    [(4.9152e4, 1, 64), (9.8e4, 2, 64), (1e6, 5, 128), (8.5e7, 12, 768), (1.3e10, 64, 4096)],
)
def test_known_shapes(n, layers, width):
    s = shape_for_params(n)
    assert (s.n_layer, s.d_model) == (layers, width)


def test_heads_are_128_wide_for_wide_models():
    for n in (1.3e10, 7e10, 1e12):
        s = shape_for_params(n)
        assert s.head_dim == (128 if s.d_model % 128 == 0 else 64)
    assert shape_for_params(1.3e10).head_dim == 128
    assert shape_for_params(1e8).head_dim == 64


def test_the_verifier_range_uses_narrow_widths():
    for n in (1e5, 3e5, 1e6, 3e6, 1e7):
        assert 64 <= shape_for_params(n).d_model <= 384


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_rejects_non_positive_or_non_finite(bad):
    with pytest.raises(ValueError, match="N:"):
        shape_for_params(bad)
