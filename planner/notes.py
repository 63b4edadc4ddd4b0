"""The warnings and assumptions attached to a plan: when a number deserves doubt, and what it rests on."""

from __future__ import annotations

from fits import accounting
from fits.laws.base import LossModel
from planner import training
from planner.context import PlanContext, compute_range, data_ranges
from planner.plan import Shape


def shape_rules() -> str:
    from planner.shape import RULES  # the shape module imports numpy; the notes are needed only when solving

    return RULES

EPOCH_WARNING = 4.0
EXTRAPOLATION_FACTOR = 10.0
RANGE_SLACK = 1.1
"""N, D or tokens per parameter within this factor of the fitted data's range count as inside it (a plan
rounds its shape and batch; a 5% step past the largest run is not an extrapolation worth a warning)."""
RANGE_NAMES = {"N": "N (parameters)", "D": "D (tokens)", "tokens_per_param": "tokens per parameter"}


def range_warnings(ranges: dict[str, tuple[float, float]], **values: float) -> list[str]:
    """One warning per quantity (N, D, tokens_per_param) that lies outside the range the fit's data covered."""
    out = []
    for key, value in values.items():
        if key not in ranges:
            continue
        lo, hi = ranges[key]
        if value > hi * RANGE_SLACK:
            out.append(f"{RANGE_NAMES[key]} {value:.3g} is {value / hi:.1f}× the largest the fit's data reach "
                       f"({hi:.3g}); extrapolating")
        elif value < lo / RANGE_SLACK:
            out.append(f"{RANGE_NAMES[key]} {value:.3g} is {lo / value:.1f}× below the smallest in the fit's "
                       f"data ({lo:.3g}); extrapolating")
    return out


def add_warnings(
    ctx: PlanContext,
    model: LossModel,
    params: float,
    tokens: float,
    compute: float,
    c_min: float,
    epochs: float,
    shape: Shape,
    loss: float,
) -> None:
    w = ctx.warnings
    rng = compute_range(ctx.fit)
    if rng is not None:
        lo, hi = rng
        if compute > EXTRAPOLATION_FACTOR * hi:
            w.append(
                f"compute {compute:.3g} FLOPs is {compute / hi:.0f}× past the largest the fit was made on "
                f"({hi:.3g}); extrapolating"
            )
        elif compute < lo / EXTRAPOLATION_FACTOR:
            w.append(
                f"compute {compute:.3g} FLOPs is {lo / compute:.0f}× below the smallest the fit was made on "
                f"({lo:.3g}); extrapolating"
            )
    w += range_warnings(data_ranges(ctx.fit), N=params, D=tokens, tokens_per_param=tokens / params)
    unique = ctx.request.unique_tokens
    w += model.law_warnings(params, c_min, unique)
    if unique is not None and epochs > 1.0:
        w.append(model.repetition_warning(params, tokens, unique, epochs, loss))
    if epochs > EPOCH_WARNING:
        w.append(f"{epochs:.3g} epochs: beyond ~4 repeated tokens lose value fast (Muennighoff et al. 2023)")
    if ctx.seq_len >= 12 * shape.d_model:
        w.append(
            f"seq_len {ctx.seq_len} ≳ 12·d_model ({12 * shape.d_model}): C ≈ 6·N·D leaves out attention FLOPs "
            "that now matter (Kaplan App. C)"
        )


def add_assumptions(ctx: PlanContext, model: LossModel, hardware_budget: bool) -> None:
    fit, a = ctx.fit, ctx.assumptions
    a.insert(
        0,
        f"fit {fit.name or fit.id} (id {fit.id}, law {fit.law}, scope {fit.scope}, version {fit.version}): "
        + ", ".join(f"{k} {v:g}" for k, v in sorted(fit.coefficients.items())),
    )
    a += model.assumptions(fit.provenance.source == "published")
    rule = f"batch and learning rate: {training.RULE_TEXT[ctx.rule]}"
    if ctx.rule_outside:
        rule += "; this plan extrapolates the rule: " + "; ".join(ctx.rule_outside)
    a.append(rule)
    if not model.batch_adjusted:
        a.append(
            "critical batch from Kaplan eq. 1.4 at the predicted loss (B_* = 2e8, α_B = 0.21): a WebText2 "
            "value used for a different data set"
        )
    sized = (
        f"total parameters (12·n_layer·d_model², LayerNorm gains and (vocab_size {ctx.vocab_size} + seq_len "
        f"{ctx.seq_len})·d_model embedding parameters, tied head) within 3% of N (5% at most, with a warning)"
        if ctx.params_count == "total"
        else f"12·n_layer·d_model² (its GQA form with kv_heads) within 3% of N (5% at most, with a warning); "
        f"params_total adds (vocab_size {ctx.vocab_size} + seq_len "
        f"{ctx.seq_len})·d_model embedding parameters"
    )
    a.append(f"{shape_rules()}; {sized}")
    fitted = ctx.law.conventions.flops
    a.append(
        f"FLOPs: compute_flops = 6·N·D with the law's N; hardware FLOPs, time and MFU per token: "
        f"{accounting.describe(ctx.convention, ctx.params_count)} (convention {ctx.convention!r}"
        + (", the one the law was fitted with)" if ctx.convention == fitted
           else f"; the law was fitted with {fitted!r})")
    )
    r = ctx.request
    if r.unique_tokens is not None:
        a.append("repeated data priced with Muennighoff et al. 2023: R*_D = 15.4, R*_N = 5.3")
    if r.inference_tokens:
        a.append(
            "with inference_tokens the budget covers training plus serving at 2·N FLOPs per token "
            "(Sardana & Frankle 2023); compute_flops is the training part"
        )
    if r.target_loss is not None:
        a.append("target loss: budget_flops is the least budget whose best plan reaches it")
    if hardware_budget:
        a.append(
            f"hours budget: FLOPs = GPUs × peak × MFU × hours, counted per token in the {ctx.convention!r} "
            "convention above"
        )
    if r.hardware is not None:
        a.append(f"time: MFU {r.hardware.mfu:g} of a dense bf16 peak of {ctx.peak / 1e12:g} TFLOP/s per GPU")
        a.append(
            f"batch split: data parallel over the {r.hardware.count} GPU(s) at a micro-batch of one sequence "
            "(gradient accumulation for the rest), so the batch is a multiple of that many sequences"
        )
