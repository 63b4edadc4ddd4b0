"""Robust fitting on messy data: bounds, degeneracy flags, held-out split and the choice among minima."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

from fits.fitting import robust
from fits.fitting.chinchilla_fit import EXPONENT_BOUNDS, ChinchillaForm, chinchilla_points
from fits.fitting.diagnostics import distinct_levels, heldout_split
from fits.fitting.engine import fit_form
from fits.fitting.form import Points
from fits.fitting.multistart import Candidate
from fits.laws.chinchilla import loss

EPOCH_POINTS = ("data", "chinchilla-epoch", "points.csv")
"""Under ../shared: the tests that read it skip without it."""


def synthetic(**coefficients: float) -> Points:
    n, d = np.meshgrid(np.logspace(7, 9.5, 5), np.logspace(9, 11.5, 5))
    n, d = n.ravel(), d.ravel()
    noise = np.exp(np.random.default_rng(0).normal(0, 0.002, n.size))
    return chinchilla_points(n, d, loss(n, d, **coefficients) * noise)


def quick_fit(points: Points, method: str):
    form = ChinchillaForm.for_points(points)
    return form, fit_form(form, points, method=method, starts=form.grid()[::7])


def test_no_irreducible_loss_is_flagged_and_bounded():
    points = synthetic(E=0.0, A=30.0, B=200.0, alpha=0.15, beta=0.2)
    _, plain = quick_fit(points, "grid")
    assert plain.coefficients["E"] < 0.1
    assert plain.diagnostics.degenerate
    assert any("E =" in w and "≈ 0" in w for w in plain.warnings)

    _, bounded = quick_fit(points, "robust")
    assert bounded.coefficients["E"] == pytest.approx(0.1, rel=1e-6)
    assert "E" in bounded.diagnostics.at_bounds
    assert bounded.diagnostics.degenerate
    assert any("E sits at its lower bound" in w for w in bounded.warnings)


def test_steep_exponent_sits_at_its_bound():
    points = synthetic(E=2.0, A=1e14, B=400.0, alpha=2.0, beta=0.3)
    _, res = quick_fit(points, "robust")
    assert res.coefficients["alpha"] == pytest.approx(EXPONENT_BOUNDS[1])
    assert "alpha" in res.diagnostics.at_bounds
    assert any("alpha sits at its upper bound" in w for w in res.warnings)


def test_a_term_the_data_do_not_resolve_is_flagged():
    points = synthetic(E=2.0, A=400.0, B=1e-4, alpha=0.34, beta=0.3)
    _, res = quick_fit(points, "grid")
    assert res.diagnostics.degenerate
    assert any("B/D^beta is below" in w for w in res.warnings)


@pytest.mark.parametrize("method", ["grid", "robust"])
def test_sound_data_raise_no_flags(method):
    points = synthetic(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
    _, res = quick_fit(points, method)
    assert not res.diagnostics.degenerate, res.warnings
    assert res.warnings == []
    assert res.coefficients["alpha"] == pytest.approx(0.35, abs=0.03)


def test_messy_epoch_subsets_stay_in_bounds_and_report_their_limits():
    d = np.genfromtxt(shared_file(*EPOCH_POINTS), delimiter=",", names=True)
    size = np.round(np.log10(d["N"]), 1)
    chosen = np.isin(size, np.unique(size)[[2, 12]]) & (d["C"] <= 3e20)  # two model sizes, cut compute
    points = chinchilla_points(d["N"][chosen], d["D"][chosen], d["loss"][chosen])
    form, res = quick_fit(points, "robust")
    lo, hi = form.bounds(points)
    theta = form.to_theta(res.coefficients)
    assert np.all(theta >= lo - 1e-9) and np.all(theta <= hi + 1e-9)
    assert res.diagnostics.degenerate
    assert any("2 distinct N values" in w for w in res.warnings)


def test_heldout_split_holds_out_the_largest_compute():
    rng = np.random.default_rng(1)
    n = rng.uniform(1e7, 1e9, 40)
    d = rng.uniform(1e9, 1e11, 40)
    points = chinchilla_points(n, d, np.full(40, 3.0))
    train, test = heldout_split(points, 5)
    assert test.size == 6 and train.size == 34
    assert points.compute[test].min() > points.compute[train].max()
    assert heldout_split(points.take(np.arange(9)), 5) is None  # too few left to fit


def test_heldout_split_keeps_ties_together():
    points = Points(
        N=np.array([1e7, 2e7, 3e7, 4e7] * 5, dtype=float),
        X=np.ones(20),
        loss=np.full(20, 3.0),
        compute=np.repeat([1.0, 2.0, 3.0, 4.0], 5),
    )
    _, test = heldout_split(points, 2, fraction=0.15)
    assert set(points.compute[test]) == {4.0} and test.size == 5


def test_distinct_levels_groups_jittered_sizes():
    assert distinct_levels(np.array([1e7, 1.05e7, 0.98e7, 1e8, 1.1e8])) == 2
    assert distinct_levels(np.array([1e7, 2e7, 4e7])) == 3


def _cand(obj: float, alpha: float) -> Candidate:
    return Candidate(theta=np.array([-1.0, -1.0, 0.5, alpha, 0.3]), objective=obj, converged=True)


def test_close_candidates_keep_the_best_and_only_sound_near_equals():
    points = synthetic(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
    form = ChinchillaForm.for_points(points)
    bounds = form.bounds(points)
    cands = [_cand(1.0, 0.35), _cand(1.01, 0.4), _cand(1.015, EXPONENT_BOUNDS[1]), _cand(1.5, 0.3)]
    pool = robust.close_candidates(form, cands, points, bounds)
    assert pool[0] is cands[0]
    assert cands[1] in pool
    assert cands[2] not in pool  # sits on a bound
    assert cands[3] not in pool  # not close


def test_pick_needs_a_clear_held_out_improvement():
    def check(err: float) -> robust.HeldoutCheck:
        return robust.HeldoutCheck(candidate=_cand(1.0, 0.3), train_theta=np.zeros(5), error=err)

    first = check(0.010)
    assert robust.pick([first, check(0.009)]) is first
    better = check(0.005)
    assert robust.pick([first, check(0.009), better]) is better
