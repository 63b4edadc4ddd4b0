"""The warnings and assumptions attached to a plan: when a number deserves doubt, and what it rests on."""

from __future__ import annotations

from fits import accounting
from fits.laws import kaplan2020 as k20
from fits.units import PF_DAY
from planner import training
from planner.chinchilla_plan import ChinchillaModel
from planner.context import PlanContext, compute_range
from planner.kaplan_plan import C_STAR_PFD, KaplanNDModel, KaplanNSModel, KaplanTable6Model
from planner.plan import Shape

EPOCH_WARNING = 4.0
OVERFIT_WARNING = 0.02
EXTRAPOLATION_FACTOR = 10.0


def add_warnings(
    ctx: PlanContext,
    model,
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
    if ctx.kaplan and c_min / PF_DAY >= C_STAR_PFD:
        w.append(
            f"C_min = {c_min / PF_DAY:.3g} PF-days is past Kaplan's C* ≈ 1e4 PF-days (eq. 6.8), where L(C_min) "
            "meets the one-epoch data floor and the laws must break down"
        )
    unique = ctx.request.unique_tokens
    if ctx.kaplan and unique is not None:
        try:
            delta = float(k20.overfitting(params, unique, **k20.nd_coefficients(ctx.fit.coefficients)))
        except ValueError:
            delta = None
        if delta is not None and delta > OVERFIT_WARNING:
            w.append(
                f"overfitting risk: δL = {delta:.3f} > 0.02 on {unique:.3g} unique tokens (Kaplan eq. 4.3); "
                f"eq. 4.4 wants ≳ {float(k20.d_required(params)):.3g}"
            )
    if unique is not None and epochs > 1.0:
        if isinstance(model, ChinchillaModel):
            fresh = float(model.loss_nd(params, tokens))
            w.append(
                f"{epochs:.2g} epochs over {unique:.3g} unique tokens: the repeated-data law (Muennighoff et al. "
                f"2023) prices the repetition at +{loss - fresh:.3g} nats over fresh data"
            )
        else:
            w.append(
                f"{epochs:.2g} epochs over {unique:.3g} unique tokens, priced as Muennighoff et al.'s effective data"
            )
    if epochs > EPOCH_WARNING:
        w.append(f"{epochs:.3g} epochs: beyond ~4 repeated tokens lose value fast (Muennighoff et al. 2023)")
    if ctx.seq_len >= 12 * shape.d_model:
        w.append(
            f"seq_len {ctx.seq_len} ≳ 12·d_model ({12 * shape.d_model}): C ≈ 6·N·D leaves out attention FLOPs "
            "that now matter (Kaplan App. C)"
        )


def add_assumptions(ctx: PlanContext, model, hardware_budget: bool) -> None:
    fit, a = ctx.fit, ctx.assumptions
    a.insert(
        0,
        f"fit {fit.name or fit.id} (id {fit.id}, law {fit.law}, scope {fit.scope}, version {fit.version}): "
        + ", ".join(f"{k} {v:g}" for k, v in sorted(fit.coefficients.items())),
    )
    if isinstance(model, KaplanTable6Model):
        a.append(
            "Kaplan 2020 Table 6 point estimates at C_min = C/(1 + B/B_crit) (C/2 at B = B_crit), loss from "
            "eq. 1.3; sizes off the optimum priced by eq. B.16, steps by B.17; Table 6's rounded prefactors "
            f"make 6·N·D = {model.tokens_ratio:.2f}·C and steps·batch ≈ 1.08·D"
        )
    elif isinstance(model, KaplanNSModel):
        a.append("App. B frontier derived from L(N, S_min) and B_crit(L) (eqs. B.3–B.10), B.15 off the optimum")
    elif isinstance(model, KaplanNDModel):
        a.append("L(N, D) of eq. 1.5 minimised numerically along C = 6·N·D at B = B_crit(L)")
    else:
        a.append(
            "Chinchilla form L = E + A/N^α + B/D^β with C = 6·N·D; closed-form optimum "
            "N = G·(C/6)^(β/(α+β)), numerical 1-D search in N when constraints bind"
        )
        if fit.provenance.source == "published":
            a.append(
                "published Chinchilla sets count all parameters in N: the shape is sized so that its total "
                "parameters (embeddings included) are N, and params_non_embedding is what the batch and "
                "learning-rate rules get"
            )
    a.append(f"batch and learning rate: {training.RULE_TEXT[ctx.rule]}")
    if not ctx.kaplan:
        a.append(
            "critical batch from Kaplan eq. 1.4 at the predicted loss (B_* = 2e8, α_B = 0.21): a WebText2 "
            "value used for a different data set"
        )
    sized = (
        f"total parameters (12·n_layer·d_model², LayerNorm gains and (vocab_size {ctx.vocab_size} + seq_len "
        f"{ctx.seq_len})·d_model embedding parameters, tied head) within 5% of N"
        if ctx.params_count == "total"
        else f"12·n_layer·d_model² within 5% of N; params_total adds (vocab_size {ctx.vocab_size} + seq_len "
        f"{ctx.seq_len})·d_model embedding parameters"
    )
    a.append(f"shape: d_model a multiple of 64, d_ff = 4·d_model, aspect ratio aimed at 64 within 20–200, {sized}")
    fitted = accounting.fitted_convention(fit.law)
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
