"""The statistics a check is judged by: seed noise, coverage, IsoFLOP vertices, the exponent and its power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fits.fitting import isoflop
from verifier.check import stats

BUDGETS = [1e11, 10**11.5, 1e12]
FACTORS = [0.25, 0.5, 1.0, 2.0, 4.0]


def test_predictive_intervals_and_seed_noise() -> None:
    p = stats.combine(2.0, 0.03, 0.04)
    assert p.sigma == pytest.approx(0.05)
    lo, hi = p.interval(0.8)
    assert (hi - lo) / 2 == pytest.approx(1.2816 * 0.05, rel=1e-3)
    assert p.z(2.1) == pytest.approx(2.0)
    # two pairs 1% apart in ln: one run's noise is 1%/sqrt(2)
    assert stats.seed_sigma([(2.0, 2.0 * math.exp(0.01)), (1.5 * math.exp(0.01), 1.5)]) == pytest.approx(0.01 / 2**0.5)
    assert stats.seed_sigma([]) is None


def test_coverage_binomial_test() -> None:
    c = stats.coverage([True] * 8 + [False] * 2, 0.8, [-1.0, -2.0])
    assert (c.inside, c.total) == (8, 10) and c.p_value == pytest.approx(1.0) and c.log_score == -1.5
    assert stats.coverage([False] * 10, 0.8).p_value < 1e-6


def test_vertex_recovers_a_parabola_and_its_interval_covers() -> None:
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(200):
        sizes = 1e5 * np.array(FACTORS)
        y = 2.0 + 0.02 * (np.log(sizes) - math.log(1.3e5)) ** 2 + rng.normal(0, 0.004, size=5)
        v = isoflop.vertex(sizes, y, 0.002)
        lo, hi = v.interval()
        hits += lo <= 1.3e5 <= hi
    assert 0.9 <= hits / 200 <= 0.99  # a 95% interval
    flat = isoflop.vertex([1, 2, 4], [3.0, 2.0, 1.0], 0.01)
    assert flat.ln_n is None and "curve" in flat.reason


def test_power_matches_a_simulation() -> None:
    """A design whose computed power is p rejects the wrong exponent in about p of simulated experiments."""
    for noise in (0.0045, 0.0065):
        se = stats.exponent_se(BUDGETS, FACTORS, [0.02] * 3, [2.0] * 3, noise)
        p = stats.power(se, 0.73 - 0.51)
        sim = stats.simulate_rejections(BUDGETS, FACTORS, 0.02, 2.0, noise, 0.51, 0.73, repeats=300, seed=1)
        assert 0.5 < p < 0.97
        assert sim == pytest.approx(p, abs=0.1)
    # with the plan's own exponent true, the test rejects it about 5% of the time
    wrong = stats.simulate_rejections(BUDGETS, FACTORS, 0.02, 2.0, 0.005, 0.51, 0.51, repeats=300, seed=2)
    assert wrong < 0.12


def _runs_on_a_parabola(n_true: float, budgets, noise_seed: int = 0):
    """Complete runs whose final losses follow an IsoFLOP parabola with its vertex at n_true·(C/C0)^0.5."""
    from verifier.runs import Run

    rng = np.random.default_rng(noise_seed)
    profiles, rid = [], 0
    for c in budgets:
        opt = n_true * (c / budgets[0]) ** 0.5
        row = []
        for f in FACTORS:
            rid += 1
            n = opt * f
            loss = 2.0 + 0.03 * math.log(f) ** 2 + rng.normal(0, 0.001)
            row.append(Run(id=rid, scope="s", status="complete", n_params=int(n), params_total=int(n),
                           tokens=int(c / (6 * n)), final_val_loss=loss, role="isoflop"))
        profiles.append(row)
    return profiles


@pytest.mark.parametrize("offset, verdict", [(1.0, "pass"), (4.0, "fail"), (0.25, "fail")])
def test_allocation_item_fails_a_plan_4x_off_the_optimum(offset, verdict) -> None:
    """The negative control's logic: a planned N 4x off the observed vertices fails the allocation item."""
    from fits.fit import Fit, Provenance
    from verifier.check import experiment

    fit = Fit(law="chinchilla", scope="s", coefficients={"E": 1.0, "A": 100.0, "B": 100.0, "alpha": 0.3,
                                                          "beta": 0.3}, provenance=Provenance(source="fitted"), id=1)
    budgets = [1e11, 10**11.5, 1e12]
    profiles = _runs_on_a_parabola(2e4, budgets)
    planned = [offset * 2e4 * (c / budgets[0]) ** 0.5 for c in budgets]
    out = experiment.allocation_items(profiles, budgets, planned, "chinchilla", fit, 0.002,
                                      ln_n_sigma={c: 0.05 for c in budgets}, plan_a=0.5, alternative=0.73,
                                      design_power=0.95, plan_tokens_per_param=20.0, control=None)
    by_kind = {i.kind: i for i in out.items}
    assert by_kind["allocation"].verdict == verdict
    assert by_kind["allocation"].observed == pytest.approx(-math.log(offset), abs=0.1)
    assert by_kind["allocation_exponent"].verdict == "pass"  # the exponent does not depend on the level
    assert out.exponent.a == pytest.approx(0.5, abs=0.05)
    low_power = experiment.allocation_items(profiles, budgets, planned, "chinchilla", fit, 0.002,
                                            ln_n_sigma={}, plan_a=0.5, alternative=0.73, design_power=0.5,
                                            plan_tokens_per_param=20.0, control=None)
    exp = next(i for i in low_power.items if i.kind == "allocation_exponent")
    assert exp.verdict == "inconclusive" and "not enough compute" in exp.note
    noisy = experiment.allocation_items(profiles, budgets, planned, "chinchilla", fit, 0.05,
                                        ln_n_sigma={}, plan_a=0.5, alternative=0.73, design_power=0.95,
                                        plan_tokens_per_param=20.0, control=None)
    exp = next(i for i in noisy.items if i.kind == "allocation_exponent")
    lo, hi = exp.observed_interval
    assert lo <= 0.73 <= hi  # 25x the noise: the vertices cannot separate the two laws, whatever the design said
    assert exp.verdict == "inconclusive" and "holds both" in exp.note


def test_a_profile_without_a_vertex_drops_out_of_the_design() -> None:
    x = np.log(FACTORS)
    full = stats.design_se(BUDGETS, [(x, 0.0, 0.02, 2.0)] * 3, 0.005)
    two = stats.design_se(BUDGETS, [(x[:2], 0.0, 0.02, 2.0), (x, 0.0, 0.02, 2.0), (x, 0.0, 0.02, 2.0)], 0.005)
    assert full < two < math.inf
    assert stats.design_se(BUDGETS, [(x[:2], 0.0, 0.02, 2.0)] * 2 + [(x, 0.0, 0.02, 2.0)], 0.005) == math.inf


def test_a_flagged_fits_design_power_comes_from_the_scopes_measured_profiles() -> None:
    """A degenerate scope fit's curvature says nothing about the profiles: the power then uses the curvature the
    scope's own IsoFLOP runs measured, so a flatter measured profile gives less power."""
    from fits.fit import Fit, Provenance
    from fits.result import Diagnostics
    from verifier.check import ladder, orchestrate

    fit = Fit(law="chinchilla", scope="s", provenance=Provenance(source="fitted"), diagnostics=Diagnostics(
        degenerate=True), coefficients={"E": 1.31, "A": 1.7e5, "B": 3217.0, "alpha": 1.38, "beta": 0.64})
    prior = isoflop.exponent([1e11, 1e12], [isoflop.Vertex(math.log(2e4), 0.05, 0.15),
                                             isoflop.Vertex(math.log(5e4), 0.05, 0.15)])
    lad = ladder.check_ladder(3e12, lambda c: 50.0 * math.sqrt(c / 1e6), ladder.Rules(counts="total"))
    powers = []
    for curvature in (0.15, 0.015):
        centre = orchestrate.EmpiricalAllocation(prior, "test", curvature, 1.6)
        p, se = orchestrate._design_power(fit, lad, 0.01, 0.51, 0.73, centre)
        profiles = [(np.log([orchestrate._n(fit, s) for s in row]), math.log(n), curvature, 1.6)
                    for row, n in zip(lad.grid, lad.planned, strict=True)]
        expected = stats.design_se(lad.budgets, profiles, 0.01)
        assert se == pytest.approx(expected)
        powers.append(p)
    assert powers[0] > powers[1]
