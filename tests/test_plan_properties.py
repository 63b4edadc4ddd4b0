"""Property tests of the planner over random budgets and constraints.

Optimality: no feasible (N, D) on a dense grid beats the plan's loss by more than 0.1%. Monotonicity: more
budget never predicts a higher loss. Budget: 6·N·D matches it within 1% unless the plan names the constraint
that stopped it. Constraints are never violated, and every number in a plan is finite and serialisable.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fits.laws import chinchilla, repeated
from fits.laws.published import published_fits
from planner import Hardware, Plan, PlanError, PlanRequest, solve_plan

FITS = {f.name: f for f in published_fits()}
for _i, _f in enumerate(FITS.values(), start=1):
    _f.id = _i
CHINCHILLA_FITS = ("besiroglu2024", "hoffmann2022")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def coefficients(name: str) -> dict[str, float]:
    return {k: FITS[name].coefficients[k] for k in ("E", "A", "B", "alpha", "beta")}


@st.composite
def chinchilla_cases(draw):
    """A fit, a FLOPs budget, and constraints scaled to that budget's unconstrained optimum."""
    name = draw(st.sampled_from(CHINCHILLA_FITS))
    compute = 10 ** draw(st.floats(15, 25))
    alloc = chinchilla.optimal_allocation(compute, **coefficients(name))
    kw: dict[str, float] = {}
    if draw(st.booleans()):
        kw["max_params"] = float(alloc.N) * 10 ** draw(st.floats(-1.5, 0.5))
    if draw(st.booleans()):
        kw["unique_tokens"] = float(alloc.D) * 10 ** draw(st.floats(-2, 0.5))
        if draw(st.booleans()):
            kw["max_epochs"] = draw(st.floats(0.5, 30))
    if draw(st.integers(0, 3)) == 0:
        kw["inference_tokens"] = float(alloc.D) * 10 ** draw(st.floats(-1, 1.5))
    return name, compute, kw


def grid_best(name: str, compute: float, kw: dict[str, float]) -> float:
    """Lowest loss over a dense grid of feasible (N, D): D as large as the budget and the data cap allow."""
    n = np.geomspace(1e3, min(kw.get("max_params", 1e16), compute / 6), 40001)
    d = (compute - 2 * n * kw.get("inference_tokens", 0.0)) / (6 * n)
    if "max_epochs" in kw:
        d = np.minimum(d, kw["unique_tokens"] * kw["max_epochs"])
    keep = d > 0
    n, d = n[keep], d[keep]
    cc = coefficients(name)
    if "unique_tokens" in kw:
        return float(np.min(repeated.loss_repeated(n, d, kw["unique_tokens"], cc)))
    return float(np.min(chinchilla.loss(n, d, **cc)))


def assert_well_formed(plan: Plan) -> None:
    for value in (
        plan.params,
        plan.tokens,
        plan.compute_flops,
        plan.learning_rate,
        plan.predicted_loss.mean,
        plan.predicted_loss.low,
        plan.predicted_loss.high,
        plan.c_min_flops,
        plan.critical_batch_tokens,
    ):
        assert math.isfinite(value) and value > 0
    assert plan.steps >= 1 and plan.batch_sequences >= 1 and 0 <= plan.warmup_steps <= plan.steps
    assert plan.shape.d_model % 64 == 0 and plan.shape.n_layer >= 1
    assert msgspec.json.decode(msgspec.json.encode(plan), type=Plan) == plan


def _plan_or_uniform_refusal(name: str, compute: float, kw: dict[str, float]) -> Plan | None:
    """The plan, or None where it is refused for predicting no better than a uniform guess, which the dense
    grid must confirm: no feasible (N, D) gets below ln(vocab)."""
    try:
        return solve_plan(PlanRequest(compute_flops=compute, **kw), FITS[name])
    except PlanError as exc:
        assert "uniform guess" in exc.message, exc
        assert grid_best(name, compute, kw) >= math.log(32000) * 0.999
        return None


@SETTINGS
@given(chinchilla_cases())
def test_no_feasible_grid_point_beats_the_plan_and_its_constraints_hold(case):
    """One plan per case, two claims: no feasible (N, D) of the dense grid predicts a lower loss, and the
    constraints hold with the budget spent unless a binding constraint is named."""
    name, compute, kw = case
    plan = _plan_or_uniform_refusal(name, compute, kw)
    if plan is None:
        return
    assert plan.predicted_loss.mean <= grid_best(name, compute, kw) * 1.001
    assert_well_formed(plan)
    if "max_params" in kw:
        assert plan.params <= kw["max_params"] * (1 + 1e-9)
    if "max_epochs" in kw:
        assert plan.tokens <= kw["unique_tokens"] * kw["max_epochs"] * (1 + 1e-9)
        assert plan.epochs <= kw["max_epochs"] * (1 + 1e-9)
    spent = 6 * plan.params * plan.tokens / compute
    if abs(spent - 1) > 0.01:
        assert plan.binding, f"budget {spent:.3f} spent with no binding constraint named"
        assert set(plan.binding) & {"inference_tokens", "max_epochs"}
    else:
        assert spent <= 1 + 1e-9
    if plan.inference_flops:
        assert plan.compute_flops + plan.inference_flops <= compute * (1 + 1e-9)


@SETTINGS
@given(chinchilla_cases(), st.floats(1.01, 100))
def test_more_budget_never_predicts_a_higher_loss(case, factor):
    name, compute, kw = case
    low = _plan_or_uniform_refusal(name, compute, kw)
    high = _plan_or_uniform_refusal(name, compute * factor, kw)
    if high is None:
        assert low is None  # a larger budget is refused only where the smaller one is too
    elif low is not None:
        assert high.predicted_loss.mean <= low.predicted_loss.mean * (1 + 1e-9)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.floats(16, 24),
    st.floats(1.05, 30),
    st.one_of(st.none(), st.floats(7, 11)),
    st.one_of(st.none(), st.floats(9, 12)),
)
def test_kaplan_budget_monotone_and_within_constraints(log_c, factor, log_cap, log_unique):
    kw = {}
    if log_cap is not None:
        kw["max_params"] = 10**log_cap
    if log_unique is not None:
        kw["unique_tokens"] = 10**log_unique
    fit = FITS["kaplan2020"]
    low = solve_plan(PlanRequest(compute_flops=10**log_c, **kw), fit)
    high = solve_plan(PlanRequest(compute_flops=10**log_c * factor, **kw), fit)
    assert high.predicted_loss.mean <= low.predicted_loss.mean * (1 + 1e-9)
    for plan in (low, high):
        assert_well_formed(plan)
        if log_cap is not None:
            assert plan.params <= kw["max_params"] * (1 + 1e-9)
        # Table 6's rounded prefactors: 6·N·D = 6·N_e·D_e/(2 PF-day)·C = 0.90·C, at any size (B.16/B.17).
        k = fit.coefficients
        ratio = 6 * plan.params * plan.tokens / plan.compute_flops
        assert abs(ratio - 6 * k["N_e"] * k["D_e"] / (2 * 8.64e19)) < 1e-6


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["A100", "H100", "H100-PCIe", "H200", "L40S"]),
    st.integers(1, 4096),
    st.floats(0.05, 1000),
    st.floats(0.05, 0.6),
    st.one_of(st.none(), st.floats(0.05, 2.0)),
    st.sampled_from((*CHINCHILLA_FITS, "kaplan2020")),
)
def test_hours_and_deadlines_are_met(gpu, count, hours, mfu, deadline_fraction, name):
    hw = Hardware(gpu=gpu, count=count, mfu=mfu)
    kw = {} if deadline_fraction is None else {"deadline_hours": hours * deadline_fraction}
    try:
        plan = solve_plan(PlanRequest(hours=hours, hardware=hw, **kw), FITS[name])
    except PlanError as exc:
        assert exc.field == "deadline_hours" and deadline_fraction is not None
        return
    assert_well_formed(plan)
    assert plan.time.wall_clock_hours <= hours * (1 + 1e-9)
    if "deadline_hours" in plan.binding:
        assert plan.time.wall_clock_hours <= kw["deadline_hours"] * (1 + 1e-9)
        assert plan.extra_compute == 0 and plan.time.gpus == count  # the GPUs given, never more
    else:
        assert plan.time.wall_clock_hours >= 0.9 * hours and plan.extra_compute == 0


def _log_uniform(low: float, high: float):
    return st.floats(low, high).map(lambda x: 10**x)


def _maybe(strategy):
    return st.one_of(st.none(), strategy)


@st.composite
def any_request(draw):
    """Every kind of budget with any mix of constraints, over realistic ranges."""
    budget = draw(st.sampled_from(["compute_flops", "target_loss", "hours"]))
    hardware = draw(
        _maybe(
            st.builds(
                Hardware,
                gpu=st.sampled_from(["H100", "A100", "L40S", "H200", "H100-PCIe"]),
                count=st.integers(1, 4096),
                mfu=st.floats(0.05, 0.7),
            )
        )
    )
    if budget == "hours" and hardware is None:
        hardware = Hardware(gpu="H100", count=8)
    kw = {
        "compute_flops": draw(_log_uniform(12, 27)) if budget == "compute_flops" else None,
        "target_loss": draw(st.floats(1.9, 4.0)) if budget == "target_loss" else None,
        "hours": draw(_log_uniform(-1, 4)) if budget == "hours" else None,
        "hardware": hardware,
        "max_params": draw(_maybe(_log_uniform(5, 13))),
        "unique_tokens": draw(_maybe(_log_uniform(6, 14))),
        "deadline_hours": draw(_maybe(_log_uniform(-1, 4))) if hardware else None,
        "min_batch_tokens": draw(_maybe(_log_uniform(3, 7))),
        "max_batch_tokens": draw(_maybe(_log_uniform(4, 8))),
        "seq_len": draw(_maybe(st.sampled_from([128, 1024, 2048, 8192]))),
        "inference_tokens": draw(_maybe(_log_uniform(6, 14))),
        "hyperparams": draw(_maybe(st.sampled_from(["deepseek", "steplaw", "kaplan"]))),
    }
    if kw["unique_tokens"] is not None:
        kw["max_epochs"] = draw(_maybe(st.floats(0.3, 50)))
    return PlanRequest(**kw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_request(), st.sampled_from(sorted(FITS)))
def test_any_request_gives_a_valid_plan_or_names_a_field(request, name):
    try:
        plan = solve_plan(request, FITS[name])
    except PlanError as exc:
        assert exc.field in PlanRequest.__struct_fields__ or exc.field.startswith("hardware")
        assert "outside where the fit can be evaluated" not in exc.message
        return
    assert_well_formed(plan)
    if request.max_params:
        assert plan.params <= request.max_params * (1 + 1e-9)
    if request.max_epochs:
        assert plan.tokens <= request.unique_tokens * request.max_epochs * (1 + 1e-9)
    if request.min_batch_tokens:
        assert plan.batch_tokens >= request.min_batch_tokens
    if request.max_batch_tokens:
        assert plan.batch_tokens <= request.max_batch_tokens
    if request.deadline_hours and plan.time:
        assert plan.time.wall_clock_hours <= request.deadline_hours * (1 + 1e-9)
    if request.hours:
        assert plan.time.wall_clock_hours <= request.hours * (1 + 1e-9)
    if request.target_loss:
        assert plan.predicted_loss.mean <= request.target_loss + 1e-6
