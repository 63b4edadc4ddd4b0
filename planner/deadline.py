"""Hardware time: how long a plan takes, and meeting a deadline by trading steps for batch (Kaplan eq. 5.1).

Deadline model: the GPUs given process the compute-efficient batch. A larger batch runs on proportionally
more GPUs at the same per-GPU batch (data-parallel weak scaling), so the time per step stays put and
wall-clock follows the step count. At the same loss, eq. 5.1 gives the steps and tokens a larger batch needs:
S = S_min·(1 + B_crit/B), E = E_min·(1 + B/B_crit); the extra tokens are the extra compute reported.
"""

from __future__ import annotations

import math

from fits import accounting
from planner import hardware as hw_mod
from planner.context import PlanContext
from planner.errors import PlanError
from planner.plan import Shape, TimeEstimate


def flops_per_token(ctx: PlanContext, params: float, shape: Shape) -> float:
    """Hardware FLOPs per training token of the plan's shape under the plan's convention (fits.accounting)."""
    return float(accounting.law_flops_per_token(params, shape.n_layer, shape.d_model, ctx.seq_len, ctx.vocab_size,
                                                ctx.convention, ctx.params_count))


def apply_deadline(
    ctx: PlanContext, params: float, shape: Shape, batch: int, steps: int, b_crit: float
) -> tuple[float, int, int, int] | None:
    """(compute factor, batch, steps, GPUs) meeting the deadline at the same loss, or None if it already fits."""
    r, hw = ctx.request, ctx.request.hardware
    assert hw is not None and ctx.peak is not None and r.deadline_hours is not None
    per_token = flops_per_token(ctx, params, shape)
    step_seconds = batch * per_token / (ctx.peak * hw.mfu * hw.count)
    if steps * step_seconds <= r.deadline_hours * 3600.0:
        return None
    s_min = steps / (1.0 + b_crit / batch)
    steps_allowed = math.floor(r.deadline_hours * 3600.0 / step_seconds)
    if steps_allowed <= s_min * (1.0 + 1e-6):
        raise PlanError(
            "deadline_hours",
            f"{r.deadline_hours:g} h is below the serial minimum of {s_min * step_seconds / 3600:.3g} h: "
            f"{s_min:.3g} steps (eq. 5.1 at an unbounded batch) of {step_seconds:.3g} s, the time {hw.count} GPU(s) "
            "take per step at the compute-efficient batch; give more GPUs (hardware.count) or more time",
        )
    # Eq. 5.1 at the same loss: S = S_min·(1 + B_crit/B), E = E_min·(1 + B/B_crit).
    wanted = b_crit / (steps_allowed / s_min - 1.0)
    seqs = math.ceil(wanted / ctx.seq_len)
    new_batch = seqs * ctx.seq_len
    if r.max_batch_tokens is not None and new_batch > r.max_batch_tokens:
        raise PlanError(
            "deadline_hours",
            f"meeting {r.deadline_hours:g} h needs a batch of {new_batch:.3g} tokens, above max_batch_tokens "
            f"{r.max_batch_tokens:.3g}; allow more time or a larger batch",
        )
    new_steps = max(1, math.ceil(s_min * (1.0 + b_crit / new_batch)))
    factor = (new_batch * new_steps) / (batch * steps)
    gpus = math.ceil(hw.count * new_batch / batch)
    ctx.warnings.append(
        f"the {r.deadline_hours:g} h deadline needs batch {new_batch:.3g} tokens ({new_batch / b_crit:.2g}× B_crit) "
        f"on {gpus} GPUs ({gpus / hw.count:.2g}× the {hw.count} given) for {new_steps} steps: "
        f"{100 * (factor - 1):.0f}% more compute for the same loss (Kaplan eq. 5.1)"
    )
    ctx.assumptions.append(
        "deadline: the GPUs given process the compute-efficient batch; a larger batch runs on proportionally more "
        "GPUs at the same per-GPU batch and time per step (data-parallel weak scaling), so wall-clock follows the "
        "step count; steps and tokens at the same loss follow Kaplan eq. 5.1 with B_crit(L)"
    )
    return factor, new_batch, new_steps, gpus


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
