"""Plans carry the fit's uncertainty: a loss band from its joint draws, intervals on N_opt and D_opt, and warnings
when N, D or tokens per parameter leave the range of the data the fit saw."""

from __future__ import annotations

import numpy as np
import pytest

from fits.fit import Fit, Provenance
from fits.fitting.auto import fit_auto, predict_from_fit, predictive_of
from fits.fitting.diagnostics import data_ranges
from fits.laws import chinchilla
from fits.laws.published import published_fits
from fits.result import Diagnostics
from planner import PlanRequest, solve_plan
from planner.notes import range_warnings
from planner.uncertainty import allocation_interval

TRUTH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
EPOCH = {f.name: f for f in published_fits()}["besiroglu2024"]


@pytest.fixture(scope="module")
def joint_fit() -> Fit:
    """A Chinchilla fit stored with its bootstrap draws (what ``fit --predict FILE --save`` keeps)."""
    rng = np.random.default_rng(3)
    budgets = np.geomspace(1e18, 1e20, 5)
    opt = chinchilla.optimal_allocation(budgets, **TRUTH)
    N = (opt.N[:, None] * np.geomspace(0.3, 3.0, 5)[None, :]).ravel()
    D = np.repeat(budgets, 5) / (6 * N)
    L = np.asarray(chinchilla.loss(N, D, **TRUTH)) * np.exp(0.01 * rng.standard_normal(N.size))
    auto = fit_auto(N, D, L, laws=["chinchilla"], bootstrap=40, seed=0)
    keys = ("E", "A", "B", "alpha", "beta")
    draws = np.array([[d[k] for k in keys] for d in auto.chosen.draws])
    # The marginal 95% intervals of the same draws: what a fit without joint draws would carry.
    intervals = {k: [float(v) for v in np.percentile(draws[:, i], [2.5, 97.5])] for i, k in enumerate(keys)}
    return Fit(law="chinchilla", scope="synthetic", coefficients=auto.report.coefficients,
               provenance=Provenance(source="fitted"), intervals=intervals,
               diagnostics=Diagnostics(residual_rms=auto.report.noise,
                                       compute_range=[float((6 * N * D).min()), float((6 * N * D).max())],
                                       data_ranges=data_ranges(N, D), predictive=predictive_of(auto)))


def test_the_loss_band_comes_from_the_joint_draws_not_the_marginals(joint_fit):
    plan = solve_plan(PlanRequest(compute_flops=1e21), joint_fit)
    band = plan.predicted_loss
    assert "joint bootstrap draws" in band.method
    p = predict_from_fit(joint_fit, [plan.params], [plan.tokens], 0.95)[0]
    assert band.low == pytest.approx(p.low, rel=1e-9) and band.high == pytest.approx(p.high, rel=1e-9)
    # The same fit without its draws falls back on draws from the marginal intervals: a different, wider band.
    marginal = Fit(law=joint_fit.law, scope=joint_fit.scope, coefficients=joint_fit.coefficients,
                   provenance=joint_fit.provenance, intervals=joint_fit.intervals,
                   diagnostics=Diagnostics(residual_rms=joint_fit.diagnostics.residual_rms,
                                           compute_range=joint_fit.diagnostics.compute_range))
    wide = solve_plan(PlanRequest(compute_flops=1e21), marginal).predicted_loss
    assert "joint" not in wide.method
    assert band.low < band.mean < band.high and band.high - band.low != pytest.approx(wide.high - wide.low)


def test_plans_give_intervals_on_n_opt_and_d_opt(joint_fit):
    plan = solve_plan(PlanRequest(compute_flops=1e21), joint_fit)
    (n_lo, n_hi), (d_lo, d_hi) = plan.n_opt_interval, plan.d_opt_interval
    assert n_lo < plan.params < n_hi and d_lo < plan.tokens < d_hi
    assert d_lo == pytest.approx(1e21 / (6 * n_hi)) and d_hi == pytest.approx(1e21 / (6 * n_lo))
    # Each end is a draw's own optimum: the interval equals the draws' percentiles computed directly.
    ns = [chinchilla.optimal_allocation(np.array([1e21]), **d).N[0] for d in joint_fit.diagnostics.predictive.draws]
    assert [n_lo, n_hi] == pytest.approx(list(np.percentile(ns, [2.5, 97.5])), rel=1e-9)
    # Further out the interval widens.
    far = solve_plan(PlanRequest(compute_flops=1e24), joint_fit)
    assert far.n_opt_interval[1] / far.n_opt_interval[0] > n_hi / n_lo
    # A published set (intervals only) still gets one, from its conditioned draws; a fit without either none.
    epoch = solve_plan(PlanRequest(compute_flops=5.76e23), EPOCH)
    assert epoch.n_opt_interval[0] < epoch.params < epoch.n_opt_interval[1]
    bare = Fit(law="chinchilla", scope="x", coefficients=dict(TRUTH), provenance=Provenance(source="imported"))
    assert allocation_interval(bare, bare.coefficients, 1e21, None) is None


def test_plans_warn_when_n_d_or_tokens_per_param_leave_the_data():
    # Epoch's published set records the range of the points it was fitted on (tokens/param up to 341).
    inside = solve_plan(PlanRequest(compute_flops=1e21), EPOCH)
    assert not any("fit's data" in w for w in inside.warnings)
    big = solve_plan(PlanRequest(compute_flops=1e24), EPOCH)
    assert any(w.startswith("N (parameters)") and "largest the fit's data reach (1.6e+10)" in w
               for w in big.warnings)
    # A small model trained long (the inference-aware kind of plan): past the data's tokens per parameter.
    long = solve_plan(PlanRequest(compute_flops=1e22, max_params=1e9), EPOCH)
    assert long.tokens_per_param > 341
    assert any(w.startswith("tokens per parameter") for w in long.warnings)
    ranges = {"N": (1e8, 1e9), "D": (1e9, 1e10), "tokens_per_param": (1.0, 100.0)}
    assert range_warnings(ranges, N=5e8, D=5e9, tokens_per_param=10.0) == []
    below = range_warnings(ranges, N=1e7, D=5e9, tokens_per_param=500.0)
    assert [w.split(" ")[0] for w in below] == ["N", "tokens"] and "below the smallest" in below[0]


def test_every_fit_records_the_range_of_its_data(joint_fit):
    from fits.fitting import fit as fit_points

    N = np.repeat([1e8, 3e8, 1e9], 3)
    D = N * np.tile([10.0, 40.0, 160.0], 3)
    res = fit_points("chinchilla", {"N": N, "D": D, "loss": np.asarray(chinchilla.loss(N, D, **TRUTH))})
    r = res.diagnostics.data_ranges
    assert r["N"] == [1e8, 1e9] and r["D"] == [1e9, 1.6e11] and r["tokens_per_param"] == pytest.approx([10, 160])
    # The plan reads them back: a plan past 160 tokens/param on such a fit is warned about.
    fit = Fit(law="chinchilla", scope="s", coefficients=res.coefficients, provenance=Provenance(source="fitted"),
              diagnostics=res.diagnostics)
    long = solve_plan(PlanRequest(compute_flops=1e21, max_params=3e8), fit)
    assert any(w.startswith("tokens per parameter") and "(160)" in w for w in long.warnings)
