"""Planner constraints: repeated data, size caps, deadlines, target losses, inference, batch bounds."""

from __future__ import annotations

import numpy as np
import pytest

from fits.fit import Fit, Provenance
from fits.laws import chinchilla, kaplan2020, repeated
from fits.laws.published import published_fits
from planner import Hardware, PlanError, PlanRequest, solve_plan

FITS = {f.name: f for f in published_fits()}
for _i, _f in enumerate(FITS.values(), start=1):
    _f.id = _i
EPOCH = FITS["besiroglu2024"]
KAPLAN = FITS["kaplan2020"]
CC = EPOCH.coefficients


def test_unique_tokens_below_d_opt_repeat_data_priced_by_the_repeated_data_law():
    free = solve_plan(PlanRequest(compute_flops=1e21), EPOCH)
    unique = free.tokens / 5
    plan = solve_plan(PlanRequest(compute_flops=1e21, unique_tokens=unique), EPOCH)
    assert plan.epochs > 1 and "unique_tokens" in plan.binding
    assert plan.epochs == pytest.approx(plan.tokens / unique)
    assert plan.predicted_loss.mean == pytest.approx(
        float(repeated.loss_repeated(plan.params, plan.tokens, unique, CC))
    )
    assert plan.predicted_loss.mean > free.predicted_loss.mean
    # Muennighoff et al.: excess parameters lose value faster (R*_N 5.3) than repeated tokens (R*_D 15.4), so the
    # data-constrained optimum spends the budget on more epochs of a smaller model, not on a bigger one.
    assert plan.params < free.params
    same_size = float(repeated.loss_repeated(free.params, 1e21 / (6 * free.params), unique, CC))
    assert plan.predicted_loss.mean < same_size
    assert any("repeated-data law" in w for w in plan.warnings)
    assert any("Muennighoff" in a for a in plan.assumptions)
    assert 6 * plan.params * plan.tokens == pytest.approx(1e21, rel=1e-9)


def test_max_epochs_caps_the_data():
    plan = solve_plan(PlanRequest(compute_flops=1e21, unique_tokens=5e9, max_epochs=2.0), EPOCH)
    assert plan.tokens <= 1e10 * (1 + 1e-9)
    assert plan.epochs <= 2.0 + 1e-9
    assert "max_epochs" in plan.binding
    # Spending all 1e21 FLOPs on the 1e10 capped tokens takes N = 1.7e10, past where repeated data gives
    # parameters value: a smaller N reaches the same loss (to 1e-6) for less compute, and is the plan (issue 11:
    # the plan's own alternatives showed a smaller size reaching its loss at -50% compute).
    spent = solve_plan(PlanRequest(compute_flops=1e21, unique_tokens=5e9), EPOCH)
    assert 6 * plan.params * plan.tokens < 1e21 and plan.tokens == pytest.approx(1e10)
    assert any("the rest of the budget buys nothing" in w for w in plan.warnings)
    full = float(repeated.loss_repeated(1e21 / (6 * 1e10), 1e10, 5e9, CC))
    assert plan.predicted_loss.mean == pytest.approx(full, rel=2e-6)
    assert spent.tokens > 1e10  # without the epoch cap the plan takes more data


def test_max_params_and_data_cap_together_leave_budget_unspent():
    plan = solve_plan(PlanRequest(compute_flops=1e22, max_params=1e8, unique_tokens=1e9, max_epochs=4.0), EPOCH)
    assert plan.params == pytest.approx(1e8) and plan.tokens == pytest.approx(4e9)
    assert {"max_params", "max_epochs"} <= set(plan.binding)
    assert plan.compute_flops < 1e22 and any("cannot be spent" in w for w in plan.warnings)


@pytest.mark.parametrize("fit", [EPOCH, KAPLAN], ids=["besiroglu2024", "kaplan2020"])
def test_max_params_below_n_opt_gives_the_best_plan_at_that_size(fit):
    free = solve_plan(PlanRequest(compute_flops=1e21), fit)
    cap = free.params / 4
    plan = solve_plan(PlanRequest(compute_flops=1e21, max_params=cap), fit)
    assert plan.params == pytest.approx(cap) and plan.binding == ["max_params"]
    assert plan.predicted_loss.mean > free.predicted_loss.mean
    if fit is EPOCH:
        # At a fixed size the whole budget goes into data: D = C/(6N), the law's loss there.
        assert plan.tokens == pytest.approx(1e21 / (6 * cap))
        assert plan.predicted_loss.mean == pytest.approx(float(chinchilla.loss(cap, plan.tokens, **CC)))
    else:
        # Kaplan: the loss this size reaches is the Table 6 loss of the C_eff with C_eff·B16(N/N_opt(C_eff)) = C_min.
        k = KAPLAN.coefficients
        c_eff = k["C_c_min"] / plan.predicted_loss.mean ** (1 / k["alpha_C_min"])
        r = cap / (k["N_e"] * c_eff ** k["p_N"])
        assert c_eff * float(kaplan2020.excess_compute(r)) == pytest.approx(1e21 / 2 / 8.64e19, rel=1e-6)
        assert any("B.16" in a for a in plan.assumptions)


@pytest.mark.parametrize("fit", [EPOCH, KAPLAN], ids=["besiroglu2024", "kaplan2020"])
def test_a_deadline_keeps_the_gpus_and_the_budget_given(fit):
    # Issue 11: a deadline used to add GPUs (696 H100s for 64 given) and spend +461% FLOPs. Now the plan runs
    # on the GPUs given within the budget, and a budget too large to train in time gives a smaller model.
    hw = Hardware(gpu="H100", count=8)
    base = solve_plan(PlanRequest(compute_flops=1e21, hardware=hw), fit)
    deadline = base.time.wall_clock_hours * 0.7
    plan = solve_plan(PlanRequest(compute_flops=1e21, hardware=hw, deadline_hours=deadline), fit)
    assert "deadline_hours" in plan.binding
    assert plan.time.gpus == 8 and plan.time.wall_clock_hours <= deadline
    assert plan.time.wall_clock_hours >= 0.98 * deadline  # as much of the deadline as the shape's rounding allows
    assert plan.budget_flops == 1e21 and plan.compute_flops < 1e21 and plan.extra_compute == 0
    assert plan.params < base.params and plan.predicted_loss.mean > base.predicted_loss.mean
    assert plan.request.compute_flops == 1e21 and plan.request.deadline_hours == deadline
    # What the full budget would take instead: 8/0.7 → 12 GPUs, or the base plan's hours.
    note = next(w for w in plan.warnings if "deadline" in w)
    assert "needs 12 GPUs" in note and f"{base.time.wall_clock_hours:.3g} h on the 8 given" in note
    assert plan.batch_sequences % 8 == 0


def test_a_target_loss_past_the_deadline_is_refused_with_what_it_takes():
    hw = Hardware(gpu="H100", count=8)
    base = solve_plan(PlanRequest(target_loss=2.3, hardware=hw), EPOCH)
    with pytest.raises(PlanError, match="needs 16 GPUs") as err:
        solve_plan(PlanRequest(target_loss=2.3, hardware=hw, deadline_hours=base.time.wall_clock_hours / 2), EPOCH)
    assert err.value.field == "deadline_hours"
    assert "or a target loss of at least" in err.value.message


def test_generous_deadline_changes_nothing():
    hw = Hardware(gpu="H100", count=8)
    base = solve_plan(PlanRequest(compute_flops=1e21, hardware=hw), EPOCH)
    plan = solve_plan(PlanRequest(compute_flops=1e21, hardware=hw, deadline_hours=1e4), EPOCH)
    assert plan.extra_compute == 0 and plan.batch_tokens == base.batch_tokens and "deadline_hours" not in plan.binding


@pytest.mark.parametrize("fit", [EPOCH, KAPLAN], ids=["besiroglu2024", "kaplan2020"])
@pytest.mark.parametrize("constraints", [{}, {"max_params": 3e9}, {"unique_tokens": 1e10}], ids=["free", "cap", "data"])
def test_target_loss_returns_the_least_compute(fit, constraints):
    target = 2.45
    plan = solve_plan(PlanRequest(target_loss=target, **constraints), fit)
    assert plan.predicted_loss.mean <= target + 1e-6
    assert plan.predicted_loss.mean == pytest.approx(target, abs=1e-4)
    less = solve_plan(PlanRequest(compute_flops=plan.budget_flops * 0.98, **constraints), fit)
    assert less.predicted_loss.mean > target


def test_target_loss_closed_form_for_chinchilla():
    plan = solve_plan(PlanRequest(target_loss=2.3), EPOCH)
    assert plan.budget_flops == pytest.approx(float(chinchilla.compute_for_loss(2.3, **CC)))


@pytest.mark.parametrize("fit", [EPOCH, KAPLAN], ids=["besiroglu2024", "kaplan2020"])
def test_inference_tokens_move_the_optimum_to_a_smaller_model(fit):
    free = solve_plan(PlanRequest(compute_flops=1e22), fit)
    serve = solve_plan(PlanRequest(compute_flops=1e22, inference_tokens=10 * free.tokens), fit)
    assert serve.params < 0.8 * free.params
    assert serve.tokens_per_param > free.tokens_per_param
    assert "inference_tokens" in serve.binding
    assert serve.inference_flops == pytest.approx(2 * serve.params * 10 * free.tokens)
    # The lifetime budget is spent: training plus serving.
    assert serve.compute_flops + serve.inference_flops == pytest.approx(1e22, rel=1e-6)


def test_inference_aware_target_loss_minimises_total_flops():
    d_inf = 2e12
    plan = solve_plan(PlanRequest(target_loss=2.3, inference_tokens=d_inf), EPOCH)
    total = plan.compute_flops + plan.inference_flops
    # Any other size reaching the same loss costs more training + inference FLOPs (Sardana & Frankle 2023).
    for factor in (0.5, 0.8, 1.25, 2.0):
        n = plan.params * factor
        d = float(chinchilla.loss(n, 1e30, **CC))  # converged loss at this size
        if d >= 2.3:
            continue
        tokens = (CC["B"] / (2.3 - CC["E"] - CC["A"] / n ** CC["alpha"])) ** (1 / CC["beta"])
        assert 6 * n * tokens + 2 * n * d_inf > total


def test_kaplan_batch_bounds_hold_and_spend_the_budget():
    free = solve_plan(PlanRequest(compute_flops=1e21), KAPLAN)
    cap = free.critical_batch_tokens / 4
    plan = solve_plan(PlanRequest(compute_flops=1e21, max_batch_tokens=cap), KAPLAN)
    assert plan.batch_tokens <= cap
    assert "max_batch_tokens" in plan.binding
    # Below B_crit the budget buys more C_min (eq. 5.5): C_min = C/(1 + B/B_crit).
    assert plan.c_min_flops > free.c_min_flops
    assert plan.steps > free.steps
    assert plan.compute_flops == pytest.approx(1e21)


def test_chinchilla_min_batch_bound():
    plan = solve_plan(PlanRequest(compute_flops=1e19, min_batch_tokens=8e6), EPOCH)
    assert plan.batch_tokens >= 8e6
    assert plan.steps == round(plan.tokens / plan.batch_tokens)


def test_hours_budget_for_a_small_model_pays_for_its_embeddings():
    hw = Hardware(gpu="A100", count=1, mfu=0.1)
    plan = solve_plan(PlanRequest(hours=0.25, hardware=hw, vocab_size=50257, seq_len=1024), EPOCH)
    assert plan.time.wall_clock_hours <= 0.25
    # EPOCH's N counts all parameters: the embeddings (which dominate small models) are inside 6·N
    assert plan.time.flops_per_token > 2 * 6 * plan.params_non_embedding
    palm = solve_plan(PlanRequest(hours=0.25, hardware=hw, vocab_size=50257, seq_len=1024, flops_convention="palm"),
                      EPOCH)
    same_flops = solve_plan(PlanRequest(compute_flops=palm.compute_flops, vocab_size=50257, seq_len=1024), EPOCH)
    assert palm.params > same_flops.params  # per-token attention overhead favours a larger model


def _unprefixed(prefix: str, names: tuple[str, ...]) -> dict[str, float]:
    return {n: kaplan2020.KAPLAN2020[prefix + n] for n in names}


def test_refitted_kaplan_nd_fit_is_optimised_numerically():
    coeffs = _unprefixed("nd_", ("alpha_N", "alpha_D", "N_c", "D_c"))
    fit = Fit(id=7, law="kaplan-nd", scope="x", coefficients=coeffs, provenance=Provenance(source="fitted"))
    plan = solve_plan(PlanRequest(compute_flops=1e20), fit)
    grid = np.geomspace(1e6, 1e12, 20001)
    losses = kaplan2020.loss_nd(grid, 1e20 / (6 * grid), **coeffs)
    assert plan.predicted_loss.mean <= losses.min() + 1e-9
    assert plan.params == pytest.approx(grid[np.argmin(losses)], rel=2e-3)
    assert 6 * plan.params * plan.tokens == pytest.approx(1e20)
    assert plan.predicted_loss.high - plan.predicted_loss.mean == pytest.approx(0.02)


def test_refitted_kaplan_ns_fit_uses_the_app_b_frontier():
    coeffs = {**_unprefixed("ns_", ("alpha_N", "alpha_S", "N_c", "S_c")), "B_star": 2e8, "alpha_B": 0.21}
    fit = Fit(id=8, law="kaplan-ns", scope="x", coefficients=coeffs, provenance=Provenance(source="fitted"))
    plan = solve_plan(PlanRequest(compute_flops=1e21), fit)
    fr = kaplan2020.frontier_ns(1e21 / 2 / 8.64e19, **coeffs)
    assert plan.params == pytest.approx(float(fr.N))
    assert plan.predicted_loss.mean == pytest.approx(float(fr.loss), rel=1e-6)
    assert plan.critical_batch_tokens == pytest.approx(float(fr.B_crit), rel=1e-6)
    capped = solve_plan(PlanRequest(compute_flops=1e21, max_params=float(fr.N) / 3), fit)
    assert capped.predicted_loss.mean > plan.predicted_loss.mean


def test_alternatives_under_repetition_are_priced_with_the_same_law():
    plan = solve_plan(PlanRequest(compute_flops=1e21, unique_tokens=1e10), EPOCH)
    assert len(plan.alternatives) == 4
    for alt in plan.alternatives:
        assert alt.extra_compute > 0  # the plan is the optimum of this very loss
        tokens = alt.compute_for_plan_loss / (6 * alt.params)
        reached = float(repeated.loss_repeated(alt.params, tokens, 1e10, CC))
        assert reached == pytest.approx(plan.predicted_loss.mean, rel=1e-7)
