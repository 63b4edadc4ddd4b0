"""Kaplan-form fitting: L(N, D) from early-stopped points, L(N, S) from loss curves with warm-up."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from fits.fitting import fit, fit_kaplan_nd, fit_kaplan_ns
from fits.fitting.form import Problem
from fits.fitting.kaplan_fit import KaplanNDForm, KaplanNSForm, nd_points, ns_points
from fits.laws import kaplan2020 as k20

ND = k20.nd_coefficients()
NS = k20.ns_coefficients()


def nd_data(noise: float = 0.005, seed: int = 0):
    n, d = np.meshgrid(np.logspace(6, 9, 6), np.logspace(7.5, 10.5, 6))
    n, d = n.ravel(), d.ravel()
    rng = np.random.default_rng(seed)
    return n, d, k20.loss_nd(n, d, **ND) * np.exp(rng.normal(0, noise, n.size))


def ns_curves(warmup: int = 300, batch: float = 2.0**19):
    """Curves of four sizes generated from eq 1.6 + B_crit(L); the warm-up part is replaced by junk."""
    rows = []
    for n in (3e6, 1e7, 3e7, 1e8):
        steps = np.unique(np.geomspace(50, 20000, 40).astype(int))
        L = k20.loss_after_steps(n, steps, batch, **NS)
        L = np.where(steps <= warmup, 9.0, L)  # inside warm-up the law does not hold
        rows += [(n, batch, s, l) for s, l in zip(steps, L, strict=True)]
    return np.array(rows).T


def test_kaplan_nd_recovers_table2():
    n, d, L = nd_data()
    res = fit_kaplan_nd(n, d, L)
    c = res.coefficients
    assert set(c) == {"alpha_N", "alpha_D", "N_c", "D_c"}
    assert c["alpha_N"] == pytest.approx(ND["alpha_N"], abs=0.005)
    assert c["alpha_D"] == pytest.approx(ND["alpha_D"], abs=0.008)
    assert np.log10(c["N_c"]) == pytest.approx(np.log10(ND["N_c"]), abs=0.5)
    assert np.log10(c["D_c"]) == pytest.approx(np.log10(ND["D_c"]), abs=0.5)
    assert res.converged and res.starts >= 625
    assert res.diagnostics.heldout_error < 0.01
    assert res.diagnostics.residual_rms < 0.01


def _nd_problem():
    return Problem(KaplanNDForm(), nd_points(*nd_data())), np.array([30.0, 31.0, 0.08, 0.1])


def _ns_problem():
    points = ns_points(*ns_curves(), 300)
    return Problem(KaplanNSForm(), points, np.ones(len(points)) * 2), np.array([31.0, 8.0, 0.07, 0.7])


@pytest.mark.parametrize("problem", [_nd_problem, _ns_problem], ids=["kaplan-nd", "kaplan-ns weighted"])
def test_objective_and_gradient_agree(problem):
    built, x = problem()
    fun = built.scalar()
    _, g = fun(x)
    eps = 1e-6
    numeric = [(fun(x + eps * e)[0] - fun(x - eps * e)[0]) / (2 * eps) for e in np.eye(4)]
    np.testing.assert_allclose(g, numeric, rtol=1e-4, atol=1e-10)


def test_kaplan_nd_n_opt_minimises_the_loss_at_fixed_compute():
    form = KaplanNDForm()
    budget = 1e20
    n_opt = form.n_opt(ND, budget)
    best = minimize_scalar(
        lambda ln_n: k20.loss_nd(np.exp(ln_n), budget / (6 * np.exp(ln_n)), **ND), bounds=(5, 30), method="bounded"
    )
    assert np.log(n_opt) == pytest.approx(best.x, abs=1e-3)


def test_kaplan_ns_recovers_table3_and_drops_warmup():
    n, b, step, L = ns_curves(warmup=300)
    res = fit_kaplan_ns(n, b, step, L, warmup=300)
    c = res.coefficients
    assert set(c) == {"alpha_N", "alpha_S", "N_c", "S_c"}
    assert c["alpha_N"] == pytest.approx(NS["alpha_N"], rel=0.02)
    assert c["alpha_S"] == pytest.approx(NS["alpha_S"], rel=0.02)
    assert c["S_c"] == pytest.approx(NS["S_c"], rel=0.1)
    assert res.objective < 1e-6  # exact curves once the warm-up junk is gone
    assert res.n_points == int((step > 300).sum())


def test_kaplan_ns_without_warmup_exclusion_is_worse():
    n, b, step, L = ns_curves(warmup=300)
    clean = fit_kaplan_ns(n, b, step, L, warmup=300)
    junk = fit_kaplan_ns(n, b, step, L)
    assert junk.n_points > clean.n_points
    assert junk.objective > 100 * clean.objective


def test_warmup_column_works_like_the_argument():
    n, b, step, L = ns_curves(warmup=300)
    by_column = fit("kaplan-ns", {"N": n, "B": b, "step": step, "loss": L, "warmup": np.full(n.size, 300.0)})
    by_argument = fit("kaplan-ns", {"N": n, "B": b, "step": step, "loss": L}, warmup=300)
    assert by_column.n_points == by_argument.n_points
    assert by_column.coefficients == pytest.approx(by_argument.coefficients)


def test_ns_points_use_the_published_critical_batch():
    pts = ns_points(np.array([1e7]), np.array([2.0**19]), np.array([1000.0]), np.array([3.0]))
    b_crit = 2e8 / 3.0 ** (1 / 0.21)
    assert pts.X[0] == pytest.approx(1000.0 / (1 + b_crit / 2**19))
    assert pts.compute[0] == pytest.approx(6 * 1e7 * 2**19 * 1000)


def test_kaplan_ns_derived_n_opt_is_on_the_appendix_b_frontier():
    n, b, step, L = ns_curves()
    res = fit_kaplan_ns(n, b, step, L, warmup=300, budgets=[1e20])
    expected = k20.frontier_ns(k20.c_min_of_budget(1e20), **res.coefficients).N
    assert res.derived["N_opt(C=1e+20)"] == pytest.approx(expected)


BYTE_NS = {"alpha_N": 0.5, "alpha_S": 0.2, "N_c": 2e3, "S_c": 1e4}
BYTE_BATCH = {"B_star": 3000.0 * 1.8 ** (1 / 100.0), "alpha_B": 100.0}
"""A byte-level-like scope: tiny models, losses near 2 nats, a critical batch of about 3,000 tokens."""


def byte_curves(warmup: int = 30):
    """Curves of three sizes at three batch sizes, 400 steps each, from eq 1.6 with BYTE_BATCH."""
    rows = []
    for n in (6e3, 2e4, 6e4):
        for batch in (512.0, 2048.0, 8192.0):
            steps = np.arange(40, 401, 20)
            L = k20.loss_after_steps(n, steps, batch, **BYTE_NS, **BYTE_BATCH)
            rows += [(n, batch, s, l) for s, l in zip(steps, L, strict=True)]
    n, b, s, L = np.array(rows).T
    return n, b, s, L * np.exp(np.random.default_rng(0).normal(0, 0.002, L.size))


def test_fitted_batch_recovers_a_planted_critical_batch():
    n, b, step, L = byte_curves()
    fitted = fit_kaplan_ns(n, b, step, L, batch="fitted")
    c = fitted.coefficients
    b_crit = k20.b_crit(1.8, **k20.batch_coefficients(c))
    assert 3000.0 / 1.5 < b_crit < 3000.0 * 1.5
    assert c["alpha_S"] == pytest.approx(BYTE_NS["alpha_S"], rel=0.1)
    assert "batch profiled" in fitted.message
    # every prediction made from the stored coefficients converts steps the way the fit did
    pred = k20.loss_after_steps(n, step, b, **k20.ns_coefficients(c), **k20.batch_coefficients(c))
    assert np.max(np.abs(L / pred - 1)) < 0.02
    # Kaplan's BPE critical batch (millions of tokens at these losses) cannot describe these curves
    published = fit_kaplan_ns(n, b, step, L)
    assert published.objective > 10 * fitted.objective


def test_fitted_batch_keeps_the_published_one_on_its_own_curves():
    n, b, step, L = ns_curves(warmup=300)
    res = fit("kaplan-ns", {"N": n, "B": b, "step": step, "loss": L}, warmup=300, batch="fitted")
    assert {k: res.coefficients[k] for k in ("B_star", "alpha_B")} == k20.batch_coefficients()
    assert res.coefficients["alpha_S"] == pytest.approx(NS["alpha_S"], rel=0.02)


def test_batch_option_is_checked():
    n, b, step, L = byte_curves()
    with pytest.raises(ValueError, match="batch"):
        fit_kaplan_ns(n, b, step, L, batch="guess")
    with pytest.raises(ValueError, match="kaplan-ns only"):
        fit("chinchilla", {"N": n, "D": n * 20, "loss": L}, batch="fitted")


def test_grouped_bootstrap_resamples_whole_curves():
    # Each curve carries its own offset (run-to-run noise shared by all its points): resampling points treats
    # 20 correlated points per curve as independent and gives too narrow an interval; resampling curves does not.
    rng = np.random.default_rng(1)
    rows = []
    for run, n in enumerate(np.repeat([6e3, 1e4, 2e4, 4e4, 8e4], 2)):
        offset = rng.normal(0, 0.02)
        for step in np.arange(100, 2001, 100):
            loss = k20.loss_after_steps(n, step, 2048.0, **BYTE_NS, **BYTE_BATCH) * np.exp(offset)
            rows.append((run, n, 2048.0, step, loss))
    run, n, b, step, L = np.array(rows).T
    batch = {"B_star": BYTE_BATCH["B_star"], "alpha_B": BYTE_BATCH["alpha_B"]}
    from fits.fitting.engine import fit_form

    def width(group):
        res = fit_form(KaplanNSForm(), ns_points(n, b, step, L, batch=batch, group=group), bootstrap_resamples=200)
        low, high = res.intervals["alpha_N"]
        return high - low

    assert width(run) > 2 * width(None)
    with pytest.raises(ValueError, match="group"):
        ns_points(n, b, step, L, group=run[:-1])


def test_kaplan_nd_planner_optimum_is_the_fitted_forms_and_a_minimum():
    from fits.laws.families.kaplan import KaplanNDModel

    model = KaplanNDModel(ND)
    for budget in (1e15, 1e19, 1e23):
        n, d = model.optimum(budget)
        assert n == pytest.approx(KaplanNDForm().n_opt(ND, budget), rel=1e-12)
        assert 6 * n * d == pytest.approx(budget)
        best = minimize_scalar(lambda x, c=budget: float(model.loss(np.exp(x), c)),
                               bounds=(np.log(n) - 5, np.log(n) + 5), method="bounded", options={"xatol": 1e-9})
        assert np.exp(best.x) == pytest.approx(n, rel=1e-3)
