"""Approach 2 (IsoFLOP profiles → vertices → N_opt ∝ C^a) on arbitrary points, on data from a known law."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fits.errors import BadInput
from fits.fitting import isoflop
from fits.laws.chinchilla import loss, optimal_allocation

TRUTH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
A_TRUE = TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])  # 0.5126
BUDGETS = np.geomspace(1e18, 1e20, 5)
FACTORS = np.geomspace(0.25, 4.0, 7)
NOISE = 0.005
Z80 = 1.2815515655446004


def n_opt_true(c: float) -> float:
    return float(optimal_allocation(c, **TRUTH).N)


def isoflop_design(budgets=BUDGETS, factors=FACTORS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sizes ``factors``·N_opt at each budget, D = C/(6N), and the true law's loss there."""
    n = np.array([n_opt_true(c) * f for c in budgets for f in factors])
    d = np.repeat(budgets, len(factors)) / (6.0 * n)
    return n, d, np.asarray(loss(n, d, **TRUTH))


def noisy(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return clean * (1.0 + rng.normal(0.0, NOISE, clean.size))


def test_approach2_recovers_the_allocation_exponent_and_n_opt_beyond_the_data() -> None:
    n, d, clean = isoflop_design()
    r = isoflop.approach2(n, d, noisy(clean, np.random.default_rng(3)), NOISE)
    assert r is not None
    assert [v.budget for v in r.vertices] == pytest.approx(list(BUDGETS), rel=1e-9)
    assert all(v.determined and len(v.indices) == 7 for v in r.vertices)
    assert abs(r.a - A_TRUE) < 2 * r.se and 0.005 < r.se < 0.05
    c21 = r.n_opt(1e21)
    lo, hi = c21.interval()
    assert lo <= n_opt_true(1e21) <= hi
    # extrapolating a decade beyond the largest budget costs more than interpolating inside them
    assert c21.ln_se > r.n_opt(1e19).ln_se
    # the exponent's own interval is the one Exponent gives for the same vertices
    e = isoflop.exponent([v.budget for v in r.vertices], [v.vertex for v in r.vertices])
    assert (e.a, e.se) == pytest.approx((r.a, r.se))
    assert e.n_opt(1e21) == pytest.approx(c21)


def test_the_exponent_s_80_percent_interval_covers_in_80_percent_of_replicates() -> None:
    """200 simulated experiments: the parabola fitted to a Chinchilla profile (not itself a parabola) moves
    every vertex by about the same -0.44% in ln N (the profile has one shape in ln(N/N_opt) at every budget;
    only the weights, relative to a loss that includes E, differ a little), so the slope stays unbiased (to
    1e-5) and the shift of the level is far below the noise for sizes 1/4-4× N_opt."""
    n, d, clean = isoflop_design()
    rng = np.random.default_rng(0)
    inside_a = inside_n = 0
    z = []
    for _ in range(200):
        r = isoflop.approach2(n, d, noisy(clean, rng), NOISE)
        z.append((r.a - A_TRUE) / r.se)
        inside_a += abs(r.a - A_TRUE) <= Z80 * r.se
        lo, hi = r.n_opt(1e21).interval(Z80)
        inside_n += lo <= n_opt_true(1e21) <= hi
    assert 0.70 <= inside_a / 200 <= 0.90
    assert 0.70 <= inside_n / 200 <= 0.90
    assert abs(np.mean(z)) < 0.25 and 0.8 < np.std(z) < 1.2  # close to a standard normal
    clean_fit = isoflop.approach2(n, d, clean, NOISE)
    assert clean_fit.a == pytest.approx(A_TRUE, abs=1e-4)
    shift = [math.log(v.n / n_opt_true(v.budget)) for v in clean_fit.vertices]
    assert shift == pytest.approx([shift[0]] * 5, abs=1e-4) and -0.01 < shift[0] < 0


def test_profiles_group_by_compute_and_ignore_points_of_no_profile() -> None:
    rng = np.random.default_rng(1)
    n, d, clean = isoflop_design()
    d = d * rng.uniform(0.95, 1.05, d.size)  # rounded token counts: C off by up to 5%
    # three lone runs, one of them 14% below the first budget, where a scan from the smallest C would start
    # a window that cuts that profile in two
    extra_n = np.array([3e7, 5e9, 1.1e8])
    extra_d = np.array([1e9, 3e11, 0.86 * BUDGETS[0] / (6 * 1.1e8)])
    order = rng.permutation(n.size + 3)
    N, D = np.concatenate([n, extra_n])[order], np.concatenate([d, extra_d])[order]
    L = np.concatenate([clean, np.full(3, 3.0)])[order]
    found = isoflop.profiles(N, D, L)
    assert [p.budget for p in found] == pytest.approx(list(BUDGETS), rel=0.03)
    lone = {int(np.flatnonzero(order == k)[0]) for k in range(n.size, n.size + 3)}
    assert all(len(p.indices) == 7 and not lone & set(p.indices) for p in found)
    assert all(list(N[list(p.indices)]) == sorted(N[list(p.indices)]) for p in found)
    # an Approach-1 grid (3 sizes × 8 token counts) has C that never line up across 3 sizes
    grid_n, grid_d = np.repeat([1e8, 3e8, 1e9], 8), np.tile(2e9 * 2.0 ** np.arange(8), 3)
    assert isoflop.profiles(grid_n, grid_d, np.full(24, 3.0)) == []
    assert isoflop.approach2(grid_n, grid_d, np.full(24, 3.0), NOISE) is None
    # two sizes per budget give no vertex, however many budgets
    assert isoflop.profiles(*isoflop_design(factors=[0.5, 2.0])) == []


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 6), sizes=st.integers(3, 8), step=st.floats(1.5, 10.0), jitter=st.floats(0.0, 0.09),
       seed=st.integers(0, 2**16))
def test_profiles_find_every_budget_of_a_jittered_design(k: int, sizes: int, step: float, jitter: float,
                                                          seed: int) -> None:
    """Budgets a factor ≥ 1.5 apart, each point's C within ±jitter (< 10%) of its budget: one profile each."""
    rng = np.random.default_rng(seed)
    budgets = 1e19 * step ** np.arange(k)
    n = np.concatenate([np.geomspace(1e8, 1e10, sizes) * (c / 1e19) ** 0.5 for c in budgets])
    c = np.repeat(budgets, sizes) * rng.uniform(1 - jitter, 1 + jitter, n.size)
    found = isoflop.profiles(n, c / (6 * n), np.ones(n.size))
    assert len(found) == k
    assert [len(p.indices) for p in found] == [sizes] * k
    assert sorted(i for p in found for i in p.indices) == list(range(n.size))
    assert all(abs(math.log(p.budget / b)) <= math.log(1.1) for p, b in zip(found, budgets, strict=True))


def test_allocation_backtest_scores_approach2_and_a_law_alike() -> None:
    """On noiseless data both the Approach-2 line and the true law predict the later vertices (the law's
    error is the parabola's -0.44% vertex shift, nothing else); a law with the wrong exponent does not."""
    n, d, clean = isoflop_design()
    compute = 6.0 * n * d
    seen = []

    def true_law(train: np.ndarray):
        seen.append(float(compute[train].max()))
        return n_opt_true

    bt = isoflop.allocation_backtest(n, d, clean, NOISE, true_law)
    assert [f.origin for f in bt.folds] == pytest.approx(list(BUDGETS[2:]))
    assert seen == pytest.approx(list(BUDGETS[1:4]), rel=1e-9)  # fitted on the profiles below each origin
    assert [len(f.budgets) for f in bt.folds] == [3, 2, 1]
    assert bt.approach2 < 1e-4 and bt.law < 0.01

    def wrong_exponent(train: np.ndarray):
        return lambda c: n_opt_true(1e18) * (c / 1e18) ** 0.73

    worse = isoflop.allocation_backtest(n, d, clean, NOISE, wrong_exponent)
    assert worse.approach2 == pytest.approx(bt.approach2)
    assert worse.law > 0.3 and all(f.law[-1] > f.law[0] for f in worse.folds if len(f.law) > 1)
    alone = isoflop.allocation_backtest(n, d, clean, NOISE)
    assert alone.law is None and alone.folds[0].law is None and alone.approach2 == bt.approach2


def test_bad_input_names_the_field() -> None:
    n, d, clean = isoflop_design()
    cases = [((n, d, clean, 0.0), "rel_sigma"), ((n, -d, clean, NOISE), "D"), ((n, d[:-1], clean, NOISE), "D"),
             ((n, d, np.where(clean > 0, np.nan, clean), NOISE), "loss")]
    for args, field in cases:
        with pytest.raises(BadInput) as exc:
            isoflop.approach2(*args)
        assert exc.value.field == field
    with pytest.raises(BadInput) as exc:
        isoflop.profiles(n, d, clean, tol=1.5)
    assert exc.value.field == "tol"
    with pytest.raises(BadInput) as exc:
        isoflop.approach2(n, d, clean, NOISE).n_opt(-1.0)
    assert exc.value.field == "C"
