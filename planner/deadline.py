"""Hardware time: how long a plan takes on the GPUs given, and keeping a plan within a deadline on them.

Deadline model: the plan runs on the GPUs given, no more. Its wall-clock is its hardware FLOPs over
GPUs × peak × MFU, whatever the batch (a larger batch on the same GPUs takes proportionally longer per step),
so the only way to finish sooner on them is to train less. When the plan at the full budget runs past the
deadline, the plan becomes the best one whose training fits in the deadline: the budget is scaled down until
it does, which gives a smaller model. The plan says what the full budget would take instead: more GPUs
(one sequence each at least; past the batch's sequences the batch itself must grow, at extra compute by
Kaplan eq. 5.1), or more hours. A target loss cannot be scaled down: a deadline it cannot meet is refused
with the same numbers and the best loss the GPUs reach in time.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import msgspec

from fits import accounting
from planner import hardware as hw_mod
from planner.context import PlanContext
from planner.errors import PlanError
from planner.plan import Plan, Shape, TimeEstimate
from planner.request import PlanRequest

DEADLINE_ASSUMPTION = (
    "deadline: the plan runs on the GPUs given; its wall-clock is its training hardware FLOPs over GPUs × peak × "
    "MFU, so a budget that cannot be trained in time is scaled down to the largest that can (a smaller model)"
)
_SCALED_FIELDS = ("compute_flops", "pf_days", "hours")


def flops_per_token(ctx: PlanContext, params: float, shape: Shape) -> float:
    """Hardware FLOPs per training token of the plan's shape under the plan's convention (fits.accounting)."""
    return float(accounting.law_flops_per_token(params, shape.n_layer, shape.d_model, ctx.seq_len, ctx.vocab_size,
                                                ctx.convention, ctx.params_count))


def _what_it_takes(request: PlanRequest, plan: Plan) -> str:
    hw, deadline = request.hardware, request.deadline_hours
    assert hw is not None and deadline is not None and plan.time is not None
    hours = plan.time.wall_clock_hours
    gpus = math.ceil(hw.count * hours / deadline * (1 - 1e-9))
    more = f"{gpus} GPUs"
    if gpus > plan.batch_sequences:
        more += (f" (more than the batch's {plan.batch_sequences} sequences, so the batch would have to grow too, "
                 "at extra compute by Kaplan eq. 5.1)")
    return f"{more}, or {hours:.3g} h on the {hw.count} given"


def meet_deadline(request: PlanRequest, plan: Plan, solve: Callable[[PlanRequest], Plan]) -> Plan:
    """``plan`` when it finishes within the request's deadline on the GPUs given; else the best plan that does
    (a smaller budget, hence a smaller model), or a PlanError naming deadline_hours when none does."""
    hw, deadline = request.hardware, request.deadline_hours
    assert hw is not None and deadline is not None and plan.time is not None
    if plan.time.wall_clock_hours <= deadline * (1 + 1e-9):
        return plan
    on = f"{hw.count} × {plan.time.gpu} at MFU {hw.mfu:g}"
    full = f"takes {plan.time.wall_clock_hours:.3g} h on {on}, past the {deadline:g} h deadline"
    field = next(f for f in (*_SCALED_FIELDS, "target_loss") if getattr(request, f) is not None)
    if field == "target_loss":
        try:
            best = solve(msgspec.structs.replace(request, target_loss=None, hours=deadline, deadline_hours=None))
            reach = f", or a target loss of at least {best.predicted_loss.mean:.4g}, the best these GPUs reach in time"
        except PlanError:
            reach = ""
        raise PlanError(
            "deadline_hours",
            f"reaching loss {request.target_loss:g} {full}; meeting the deadline needs {_what_it_takes(request, plan)}"
            + reach,
        )
    scaled, value = plan, float(getattr(request, field))
    for _ in range(8):
        # Hours scale with the budget nearly in proportion; the margin absorbs the shape's and steps' rounding.
        value *= deadline / scaled.time.wall_clock_hours * (1 - 1e-4)
        try:
            scaled = solve(msgspec.structs.replace(request, **{field: value}, deadline_hours=None))
        except PlanError as exc:
            raise PlanError(
                "deadline_hours",
                f"the plan {full}, and nothing trains in {deadline:g} h on them ({exc.message}); "
                f"meeting the deadline at this budget needs {_what_it_takes(request, plan)}",
            ) from None
        if scaled.time.wall_clock_hours <= deadline * (1 + 1e-9):
            break
    else:
        raise PlanError("deadline_hours", f"the plan {full}, and no smaller budget settled within it")
    note = (
        f"the full budget {full}: this plan is the best that trains in time on them, {scaled.compute_flops:.3g} "
        f"FLOPs ({100 * scaled.compute_flops / plan.compute_flops:.0f}% of the full plan's), N {scaled.params:.3g} "
        f"instead of {plan.params:.3g}, loss {scaled.predicted_loss.mean:.4f} instead of "
        f"{plan.predicted_loss.mean:.4f}; the full budget by the deadline needs {_what_it_takes(request, plan)}"
    )
    return msgspec.structs.replace(
        scaled,
        request=request,
        budget_flops=plan.budget_flops,
        binding=[*scaled.binding, "deadline_hours"],
        warnings=[*scaled.warnings, note],
        assumptions=[*scaled.assumptions, DEADLINE_ASSUMPTION],
    )


def time_estimate(
    ctx: PlanContext, params: float, shape: Shape, batch: int, steps: int, gpus: int | None
) -> TimeEstimate:
    """GPU-hours, wall-clock and cost of ``steps`` steps of ``batch`` tokens on ``gpus`` GPUs."""
    hw = ctx.request.hardware
    assert hw is not None and ctx.peak is not None and gpus is not None
    per_token = flops_per_token(ctx, params, shape)
    flops = per_token * batch * steps
    gpu_hours = flops / (ctx.peak * hw.mfu) / 3600.0
    return TimeEstimate(
        gpu=hw_mod.gpu_name(hw.gpu) if hw.peak_tflops is None else hw.gpu,
        gpus=gpus,
        mfu=hw.mfu,
        peak_tflops=ctx.peak / 1e12,
        flops_per_token=per_token,
        flops_convention=ctx.convention,
        hardware_flops=flops,
        gpu_hours=gpu_hours,
        wall_clock_hours=gpu_hours / gpus,
        cost=None if hw.price_per_gpu_hour is None else gpu_hours * hw.price_per_gpu_hour,
    )
