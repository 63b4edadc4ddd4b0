"""Parameter and FLOP conventions of a plan: the shape has the law's N as the law counts it, the batch and
learning-rate rules get non-embedding N, and the plan states the FLOP convention of its compute, time and MFU."""

from __future__ import annotations

import pytest

from fits import accounting
from fits.laws import hyperparams
from fits.laws.published import published_fits
from planner import PlanRequest, solve_plan
from planner import training as training_mod
from planner.request import Hardware

FITS = {f.name: f for f in published_fits()}
BUDGETS = (1e19, 1e21, 1e23)


@pytest.mark.parametrize("name", ["besiroglu2024", "hoffmann2022"])
@pytest.mark.parametrize("budget", BUDGETS)
def test_total_n_fit_shape_has_n_total_parameters(name, budget):
    """Chinchilla sets count all parameters: the built model (default vocab 32000, seq_len 2048) is N."""
    plan = solve_plan(PlanRequest(compute_flops=budget), FITS[name])
    s = plan.shape
    total = accounting.total_params(s.n_layer, s.d_model, plan.vocab_size, plan.seq_len)
    assert plan.params_counted == "total"
    assert plan.params_total == s.params_total == total
    assert abs(total / plan.params - 1) <= 0.03, (budget, total, plan.params)
    assert s.params_error == pytest.approx(total / plan.params - 1)
    assert plan.params_non_embedding == accounting.non_embedding_params(s.n_layer, s.d_model) < plan.params


@pytest.mark.parametrize("budget", BUDGETS)
def test_non_embedding_fit_shape_has_n_non_embedding_parameters(budget):
    plan = solve_plan(PlanRequest(compute_flops=budget), FITS["kaplan2020"])
    s = plan.shape
    assert plan.params_counted == "non_embedding"
    assert plan.params_non_embedding == plan.params
    assert abs(accounting.non_embedding_params(s.n_layer, s.d_model) / plan.params - 1) <= 0.03
    assert plan.params_total == accounting.total_params(s.n_layer, s.d_model, plan.vocab_size, plan.seq_len)


def test_step_law_receives_non_embedding_n(monkeypatch):
    seen: list[float] = []
    real = hyperparams.step_law_lr

    def spy(N, D):
        seen.append(float(N))
        return real(N, D)

    monkeypatch.setattr(training_mod.hyperparams, "step_law_lr", spy)
    plan = solve_plan(PlanRequest(compute_flops=1e21, hyperparams="steplaw"), FITS["besiroglu2024"])
    s = plan.shape
    non_embedding = accounting.non_embedding_params(s.n_layer, s.d_model)
    assert seen and set(seen) >= {float(non_embedding)}
    assert seen[-1] == non_embedding < plan.params  # not the law's total N
    assert plan.learning_rate == pytest.approx(real(non_embedding, plan.tokens))


@pytest.mark.parametrize(("name", "counted"), [("besiroglu2024", "total"), ("kaplan2020", "non_embedding")])
def test_plan_states_the_flop_convention_it_was_fitted_with(name, counted):
    hw = Hardware(gpu="H100", count=8, mfu=0.4)
    plan = solve_plan(PlanRequest(compute_flops=1e21, hardware=hw), FITS[name])
    assert plan.flops_convention == "6N" == plan.time.flops_convention
    assert plan.params_counted == counted
    # the time is counted as the law counts compute: 6·N per token, no attention or head term added
    assert plan.time.flops_per_token == pytest.approx(6 * plan.params)
    assert any(a.startswith("FLOPs: compute_flops = 6·N·D") and "'6N'" in a and "fitted with" in a
               for a in plan.assumptions)


def test_total_n_fit_does_not_count_the_output_layer_twice():
    hw = Hardware(gpu="H100", count=8, mfu=0.4)
    fit = FITS["besiroglu2024"]
    for convention, attention in (("6N", 0), ("kaplan", 6), ("palm", 12)):
        plan = solve_plan(PlanRequest(compute_flops=1e21, hardware=hw, flops_convention=convention), fit)
        s = plan.shape
        # N already holds the embedding table that is the (tied) head: no 6·d_model·vocab on top
        assert plan.time.flops_per_token == pytest.approx(6 * plan.params + attention * s.n_layer * plan.seq_len
                                                          * s.d_model)
        assert plan.flops_convention == convention
        assert any(f"'{convention}'" in a and "; the law was fitted with" in a for a in plan.assumptions) \
            == (convention != "6N")


def test_palm_convention_adds_the_head_to_a_non_embedding_n():
    hw = Hardware(gpu="H100", count=8, mfu=0.4)
    plan = solve_plan(PlanRequest(compute_flops=1e21, hardware=hw, flops_convention="palm"), FITS["kaplan2020"])
    s = plan.shape
    expected = 6 * plan.params + 12 * s.n_layer * plan.seq_len * s.d_model + 6 * s.d_model * plan.vocab_size
    assert plan.time.flops_per_token == pytest.approx(expected)


def test_hours_budget_spends_the_hours_in_the_plans_convention():
    hw = Hardware(gpu="A100", count=1, mfu=0.4)
    fit = FITS["besiroglu2024"]
    plain = solve_plan(PlanRequest(hours=100, hardware=hw), fit)
    palm = solve_plan(PlanRequest(hours=100, hardware=hw, flops_convention="palm"), fit)
    assert plain.budget_flops == palm.budget_flops == pytest.approx(312e12 * 0.4 * 100 * 3600)
    # "6N": the hours buy exactly the law's compute; "palm" also pays attention, so less law compute
    assert plain.compute_flops == pytest.approx(plain.budget_flops, rel=1e-3)
    assert palm.compute_flops < plain.compute_flops
    assert plain.time.wall_clock_hours <= 100 and palm.time.wall_clock_hours <= 100


def test_unknown_convention_is_refused():
    from planner.errors import PlanError

    with pytest.raises(PlanError, match="flops_convention"):
        solve_plan(PlanRequest(compute_flops=1e21, flops_convention="12N"), FITS["besiroglu2024"])  # type: ignore[arg-type]
