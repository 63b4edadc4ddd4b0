"""solve_plan: one PlanRequest and one Fit -> a Plan. Pure computation: no database, no I/O.

Steps: validate the request; build the fit's loss model; turn the budget (or target loss) into FLOPs; find
the best (N, D) under the constraints (planner.constraints); choose batch, learning rate and schedule from
the selected rule (planner.training), re-solving Kaplan fits when the batch leaves B_crit; pick a shape;
apply a deadline by trading steps for batch (Kaplan eq. 5.1); add time, alternatives, warnings and the
assumptions behind each number; refuse to return anything non-finite.
"""

from __future__ import annotations

import math

import numpy as np

from fits import accounting
from fits.fit import Fit
from fits.laws.base import LossModel
from fits.laws.numerics import increasing_root
from fits.units import PF_DAY
from planner import hardware as hw_mod
from planner import training
from planner.compare import is_best
from planner.constraints import Allocation, Problem, least_budget_for_loss, solve_budget
from planner.context import PlanContext, compute_range, fit_ref, law_for, model_for
from planner.deadline import flops_per_token, meet_deadline, time_estimate
from planner.errors import Contradiction, NotStored, PlanError
from planner.layout import plan_layout
from planner.moe import moe_assumptions, moe_dims, moe_model, moe_part, moe_shape
from planner.notes import add_assumptions, add_warnings
from planner.plan import Alternative, LossEstimate, Plan, TimeEstimate, non_finite_fields
from planner.request import MIN_FLOPS, PlanRequest, moe_spec, validate
from planner.shape import WIDTH_STEP as SMALLEST_WIDTH
from planner.shape import shape_for_params
from planner.uncertainty import allocation_interval, chinchilla_band, estimate, residual_band

DEFAULT_FIT = "besiroglu2024"
DEFAULT_FIT_REASON = (
    "no fit given: besiroglu2024, Epoch AI's refit of Hoffmann et al.'s own data, is the default: it repairs "
    "the approach-3 fit (about 20 tokens per parameter at Chinchilla's budget, matching Hoffmann's approaches "
    "1 and 2, where the printed set gives 59–93), and its bootstrap intervals give the loss band"
)
ALTERNATIVE_FACTORS = (0.5, 0.7, 1.4, 2.0)


def _budget(request: PlanRequest, peak: float | None) -> tuple[float, bool]:
    """(budget FLOPs, whether they are hardware FLOPs) for a request with a budget."""
    if request.compute_flops is not None:
        return float(request.compute_flops), False
    if request.pf_days is not None:
        return float(request.pf_days) * PF_DAY, False
    assert request.hours is not None and request.hardware is not None and peak is not None
    return peak * request.hardware.mfu * request.hardware.count * request.hours * 3600.0, True


def _problem(ctx: PlanContext, model, budget: float, hardware_budget: bool) -> Problem:
    r = ctx.request
    return Problem(
        model=model,
        budget=budget,
        hardware_budget=hardware_budget,
        seq_len=ctx.seq_len,
        vocab_size=ctx.vocab_size,
        inference_tokens=float(r.inference_tokens or 0.0),
        unique=None if r.unique_tokens is None else float(r.unique_tokens),
        data_cap=None if r.max_epochs is None else float(r.unique_tokens) * float(r.max_epochs),
        max_params=None if r.max_params is None else float(r.max_params),
        convention=ctx.convention,
        params_count=ctx.params_count,
    )


def solve_plan(request: PlanRequest, fit: Fit) -> Plan:
    """Solve ``request`` against ``fit`` without touching a database; the Plan has no id yet.

    Raises PlanError (naming the request field) for bad or contradictory input and for inputs so extreme
    that the law cannot be evaluated; never returns a non-finite number. An unsaved fit is referenced as id 0.
    """
    validate(request)
    return solve_validated(request, fit)


def solve_validated(request: PlanRequest, fit: Fit) -> Plan:
    """``solve_plan`` for a request ``validate`` has already passed (make_plan validates once).

    What the solve refuses, it refuses for a request valid field by field: the fields contradict each other
    or the fit (its law, its range), so every refusal here is a Contradiction.
    """
    try:
        return _solve_checked(request, fit)
    except (NotStored, Contradiction):
        raise
    except PlanError as exc:
        raise Contradiction(exc.field or _budget_field(request), exc.message) from None


def _solve_checked(request: PlanRequest, fit: Fit) -> Plan:
    if is_best(request):  # every catalogue accelerator planned, the best returned with the comparison
        from planner.compare import best_plan

        return best_plan(request, fit)
    try:
        with np.errstate(all="ignore"):
            plan = _solve(request, fit)
            if request.deadline_hours is not None:
                plan = meet_deadline(request, plan, lambda r: _solve(r, fit))
            return plan
    except PlanError:
        raise
    except (ArithmeticError, ValueError) as exc:
        raise PlanError(
            _budget_field(request), f"these inputs lie outside where the fit can be evaluated ({exc})"
        ) from exc


def _budget_field(request: PlanRequest) -> str:
    return next((f for f in ("compute_flops", "pf_days", "budget_usd", "hours", "target_loss") if getattr(request, f)),
                "request")


def _solve(request: PlanRequest, fit: Fit) -> Plan:
    law = law_for(fit)
    model = moe_model(model_for(fit), moe_spec(request))
    moe = model.moe  # the request's layout, or the one a MoE fit was made at when the request names none
    adjusted = model.batch_adjusted
    asked = request  # the plan echoes the request as asked; time states the MFU and price used
    if request.hardware is not None:  # the device's default MFU and price; a money budget becomes hours
        request = hw_mod.with_defaults(request)
    hw = request.hardware
    ctx = PlanContext(
        request=request,
        fit=fit,
        law=law,
        seq_len=request.seq_len or law.conventions.seq_len,
        vocab_size=accounting.padded_vocab(request.vocab_size or law.conventions.vocab_size),
        rule=request.hyperparams or law.conventions.hyperparams,
        peak=hw_mod.peak_flops(hw) if hw is not None else None,
        params_count=accounting.params_count_of(law.conventions.params),
        convention=request.flops_convention or accounting.check_convention(law.conventions.flops),
    )

    uniform = math.log(ctx.vocab_size)
    if request.target_loss is not None:
        if request.target_loss >= uniform:
            raise PlanError(
                "target_loss",
                f"{request.target_loss:g} nats is no better than a uniform guess over the {ctx.vocab_size} "
                f"tokens of the vocabulary (ln {ctx.vocab_size} = {uniform:.4g}); aim below it",
            )
        probe = _problem(ctx, model, 1.0, False)
        budget = least_budget_for_loss(probe, float(request.target_loss))
        hardware_budget = False
    else:
        budget, hardware_budget = _budget(request, ctx.peak)
        one_step = _one_step_flops(ctx)
        if budget < max(MIN_FLOPS, one_step):
            raise PlanError(
                _budget_field(request),
                f"{budget:.3g} FLOPs is less than one step of the smallest shape (1 layer, d_model 64, one "
                f"{ctx.seq_len}-token sequence: {one_step:.3g} FLOPs); give a larger budget",
            )
    problem = _problem(ctx, model, budget, hardware_budget)
    alloc = solve_budget(problem)

    # Batch: the rule's value, held inside the bounds. Batch-adjusted families (Kaplan's) price a batch away
    # from B_crit through C_min = C/(1 + B/B_crit) (eq. 5.5), so they re-solve until the batch ratio settles.
    for _ in range(8):
        # The shape has the law's N as the law counts it (all parameters for the Chinchilla sets); the batch and
        # learning-rate rules were fitted on non-embedding N and get that.
        if moe is None:
            shape = shape_for_params(alloc.params, counts=ctx.params_count, vocab_size=ctx.vocab_size,
                                     seq_len=ctx.seq_len, kv_heads=request.kv_heads)
            flop_params = alloc.params
        else:  # the law's N is the total; FLOPs follow the active parameters of the realised shape
            shape, counts = moe_shape(moe, alloc.params, vocab_size=ctx.vocab_size, seq_len=ctx.seq_len,
                                      kv_heads=request.kv_heads)
            flop_params = float(counts.active_non_embedding)
        non_embedding = _non_embedding(ctx, alloc.params, shape)
        b_crit, c_eff = model.critical_batch(alloc.params, alloc.train_compute, alloc.loss)
        hyper = training.rule_values(ctx.rule, non_embedding, alloc.tokens, shape, ctx.seq_len, b_crit)
        seqs = training.batch_sequences(
            hyper.batch_tokens, ctx.seq_len, request.min_batch_tokens, request.max_batch_tokens,
            multiple=training.batch_multiple(hw),
        )
        batch = seqs * ctx.seq_len
        if request.min_batch_tokens is not None and batch > alloc.tokens:
            raise PlanError(
                "min_batch_tokens",
                f"a batch of {batch:.3g} tokens is more than the {alloc.tokens:.3g} tokens the whole run trains on",
            )
        if not adjusted:
            break
        ratio = batch / b_crit
        if abs(ratio / model.q - 1.0) < 1e-3:
            break
        model = model.with_batch_ratio(ratio)
        if request.target_loss is not None:  # the batch changes what a budget buys: search again
            budget = least_budget_for_loss(_problem(ctx, model, 1.0, False), float(request.target_loss))
        problem = _problem(ctx, model, budget, hardware_budget)
        alloc = solve_budget(problem)
    if request.target_loss is not None and adjusted and alloc.loss > request.target_loss * (1 + 1e-9):
        # The batch ratio settled to within 0.1%: meet the target exactly at the settled ratio.
        budget = least_budget_for_loss(_problem(ctx, model, 1.0, False), float(request.target_loss))
        problem = _problem(ctx, model, budget, hardware_budget)
        alloc = solve_budget(problem)
    binding = list(alloc.binding)
    if adjusted and abs(model.q - 1.0) > 1e-3:
        for name in ("min_batch_tokens", "max_batch_tokens"):
            bound = getattr(request, name)
            if bound is not None and abs(batch - bound) < ctx.seq_len:
                binding.append(name)

    tokens, compute = alloc.tokens, alloc.train_compute
    loss = alloc.loss
    if hardware_budget:
        # Spend the hours exactly on the real shape's per-token FLOPs (the search used a smooth width).
        per_token = flops_per_token(ctx, flop_params, shape)
        tokens = (budget - problem.inference_tokens * per_token / 3.0) / per_token
        if problem.data_cap is not None:
            tokens = min(tokens, problem.data_cap)
        compute = float(model.compute_for_tokens(alloc.params, tokens))
        loss = float(model.loss(alloc.params, compute, problem.unique))

    if tokens < batch * (1.0 - 1e-9):
        # Less than one optimizer step: no schedule can be planned, and rounding up to one step would spend
        # more than the data or the budget allows.
        data_bound = problem.data_cap is not None and tokens >= problem.data_cap * (1.0 - 1e-9)
        raise PlanError(
            "unique_tokens" if data_bound else _budget_field(request),
            f"the plan would train on {tokens:.3g} tokens, less than one batch of {batch} tokens: "
            + ("allow more data (unique_tokens, max_epochs) or a smaller batch (max_batch_tokens)"
               if data_bound else "give a larger budget or a smaller batch (max_batch_tokens)"),
        )
    if loss >= uniform:
        data_bound = problem.data_cap is not None and tokens >= problem.data_cap * (1.0 - 1e-9)
        raise PlanError("unique_tokens" if data_bound else _budget_field(request),
                        _no_better_than_uniform(ctx, model, loss, uniform))
    steps = model.steps(alloc.params, tokens, batch, b_crit, c_eff, floor_steps=hardware_budget)
    ctx.warnings += alloc.notes + hyper.warnings + shape.warnings
    ctx.rule_outside = hyper.outside

    # A deadline is met afterwards on the whole plan (planner.deadline.meet_deadline): the GPUs stay as given.
    gpus = hw.count if hw is not None else None
    seqs = batch // ctx.seq_len

    band = _loss_band(ctx, model, alloc.params, tokens, loss, steps, batch, b_crit)
    time = time_estimate(ctx, flop_params, shape, batch, steps, gpus) if hw is not None else None
    placement = None
    if time is not None:
        time.conventions = hw_mod.conventions(flop_params, shape.n_layer, shape.d_model, ctx.seq_len,
                                              ctx.vocab_size, ctx.convention, ctx.params_count, time.mfu)
        time.price_per_gpu_hour = hw.price_per_gpu_hour
        # memory holds every parameter (a MoE: all experts, shape.params_total), FLOPs follow the active ones
        dims = None if moe is None else moe_dims(shape, counts, seq_len=ctx.seq_len, vocab_size=ctx.vocab_size)
        placement = plan_layout(ctx, flop_params, shape, seqs, steps, time.gpus, dims=dims)
    alternatives = _alternatives(ctx, model, problem, alloc, compute, loss, time)
    epochs = tokens / request.unique_tokens if request.unique_tokens else 1.0
    c_min = compute / (1.0 + batch / b_crit)
    inference_flops = 2.0 * flop_params * request.inference_tokens if request.inference_tokens else None
    add_warnings(ctx, model, alloc.params, tokens, compute, c_min, epochs, shape, loss)
    if not adjusted and batch > b_crit:
        ctx.warnings.append(
            f"batch {batch:.3g} tokens is above the critical batch {b_crit:.3g} at this loss (Kaplan eq. 1.4): by "
            f"eq. 5.1 the same loss then takes {(1 + batch / b_crit) / 2:.2g}× the tokens of training at B_crit; "
            "max_batch_tokens caps it"
        )
    add_assumptions(ctx, model, hardware_budget)
    moe_record = None
    if moe is not None:
        ctx.assumptions += moe_assumptions(moe, counts, request)
        ctx.assumptions.append(training.MOE_RULE_TEXT.get(ctx.rule, training.MOE_NO_RULE))
        moe_record = moe_part(counts, tokens, flops_per_token(ctx, flop_params, shape),
                              moe_dims(shape, counts, seq_len=ctx.seq_len, vocab_size=ctx.vocab_size))

    opt_range = compute_range(fit) or ctx.law.reference_range
    opt_interval = allocation_interval(fit, fit.coefficients, compute, opt_range) if moe is None else None
    plan = Plan(
        id=None,
        created=None,
        fit=fit_ref(fit),
        request=asked,
        budget_flops=budget,
        compute_flops=compute,
        params=alloc.params,
        params_total=float(shape.params_total),
        params_non_embedding=float(non_embedding),
        params_counted=ctx.params_count,
        flops_convention=ctx.convention,
        tokens=tokens,
        tokens_per_param=tokens / alloc.params,
        epochs=epochs,
        batch_tokens=batch,
        batch_sequences=seqs,
        seq_len=ctx.seq_len,
        vocab_size=ctx.vocab_size,
        steps=steps,
        warmup_steps=training.warmup_steps(ctx.rule, steps),
        learning_rate=hyper.learning_rate,
        lr_schedule="cosine",
        final_lr_fraction=training.FINAL_LR_FRACTION[ctx.rule],
        shape=shape,
        predicted_loss=band,
        c_min_flops=c_min,
        critical_batch_tokens=b_crit,
        early_stop_step=model.early_stop_steps(alloc.params, request.unique_tokens or tokens, batch, loss),
        extra_compute=0.0,
        inference_flops=inference_flops,
        time=time,
        alternatives=alternatives,
        binding=binding,
        warnings=ctx.warnings,
        assumptions=ctx.assumptions,
        layout=placement,
        n_opt_interval=opt_interval[0] if opt_interval else None,
        d_opt_interval=opt_interval[1] if opt_interval else None,
        moe=moe_record,
    )
    bad = non_finite_fields(plan)
    if bad:
        raise PlanError(
            _budget_field(request),
            f"the plan comes out non-finite ({', '.join(bad)}); these inputs lie outside "
            "where the fit can be evaluated",
        )
    return plan


def _one_step_flops(ctx: PlanContext) -> float:
    """Law FLOPs of one step of one sequence on the smallest shape, its N counted as the law counts it."""
    n = accounting.count_params(ctx.params_count, 1, SMALLEST_WIDTH, ctx.vocab_size, ctx.seq_len)
    return 6.0 * float(n) * ctx.seq_len


def _no_better_than_uniform(ctx: PlanContext, model: LossModel, loss: float, uniform: float) -> str:
    """Why a plan predicting ``loss`` ≥ ln(vocab) is refused, with the least budget the law plans sensibly."""
    text = (
        f"the fit predicts {loss:.4g} nats per token at this budget, no better than a uniform guess over the "
        f"{ctx.vocab_size}-token vocabulary (ln {ctx.vocab_size} = {uniform:.4g}): the law has no sensible plan here"
    )
    try:
        least = least_budget_for_loss(_problem(ctx, model, 1.0, False), uniform * (1 - 1e-6))
    except PlanError:
        return text
    return text + f"; give a budget of at least {least:.3g} FLOPs"


def _non_embedding(ctx: PlanContext, params: float, shape) -> float:
    """Non-embedding N: the law's N when that is what it counts, else the shape's exact count."""
    if ctx.params_count == "non_embedding":
        return params
    return float(shape.params_non_embedding)


def _loss_band(
    ctx: PlanContext, model: LossModel, params: float, tokens: float, loss: float, steps: int, batch: int,
    b_crit: float,
) -> LossEstimate:
    """The family's own band (Kaplan's Table 5 vs Table 3), else coefficient draws where the fit has
    intervals for them (Chinchilla), else the fit's residual band."""
    fit = ctx.fit
    own = model.loss_band(params, steps, batch, b_crit, loss)
    if own is not None:
        return estimate(loss, *own)
    point = model.effective_point(params, tokens, ctx.request.unique_tokens)
    if point is not None:
        rng = compute_range(fit) or ctx.law.reference_range
        band = chinchilla_band(fit, fit.coefficients, rng) if rng is not None else None
        if band is not None:
            low, high, method = band(*point)
            return estimate(loss, low, high, method)
    return residual_band(fit, loss)


def _compute_to_reach(model, sizes: np.ndarray, loss: float, unique: float, plain: np.ndarray) -> np.ndarray:
    """Training FLOPs each size needs to reach ``loss`` on ``unique`` tokens (inf when repetition never gets
    there). Repetition only hurts, so the fresh-data answer ``plain`` brackets each root from below."""
    ok = np.isfinite(plain)
    if not ok.any():
        return plain
    # Only the sizes that reach the loss on fresh data are searched: the others have no bracket, and a law
    # evaluated at a made-up bracket may leave its domain.
    sub = sizes[ok]
    lo = np.log(plain[ok])
    hi = lo + 30.0

    def shortfall(x: np.ndarray) -> np.ndarray:  # rises with compute
        return loss - np.asarray(model.loss(sub, np.exp(x), unique), dtype=float)

    out = np.full(sizes.shape, np.inf)
    reachable = shortfall(hi) >= 0
    if reachable.any():
        roots = np.exp(increasing_root(shortfall, lo, hi, xtol=1e-10))
        out[np.flatnonzero(ok)[reachable]] = roots[reachable]
    return out


def _alternatives(
    ctx: PlanContext,
    model,
    problem: Problem,
    alloc: Allocation,
    compute: float,
    loss: float,
    time: TimeEstimate | None,
) -> list[Alternative]:
    """0.5×, 0.7×, 1.4×, 2× the planned size under the plan's constraints (max_params drops larger sizes, the
    data cap holds for each): loss at the same budget, and the compute (vs ``compute``, the
    plan's) and hours (on the GPUs given) each needs to reach the plan's loss."""
    hours_per_flop = None
    if time is not None and ctx.request.hardware is not None:
        hours_per_flop = time.gpu_hours / compute / ctx.request.hardware.count
    factors = np.array(ALTERNATIVE_FACTORS)
    if problem.max_params is not None:
        factors = factors[alloc.params * factors <= problem.max_params * (1 + 1e-9)]  # sizes the cap allows
    sizes = alloc.params * factors
    losses = np.asarray(problem.loss_of(sizes), dtype=float)
    train = np.asarray(problem.train_compute(sizes), dtype=float)
    tokens = np.asarray(model.tokens(sizes, np.maximum(train, 0.0)), dtype=float)
    iso = np.asarray(model.compute_for_loss(sizes, loss), dtype=float)
    if problem.unique is not None:
        iso = _compute_to_reach(model, sizes, loss, problem.unique, iso)
    if problem.data_cap is not None:
        # The data cap holds for every size: a smaller model trains on at most the cap (spending less), and a
        # size that needs more tokens than the cap to reach the plan's loss never gets there.
        capped = tokens > problem.data_cap * (1 + 1e-9)
        tokens = np.where(capped, problem.data_cap, tokens)
        train = np.where(capped, np.asarray(model.compute_for_tokens(sizes, tokens), dtype=float), train)
        safe = np.where(train > 0, train, 1.0)
        losses = np.where(capped, np.asarray(model.loss(sizes, safe, problem.unique), dtype=float), losses)
        finite = np.isfinite(iso)
        need = np.asarray(model.tokens(sizes, np.where(finite, iso, 1.0)), dtype=float)
        iso = np.where(finite & (need <= problem.data_cap * (1 + 1e-9)), iso, np.inf)
    out = []
    for i, factor in enumerate(factors.tolist()):
        if not (math.isfinite(losses[i]) and train[i] > 0):
            continue  # this size cannot train at all under the budget (serving alone would spend it)
        reachable = bool(math.isfinite(iso[i]))
        out.append(
            Alternative(
                params_factor=factor,
                params=float(sizes[i]),
                tokens=float(tokens[i]),
                predicted_loss=float(losses[i]),
                compute_for_plan_loss=float(iso[i]) if reachable else None,
                extra_compute=float(iso[i] / compute - 1.0) if reachable else None,
                wall_clock_hours=float(iso[i] * hours_per_flop) if (reachable and hours_per_flop) else None,
            )
        )
    return out
