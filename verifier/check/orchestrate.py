"""``run_check``: check a stored plan's law and planning rules on a corpus with proxy runs, then refit.

1. Validate the input and measure the workers' training throughput (verifier.check.session.open_session).
2. When the corpus scope has no fit of the plan's family yet, train a calibration ladder and refit first.
3. Design the experiment that fills the time (verifier.check.ladder.check_ladder): IsoFLOP profiles at 3
   budgets, seed repeats of two ladder points, a held-out run at 10.5x the largest budget, a learning-rate and
   batch sweep around the plan's rules, and an early-stopping run on a corpus slice small enough to overfit.
4. Train the seed pairs, measure the run-to-run noise, then store every prediction with its 80% and 95%
   interval and the power of the allocation-exponent test before the rest trains.
5. Judge every item against its registered distribution (verifier.check.experiment): final losses and curves
   by z, IsoFLOP vertices and the plan's N carried to proxy scale, the fitted exponent against the plan's
   (inconclusive below 0.8 power), the held-out extrapolation, the early stop both ways, the rule sweep; the
   coverage of the intervals with a binomial test and the log score.
6. Refit the scope through fits.refit, report this scope's exponents beside the plan fit's, draw the picture,
   say what the check can and cannot say, and store the check.

``control="wrong-allocation"`` runs the same experiment for a plan 4x off its own optimum (a negative control).
The phases are sized from the measured throughput so that the whole check takes about the time given.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import msgspec
import numpy as np
import sqlite_utils

from fits.errors import Failed
from fits.fit import Fit, FitRef
from fits.fitting import isoflop
from fits.laws.registry import fittable_law_names, get_law
from fits.refit import untrusted
from fits.store import active_fit, get_fit, list_fits
from verifier import runs as runs_mod
from verifier.check import experiment, stats
from verifier.check import items as compare
from verifier.check import ladder as ladder_mod
from verifier.check import picture as plot
from verifier.check.calibrate import FIT_SECONDS, calibration_phase, plan_prediction, refit_scope
from verifier.check.ladder import CheckLadder, ProxySpec
from verifier.check.records import (
    Check,
    CheckError,
    CheckItem,
    CheckSummary,
    Exponents,
    Refit,
    create_check,
    get_check,
    overall_verdict,
    save_check,
)
from verifier.check.session import REFERENCE_FIT, Session, log_line, open_session
from verifier.corpus import cache_dir
from verifier.runs import FitPrediction, PlannedRun, Prediction, Run

CALIBRATION_SHARE = 0.45
"""Share of the training time a first check on a fresh scope gives its calibration ladder."""
EARLY_STOP_TARGET = 1 / 3
"""The overfitting slice is sized so that eq. 5.7 puts the stop at this fraction of the run."""
BOOTSTRAP_MIN_SECONDS = 240.0
"""Checks shorter than this report the scope's exponents without bootstrap intervals."""
BOOTSTRAP_RESAMPLES = 100
CONTROLS = {"wrong-allocation": 4.0}
"""Negative controls: the factor the plan's N is moved off its own optimum."""
PHASE_ONE_SHARE = 0.9
"""Share of the training time the ladder is sized for: the seed pairs train first, then the rest, and two
phases pack less tightly than one."""
REGISTERED_ROLES = ("proxy", "isoflop", "repeat", "heldout")
"""Runs whose final loss the scope's law predicts (the sweeps leave the rule on purpose)."""
BYTE_REFERENCE_RATIO = 1 / 3
"""Byte-level optimum over the reference (BPE) allocation, as the calibration ladder assumes."""
REFERENCE_LN_SIGMA = math.log(3.0) / 1.96
"""Spread of ln N_opt when the profiles are centred on the reference allocation: within 3x either way at 95%."""
DEFAULT_NOISE = 0.01
NOISE_FLOOR = 0.001
"""Least run-to-run noise assumed: two seed pairs can agree by chance."""


class CheckFailed(Failed):
    """The check started but could not produce its comparisons (no runs finished, no fit could be made)."""


def rule_for(plan_fit: Fit, hyperparams: str | None) -> str:
    return hyperparams or get_law(plan_fit.law).conventions.hyperparams


def run_check(db: sqlite_utils.Database, plan_id: int, *, budget_minutes: float = 10.0, device: str = "auto",
              corpus: str | os.PathLike | None = None, executor: str = "local", workers: int | None = None,
              memory_gib: float | None = None, artifacts: str | os.PathLike | None = None, seed: int = 0,
              cluster: str | None = None, report: Callable[[str], None] = log_line,
              control: str | None = None, precision: str = "auto") -> Check:
    """Check plan ``plan_id`` on ``corpus`` within about ``budget_minutes``; returns the stored check.

    ``control="wrong-allocation"`` runs the same experiment for a plan whose N is 4× off the plan's own
    optimum (a negative control: its allocation item must fail).

    Bad input raises a ValueError (or PlanNotFound) before anything is stored; a check that started but could
    not finish is stored with status "failed" and raises CheckFailed.
    """
    from planner.store import get_plan

    if control is not None and control not in CONTROLS:
        raise CheckError(f"must be one of {', '.join(CONTROLS)}, got {control!r}", field="control")
    plan = get_plan(db, plan_id)
    plan_fit = get_fit(db, plan.fit.id)
    family = compare.final_law(plan_fit.law)
    rule = rule_for(plan_fit, plan.request.hyperparams)
    critical_batch = None
    if rule == "kaplan":
        plan_law = get_law(plan_fit.law)
        critical_batch = lambda loss: plan_law.critical_batch(plan_fit.coefficients, loss)  # noqa: E731
    session = open_session(db, corpus=corpus, budget_minutes=budget_minutes, device=device, executor=executor,
                           workers=workers, memory_gib=memory_gib, hyperparams=rule, critical_batch=critical_batch,
                           seed=seed, cluster=cluster, report=report, precision=precision)
    assert session.throughput is not None
    summary = CheckSummary(
        plan_fit=FitRef.of(plan_fit), budget_seconds=budget_minutes * 60.0, device=session.device,
        executor=session.executor.name, workers=session.executor.workers,
        matmul_flops_per_second=session.throughput.matmul_flops_per_second, corpus=session.corpus.source,
        plan_budget_flops=plan.compute_flops, plan_params=plan.params, assumptions=list(ladder_mod.ASSUMPTIONS),
        control=control,
    )
    check = create_check(db, plan.id, session.scope, summary)
    session.plan_id, session.check_id = plan.id, check.id
    session.say(f"check {check.id} of plan {plan.id} ({plan_fit.law} fit {plan_fit.name or plan_fit.id}, "
                f"{rule} rules) on scope {session.scope}")
    try:
        with session.executor:
            return _check(session, check, plan, plan_fit, family, artifacts, control)
    except (CheckError, CheckFailed, KeyboardInterrupt) as exc:
        _fail(session, check.id, exc)
        raise
    except Exception as exc:  # anything else after the start: the check ran but could not finish
        _fail(session, check.id, exc)
        raise CheckFailed(f"{type(exc).__name__}: {exc}") from exc


def _fail(session: Session, check_id: int, exc: BaseException) -> None:
    db = session.db
    for run in runs_mod.list_runs(db, check_id=check_id):
        if run.status in ("pending", "running"):
            runs_mod.update_run(db, run.id, status="failed", error=f"check stopped: {type(exc).__name__}")
    check = get_check(db, check_id)
    summary = msgspec.structs.replace(check.summary, error=f"{type(exc).__name__}: {exc}"[:2000],
                                      wall_seconds=session.elapsed())
    save_check(db, msgspec.structs.replace(check, status="failed", summary=summary))


# ---------------------------------------------------------------------------------------------- phases


def _check(session: Session, check: Check, plan, plan_fit: Fit, family: str,
           artifacts: str | os.PathLike | None, control: str | None = None) -> Check:
    """Calibrate when needed, design the experiment, train the seed pairs, register every prediction with its
    intervals, train the rest, compare, refit, draw and store the check."""
    db, scope = session.db, session.scope
    calibrated, fit_seconds = _calibrate_if_needed(session, family)
    scope_fit = scope_fit_of(db, family, scope)
    curve_law = _curve_law()
    ns_fit = scope_fit_of(db, curve_law, scope) if curve_law is not None else None
    if scope_fit is None:
        raise CheckFailed(f"scope {scope} has no {family} fit and the calibration runs could not make one "
                          "(too few complete runs or sizes); give the check more time")
    if not scope_fit.active:
        session.say(f"{family} fit {scope_fit.id} of {scope} is not active ({'; '.join(untrusted(scope_fit))}): "
                    "its predictions are registered, but the items they decide are inconclusive")
    session.say(f"predicting with {family} fit {scope_fit.id} (v{scope_fit.version}) of {scope}"
                + (f" and kaplan-ns fit {ns_fit.id}" if ns_fit else "; no kaplan-ns fit, curves are not checked"))
    flag = experiment.flagged(scope_fit)
    if flag:
        session.warn(f"{flag}: items predicted from it are inconclusive")

    bootstrap = session.deadline - session.started >= BOOTSTRAP_MIN_SECONDS
    reserve = 3.0 * fit_seconds + 10.0 + (10.0 if bootstrap else 0.0)
    lad, specs, slice_tokens = _design(session, scope_fit, ns_fit,
                                       PHASE_ONE_SHARE * max(0.0, session.remaining() - reserve), artifacts)
    session.check_memory(specs)
    ratio = CONTROLS.get(control or "", 1.0) * _plan_ratio(plan, plan_fit)
    planned = [ratio * n for n in lad.planned]
    plan_a, alternative = _plan_exponent(db, plan_fit, plan)

    # Phase 1: the seed pairs, whose difference is the run-to-run noise every interval includes.
    pairs = lad.noise_pairs
    first = [s for pair in pairs for s in pair]
    rest = [s for s in specs if all(s is not f for f in first)]
    queries = {i: (_n(scope_fit, s), float(s.tokens), s.steps, float(s.batch_tokens)) for i, s in enumerate(specs)}
    spread = experiment.fit_spread(scope_fit, fitted_runs(db, scope_fit), queries, lad.budgets, seed=session.seed)
    session.say(f"fit spread: {spread.note}")
    base_preds = [_predict(session, spec, scope_fit, ns_fit, plan_fit, slice_tokens) for spec in specs]
    index = {id(s): i for i, s in enumerate(specs)}
    trained_first = session.train(first, [base_preds[index[id(s)]] for s in first])
    by_spec = {id(s): r for s, r in zip(first, trained_first, strict=True)}
    finals = [(by_spec[id(a)].final_val_loss, by_spec[id(b)].final_val_loss) for a, b in pairs]
    finals = [(a, b) for a, b in finals if a and b]
    earlier = earlier_seed_pairs(db, scope, check.id, session.precision)
    noise = stats.seed_sigma([*finals, *earlier])
    if noise is None:
        noise = DEFAULT_NOISE
        session.warn(f"no seed pair completed: run-to-run noise taken as {DEFAULT_NOISE:.1%}")
    noise = max(noise, NOISE_FLOOR)
    noise_pairs = len(finals) + len(earlier)
    session.say(f"run-to-run noise from {len(finals)} seed pairs ({', '.join(f'{a:.4f}/{b:.4f}' for a, b in finals)})"
                f" and {len(earlier)} earlier ones of this scope: {noise:.3%} of the loss")

    # Registration: every interval and the design's power, stored before the rest trains.
    predictive = {}
    for i, spec in enumerate(specs):
        mean = (base_preds[i].scope_fit or FitPrediction()).final_loss
        if mean is not None and spec.role in REGISTERED_ROLES:
            predictive[i] = experiment.final_predictive(mean, spread.final_sigma.get(i), noise)
    preds = [_with_interval(base_preds[i], predictive.get(i)) for i in range(len(specs))]
    power, power_se = _design_power(scope_fit, lad, noise, plan_a, alternative, session.centre)
    compute = [s.compute for s in specs if s.role != "early_stop"]
    span = max(compute) / min(compute)
    session.say(f"registered {len(predictive)} predictive intervals (80%, 95%); allocation-exponent test: se "
                f"{power_se:.3f}, power {power:.2f} to reject a={alternative:.3f} if the plan's a={plan_a:.3f} holds"
                if power is not None and plan_a is not None and alternative is not None and power_se is not None
                else f"registered {len(predictive)} predictive intervals; no allocation exponent to test")
    check = save_check(db, msgspec.structs.replace(check, summary=msgspec.structs.replace(
        check.summary, seed_sigma=noise, power=power, power_alternative=alternative, plan_exponent=plan_a,
        compute_span=span, scope_fit=FitRef.of(scope_fit))))
    trained_rest = session.train(rest, [preds[index[id(s)]] for s in rest])
    run_of = {**by_spec, **{id(s): r for s, r in zip(rest, trained_rest, strict=True)}}
    trained = [run_of[id(s)] for s in specs]
    trained = [runs_mod.get_run(db, r.id) for r in trained]
    if not any(r.status == "complete" for r in trained):
        raise CheckFailed("no check run completed: " + "; ".join(sorted({r.error or "?" for r in trained}))[:500])
    points = {r.id: runs_mod.get_points(db, r.id) for r in trained}
    registered = {trained[i].id: p for i, p in predictive.items()}
    pre = {run_of[id(s)].id for s in first}
    items, alloc = _compare(session, lad, specs, trained, points, scope_fit, ns_fit, family, planned, registered, pre,
                            noise, spread, plan_a, alternative, power, plan, control)
    summary_extra = _scores(items, alloc, plan_a)

    # Refit and exponents.
    warnings: list[str] = []
    new_fits = refit_scope(session, bootstrap=BOOTSTRAP_RESAMPLES if bootstrap else 0)
    exponents = [_exponents(f, plan, plan_fit, lad) for f in _scope_fits(db, scope, new_fits)]
    if bootstrap:
        exponents = [_with_intervals(session, e, plan) if get_law(e.fit.law).reports_allocation else e
                     for e in exponents]
    else:
        warnings.append(f"no bootstrap intervals on the scope's exponents: checks under "
                        f"{BOOTSTRAP_MIN_SECONDS / 60:g} minutes skip them")
    check = get_check(db, check.id)
    check = msgspec.structs.replace(check, summary=msgspec.structs.replace(
        check.summary, **summary_extra, limits=_limits(check.summary, span, power, plan_fit, plan_a, alternative,
                                                       noise, lad, noise_pairs)))
    plot_path = _picture(session, check, plan, plan_fit, scope_fit, trained, items, lad, planned, alloc, plan_a,
                         artifacts)
    return _store(session, check, plan, plan_fit, scope_fit, items, exponents, new_fits, calibrated, warnings,
                  plot_path)


def scope_fit_of(db: sqlite_utils.Database, law: str, scope: str) -> Fit | None:
    """The fit of ``law`` a check predicts the scope with: the active one, else the newest version.

    The refit never activates a fit the data leave undetermined (fits.refit.untrusted), but a check still
    needs predictions to register; items decided by such a fit come out inconclusive (experiment.flagged).
    """
    found = active_fit(db, law, scope)
    if found is None:
        versions = list_fits(db, law=law, scope=scope)
        found = versions[-1] if versions else None
    return found


def earlier_seed_pairs(db: sqlite_utils.Database, scope: str, check_id: int | None,
                       precision: str) -> list[tuple[float, float]]:
    """Final losses of the seed pairs earlier checks of this scope trained in ``precision`` (a "repeat" run and the
    run it repeats: the same config but the seed). Two pairs estimate a noise with two degrees of freedom, which
    can come out several times too small by chance; the scope's earlier pairs make it a pooled estimate."""
    runs = [r for r in runs_mod.list_runs(db, scope=scope, status="complete")
            if r.check_id is not None and r.check_id != check_id and r.final_val_loss]
    by_check: dict[int, list[Run]] = {}
    for r in runs:
        by_check.setdefault(r.check_id, []).append(r)
    pairs = []
    for group in by_check.values():
        for rep in (r for r in group if r.role == "repeat" and r.run_config.precision == precision):
            twin = next((o for o in group if o.role == "proxy" and o.seed != rep.seed
                         and msgspec.structs.replace(o.run_config, seed=rep.seed) == rep.run_config), None)
            if twin is not None:
                pairs.append((twin.final_val_loss, rep.final_val_loss))
    return pairs


def fitted_runs(db: sqlite_utils.Database, fit: Fit) -> list[Run]:
    """The runs a scope fit was made from: its scope's runs that were complete when it was stored (a refit fits
    every complete run of the scope). Its bootstrap spread resamples these: a fit made from 11 runs is as
    uncertain as 11 runs make it, however many runs the scope has gathered since."""
    runs = runs_mod.list_runs(db, scope=fit.scope, status="complete")
    if fit.created is None:
        return runs
    return [r for r in runs if r.updated is not None and r.updated <= fit.created]


def _calibrate_if_needed(session: Session, family: str) -> tuple[bool, float]:
    """A calibration ladder and a refit when the scope has no fit of ``family`` yet: (calibrated, the seconds
    one refit took, or FIT_SECONDS when none ran)."""
    db, scope = session.db, session.scope
    if scope_fit_of(db, family, scope) is not None:
        return False, FIT_SECONDS
    training = max(0.0, session.remaining() - 3.0 * FIT_SECONDS)
    session.say(f"scope {scope} has no {family} fit: calibration ladder first "
                f"({training * CALIBRATION_SHARE:.0f} s)")
    calibration_phase(session, training * CALIBRATION_SHARE, get_fit(db, REFERENCE_FIT))
    t0 = time.monotonic()
    refit_scope(session)
    return True, max(time.monotonic() - t0, 1.0)


def _compare(session: Session, lad: CheckLadder, specs: Sequence[ProxySpec], trained: Sequence[Run],
             points: dict[int, list], scope_fit: Fit, ns_fit: Fit | None, family: str, planned: Sequence[float],
             registered: dict[int, stats.Predictive], pre: set[int], noise: float, spread: experiment.Spread,
             plan_a: float | None, alternative: float | None, power: float | None, plan,
             control: str | None) -> tuple[list[CheckItem], experiment.Allocation]:
    """The check's items, each judged against its pre-registered distribution."""
    run_of = {id(s): r for s, r in zip(specs, trained, strict=True)}
    items: list[CheckItem] = []
    for spec, run in zip(specs, trained, strict=True):
        if spec.role not in REGISTERED_ROLES:
            continue
        items.append(experiment.final_item(run, registered.get(run.id), scope_fit, registered=run.id not in pre))
    if ns_fit is not None:
        for spec in lad.proxies:
            run = run_of[id(spec)]
            if run.status == "complete":
                sd = registered.get(run.id)
                rel = sd.sigma / sd.mean if sd is not None else noise
                items.append(experiment.curve_item(run, points[run.id], ns_fit, rel))
    profiles = [[run_of[id(s)] for s in row] for row in lad.grid]
    tpp = float(plan.tokens) / float(plan.params) if plan.params else None
    flagged = bool(experiment.flagged(scope_fit))
    centre = session.centre
    if not flagged:
        ln_sigma = spread.ln_n_opt_sigma
    elif centre is not None:
        # the prior's vertices were weighted with DEFAULT_NOISE; their error scales with the measured noise
        ln_sigma = {c: max(centre.ln_sigma(c) * noise / DEFAULT_NOISE, 0.1) for c in lad.budgets}
    else:
        ln_sigma = {c: REFERENCE_LN_SIGMA for c in lad.budgets}
    alloc = experiment.allocation_items(profiles, lad.budgets, planned, scope_fit.law, scope_fit, noise,
                                        ln_n_sigma=ln_sigma, plan_a=plan_a, alternative=alternative,
                                        design_power=power, plan_tokens_per_param=tpp, control=control,
                                        planned_from_fit=not flagged)
    items += alloc.items
    # extrapolation: the family fitted on the IsoFLOP profiles and seed repeats only
    fit_runs = [r for row in profiles for r in row if r.status == "complete"]
    fit_runs += [run_of[id(s)] for s in lad.repeats if run_of[id(s)].status == "complete"]
    for spec in lad.heldout:
        held = run_of[id(spec)]
        items.append(experiment.extrapolation_item(family, fit_runs, held, noise, seed=session.seed))
    for spec in lad.extra:
        run = run_of[id(spec)]
        pred = run.prediction or Prediction()
        items.append(experiment.early_stop_item(run, points[run.id], pred.s_stop_steps, ns_fit,
                                                unique_tokens=float(pred.unique_tokens or 0), final_fit=scope_fit))
    if lad.sweep:
        mid = lad.proxies[len(lad.proxies) // 2]
        middle = run_of[id(mid)]
        lr = [(s.lr / mid.lr, run_of[id(s)]) for s in lad.sweep if s.role == "lr_sweep"]
        bs = [(s.batch_size / mid.batch_size, run_of[id(s)]) for s in lad.sweep if s.role == "batch_sweep"]
        items.append(experiment.sweep_item("lr_rule", "learning-rate", middle, lr, noise,
                                           f"the rule's rate for this run: {mid.rule_lr:.3g}" if mid.rule_lr else ""))
        items.append(experiment.sweep_item("batch_rule", "batch", middle, bs, noise, _rule_batch_note(mid)))
    return items, alloc


def _rule_batch_note(spec: ProxySpec) -> str:
    """What the rule's batch was for the sweep's centre, and whether it was lowered to give MIN_STEPS steps."""
    if not spec.rule_batch_tokens:
        return ""
    note = f"the rule's batch for this run: {spec.rule_batch_tokens:,.0f} tokens"
    if abs(math.log(spec.batch_tokens / spec.rule_batch_tokens)) > math.log(1.25):
        note += (f", lowered to {spec.batch_tokens:,} to give {ladder_mod.MIN_STEPS} steps (the sweep is around the "
                 "lowered value)")
    return note


def _scores(items: Sequence[CheckItem], alloc: experiment.Allocation, plan_a: float | None) -> dict:
    """Coverage of the registered 80% and 95% intervals (binomial tests) and the log score."""
    judged = [i for i in items if i.kind in ("final_loss", "extrapolation") and i.registered and i.z is not None
              and i.observed is not None and i.interval80]
    out: dict = {}
    if judged:
        inside80 = [i.interval80[0] <= i.observed <= i.interval80[1] for i in judged]
        inside95 = [i.interval95[0] <= i.observed <= i.interval95[1] for i in judged]
        dens = [stats.Predictive(i.predicted, i.sigma).log_density(i.observed) for i in judged]
        c80 = stats.coverage(inside80, 0.8, dens)
        c95 = stats.coverage(inside95, 0.95)
        out.update(coverage80=[c80.inside, c80.total, c80.p_value], coverage95=[c95.inside, c95.total, c95.p_value],
                   coverage80_low_p=stats.coverage_low_p(c80.inside, c80.total, 0.8), log_score=c80.log_score)
    e = alloc.exponent
    if e.a is not None:
        lo, hi = e.interval()
        out["fitted_exponent"] = [e.a, lo, hi]
    return out


def _limits(summary: CheckSummary, span: float, power: float | None, plan_fit: Fit, plan_a: float | None,
            alternative: float | None, noise: float, lad: CheckLadder, pairs: int) -> list[str]:
    """What this check can and cannot say, in sentences."""
    lo, hi = min(lad.budgets), max(s.budget_flops for s in lad.heldout) if lad.heldout else max(lad.budgets)
    out = [f"compute covered: {lo:.3g} to {hi:.3g} FLOPs ({span:.0f}× from the smallest run to the largest); "
           f"the plan is at {summary.plan_budget_flops:.3g}, {summary.plan_budget_flops / hi:.2g}× beyond",
           f"run-to-run noise {noise:.2%} of the loss (from {pairs} seed pairs, this check's and the scope's earlier "
           "ones); every interval includes it"]
    if power is not None and plan_a is not None and alternative is not None:
        out.append(f"the allocation-exponent test has power {power:.2f} to tell a={plan_a:.3f} (the plan's law) from "
                   f"a={alternative:.3f}" + ("" if power >= stats.POWER_REQUIRED else
                                              ": too little to decide, so it cannot pass (more time buys power)"))
    tok = get_law(plan_fit.law).conventions.tokenizer
    out.append(f"the plan's fit counts {tok} tokens and the proxies train on bytes: absolute losses and tokens per "
               "parameter do not transfer; the check tests the shape of the law (exponents, the plan's N relative "
               "to the optimum, curves, the held-out extrapolation) on this corpus's own fit")
    out.append(f"proxies take the plan's batch rule (lowered only to give a run {ladder_mod.MIN_STEPS:,} steps) "
               "and its learning rate at the planned size of each budget (the other sizes of a profile carry "
               "it as 1/width); the sweep reports where the observed optimum lies around the rule's values")
    return out


def _store(session: Session, check: Check, plan, plan_fit: Fit, scope_fit: Fit, items: list[CheckItem],
           exponents: list[Exponents], new_fits: Sequence[Fit], calibrated: bool, warnings: list[str],
           plot_path: Path | None) -> Check:
    """Store the completed check with its verdict and summary, and say so."""
    db = session.db
    verdict = overall_verdict(items, coverage_low_p=check.summary.coverage80_low_p)
    counts = {v: sum(1 for i in items if i.verdict == v) for v in ("pass", "fail", "skip", "inconclusive")}
    warnings = [*session.warnings, *warnings]
    if session.remaining() < -0.2 * (session.deadline - session.started):
        warnings.append(f"the check overran its time budget by {-session.remaining():.0f} s")
    summary = msgspec.structs.replace(
        check.summary,
        scope_fit=FitRef.of(scope_fit),
        calibrated=calibrated,
        wall_seconds=session.elapsed(),
        matmul_flops_per_second=session.throughput.matmul_flops_per_second if session.throughput else None,
        run_ids=[r.id for r in runs_mod.list_runs(db, check_id=check.id)],
        passed=counts["pass"], failed=counts["fail"], skipped=counts["skip"], inconclusive=counts["inconclusive"],
        plan_exponents=_plan_exponents(plan_fit, plan),
        scope_exponents=exponents,
        refits=[Refit(fit=FitRef.of(f), n_points=f.n_points, heldout_error=f.heldout_error, active=f.active)
                for f in new_fits],
        warnings=warnings,
    )
    stored = save_check(db, msgspec.structs.replace(
        check, status="complete", verdict=verdict, items=items, summary=summary,
        plot_path=None if plot_path is None else os.fspath(plot_path),
        refit_fit_ids=[f.id for f in new_fits if f.id is not None]))
    session.say(f"check {stored.id} complete: {verdict} ({counts['pass']} passed, {counts['fail']} failed, "
                f"{counts['inconclusive']} inconclusive, {counts['skip']} skipped) in {session.elapsed():.0f} s")
    return stored


def _curve_law() -> str | None:
    """The fittable family that predicts loss curves in steps (kaplan-ns), which the curve items use."""
    return next((name for name in fittable_law_names() if get_law(name).in_steps), None)


def _scope_fits(db: sqlite_utils.Database, scope: str, new_fits: Sequence[Fit]) -> list[Fit]:
    """The scope's newest fit of each family the refit makes (new ones first, else the active ones)."""
    out: dict[str, Fit] = {f.law: f for f in new_fits}
    names = fittable_law_names()  # the families the refit makes, in the order the check reports them
    for name in names:
        if name not in out:
            found = scope_fit_of(db, name, scope)
            if found is not None:
                out[name] = found
    return [out[name] for name in names if name in out]


# ---------------------------------------------------------------------------------------------- design


def _design(session: Session, scope_fit: Fit, ns_fit: Fit | None, seconds: float,
            artifacts: str | os.PathLike | None) -> tuple[CheckLadder, list[ProxySpec], int | None]:
    """The experiment that fills ``seconds``: IsoFLOP profiles, seed pairs, the held-out run, the sweep and the
    early-stopping run."""
    from planner.solve import model_for

    assert session.throughput is not None
    if experiment.flagged(scope_fit):
        # A degenerate scope fit's optimum is not a place to centre profiles on. The scope's earlier IsoFLOP runs
        # (the calibration grid) give a model-free one; failing that, the reference allocation scaled as the
        # calibration ladder is (bytes carry less than BPE tokens).
        prior = _empirical_allocation(session, scope_fit.law)
        if prior is not None:
            plan_n = prior.n_opt
            session.centre = prior
            session.warn(f"{experiment.flagged(scope_fit)}: IsoFLOP profiles centred on the scope's earlier IsoFLOP "
                         f"vertices ({prior.note}) instead of its optimum")
        else:
            reference = get_fit(session.db, REFERENCE_FIT)
            model = model_for(reference)
            plan_n = lambda c: BYTE_REFERENCE_RATIO * float(model.optimum(c)[0])  # noqa: E731
            session.warn(f"{experiment.flagged(scope_fit)}: IsoFLOP profiles centred on "
                         f"{BYTE_REFERENCE_RATIO:.2g}x the {reference.name} allocation instead of its optimum")
    else:
        model = model_for(scope_fit)
        plan_n = lambda c: float(model.optimum(c)[0])  # noqa: E731
    slicing = session.corpus.tokenizer == "bytes" and ns_fit is not None

    def build(rules: ladder_mod.Rules, u: float) -> CheckLadder:
        lad = ladder_mod.check_ladder(u, plan_n, rules)
        if slicing:
            lad.extra = [_early_stop_spec(session, lad, scope_fit, ns_fit)[0]]
        return lad

    # proxies sized on the N the scope's family counts (total parameters for Chinchilla)
    session.rules = replace(session.rules, counts=get_law(scope_fit.law).conventions.params)
    # Sizing only asks the largest profile for 2 distinct sizes (the smallest proxy absorbs the rest at small
    # budgets): a design below 5 sizes over 16x at every budget shows it in its power, and its exponent test
    # is then inconclusive rather than the check overrunning its time.
    def valid(specs: list[ProxySpec]) -> bool:
        top = _regroup(specs)
        top.grid = top.grid[-1:]
        return ladder_mod.ladder_valid(top, sizes=2, size_span=1.5)

    u, _ = session.size(lambda rules, u: build(rules, u).specs, seconds, valid)
    lad = build(session.rules, u)
    slice_tokens = None
    if slicing:
        spec, slice_tokens, _ = _early_stop_spec(session, lad, scope_fit, ns_fit)
        path = _write_slice(session, slice_tokens, artifacts)
        spec = msgspec.structs.replace(spec, corpus=os.fspath(path), scope=f"{session.scope}+slice{slice_tokens}")
        lad.extra = [spec]
    specs = lad.specs
    session.say(f"check experiment: IsoFLOP profiles at {', '.join(f'{b:.3g}' for b in lad.budgets)} FLOPs "
                f"({', '.join(str(len(r)) for r in lad.grid)} sizes, "
                f"{', '.join(f'{r[0].params:.3g}-{r[-1].params:.3g}' for r in lad.grid)} non-embedding), "
                f"{len(lad.repeats)} seed repeats, held-out run at {lad.heldout[0].budget_flops:.3g}, "
                f"{len(lad.sweep)} sweep runs" + (f", early-stop run on {slice_tokens:,} tokens" if slicing else ""))
    return lad, specs, slice_tokens


class EmpiricalAllocation:
    """N_opt(C) = exp(b)·C^a from the vertices of a scope's earlier IsoFLOP runs, with the standard error of
    ln N_opt at each budget (the regression's prediction error), and the profiles' median curvature and loss
    level (what a design's power is computed with when the scope's fit cannot say)."""

    def __init__(self, exponent: isoflop.Exponent, note: str, curvature: float, level: float) -> None:
        self.exponent, self.note = exponent, note
        self.curvature, self.level = curvature, level

    def n_opt(self, c: float) -> float:
        return self.exponent.n_opt(c).n

    def ln_sigma(self, c: float) -> float:
        return self.exponent.n_opt(c).ln_se


def _empirical_allocation(session: Session, law: str) -> EmpiricalAllocation | None:
    """Approach 2 on the scope's complete runs grouped by the budget they stood for (3+ sizes at 2+ budgets)."""
    runs = [r for r in runs_mod.list_runs(session.db, scope=session.scope, status="complete")
            if r.prediction is not None and r.prediction.budget_flops and r.final_val_loss]
    groups: dict[float, list[Run]] = {}
    for r in runs:
        groups.setdefault(float(f"{r.prediction.budget_flops:.4g}"), []).append(r)
    budgets, vertices, levels = [], [], []
    for c, group in sorted(groups.items()):
        sizes = [compare.run_params(law, r) for r in group]
        if len(set(sizes)) < 3:
            continue
        v = isoflop.vertex(sizes, [r.final_val_loss for r in group], DEFAULT_NOISE)
        if v.determined:
            budgets.append(c)
            vertices.append(v)
            levels.append(min(r.final_val_loss for r in group))
    e = isoflop.exponent(budgets, vertices)
    if e.a is None or not (0.1 < e.a < 1.5):
        return None
    note = (f"{len(budgets)} budgets {min(budgets):.3g}-{max(budgets):.3g}, a = {e.a:.3f} ± {e.se:.3f}, noise "
            f"{DEFAULT_NOISE:.0%} assumed")
    return EmpiricalAllocation(e, note, float(np.median([v.curvature for v in vertices])), float(np.median(levels)))


def _regroup(specs: list[ProxySpec]) -> CheckLadder:
    """The profiles of a flat spec list (for the ladder's validity test inside sizing)."""
    budgets = sorted({s.budget_flops for s in specs if s.role in ("proxy", "isoflop")})
    grid = [sorted((s for s in specs if s.role in ("proxy", "isoflop") and s.budget_flops == c),
                   key=lambda s: s.params) for c in budgets]
    return CheckLadder(grid=grid, budgets=budgets, planned=[])


def _with_interval(pred: Prediction, predictive: stats.Predictive | None) -> Prediction:
    if predictive is None:
        return pred
    return msgspec.structs.replace(pred, final_sigma=predictive.sigma,
                                   final_interval80=list(predictive.interval(0.8)),
                                   final_interval95=list(predictive.interval(0.95)))


def _plan_ratio(plan, plan_fit: Fit) -> float:
    """The plan's N over its own law's compute-optimal N at the plan's budget (1 for an unconstrained plan)."""
    n_opt = _n_opt(plan_fit, plan.compute_flops)
    return float(plan.params) / n_opt if n_opt else 1.0


def _slope(fit: Fit, budget: float) -> float | None:
    """d ln N_opt / d ln C of a fit around ``budget`` (its allocation exponent, read off the planner's model)."""
    lo, hi = _n_opt(fit, budget / 10.0), _n_opt(fit, budget * 10.0)
    if not lo or not hi:
        return None
    return math.log(hi / lo) / math.log(100.0)


def _plan_exponent(db: sqlite_utils.Database, plan_fit: Fit, plan) -> tuple[float | None, float | None]:
    """The plan's allocation exponent, and the other published families' (the alternative the test must reject):
    the active published fit of another family whose exponent differs most."""
    from fits.store import list_fits

    a = _slope(plan_fit, plan.compute_flops)
    if a is None:
        return None, None
    others = []
    for f in list_fits(db):
        if f.provenance.source != "published" or get_law(f.law) is get_law(plan_fit.law) or not f.active:
            continue
        other = _slope(f, plan.compute_flops)
        if other is not None and math.isfinite(other) and abs(other - a) > 0.05:
            others.append(other)
    alternative = max(others, key=lambda x: abs(x - a)) if others else a + 0.2
    return a, alternative


def _design_power(scope_fit: Fit, lad: CheckLadder, noise: float, plan_a: float | None,
                  alternative: float | None, centre: EmpiricalAllocation | None = None
                  ) -> tuple[float | None, float | None]:
    """Power of the exponent test for this design: the profiles' curvature from the scope fit's L(N, C/6N) (from
    the scope's measured IsoFLOP profiles, ``centre``, when the fit is flagged), the measured noise, the delta
    method (verifier.check.stats.exponent_se)."""
    if plan_a is None or alternative is None:
        return None, None
    measured = centre is not None and bool(experiment.flagged(scope_fit))
    profiles = []
    for row, c, n_opt in zip(lad.grid, lad.budgets, lad.planned, strict=True):
        sizes = [_n(scope_fit, s) for s in row]
        if len(set(sizes)) < 3:  # no vertex from this profile (stats.design_se leaves it out)
            profiles.append((np.log(sizes), math.log(n_opt), 1.0, 1.0))
            continue
        if measured:
            profiles.append((np.log(sizes), math.log(n_opt), centre.curvature, centre.level))
            continue
        # curvature of the scope fit's L(N, C/6N) over the profile's span
        wide = np.geomspace(min(sizes), max(sizes), 9)
        losses = [compare.predict_final(scope_fit, n, c / (6.0 * n)) for n in wide]
        c2, _, _ = np.polyfit(np.log(wide), losses, 2)
        profiles.append((np.log(sizes), math.log(n_opt), max(float(c2), 1e-6), float(np.mean(losses))))
    se = stats.design_se(lad.budgets, profiles, noise)
    return stats.power(se, alternative - plan_a), se


def _predict(session: Session, spec: ProxySpec, scope_fit: Fit, ns_fit: Fit | None, plan_fit: Fit,
             slice_tokens: int | None) -> Prediction:
    """What the run is checked against, recorded before it trains."""
    pred = Prediction(
        scope_fit=FitPrediction(fit_id=scope_fit.id, law=scope_fit.law,
                                final_loss=compare.predict_final(scope_fit, _n(scope_fit, spec), spec.tokens,
                                                                 steps=spec.steps,
                                                                 batch_tokens=spec.batch_tokens)),
        plan_fit=plan_prediction(plan_fit, spec),
    )
    if ns_fit is not None:
        pred = msgspec.structs.replace(pred, curve_fit=FitPrediction(fit_id=ns_fit.id, law=ns_fit.law))
    if spec.role == "proxy":
        pred = msgspec.structs.replace(pred, planned=_planned(session, scope_fit, spec))
    if spec.role == "early_stop" and ns_fit is not None and slice_tokens is not None:
        pred = msgspec.structs.replace(
            pred, unique_tokens=slice_tokens, stop_fit_id=ns_fit.id,
            s_stop_steps=compare.s_stop_steps(scope_fit, ns_fit, _n(scope_fit, spec), slice_tokens,
                                              spec.batch_tokens))
    return pred


def _n(fit: Fit, spec: ProxySpec) -> float:
    """N of a proxy as ``fit``'s family counts it."""
    return float(spec.law_params(get_law(fit.law).conventions.params))


def _scope_prediction(run: Run) -> FitPrediction:
    """The scope fit's prediction for a run (empty when none was recorded)."""
    return (run.prediction.scope_fit if run.prediction is not None else None) or FitPrediction()


def _planned(session: Session, scope_fit: Fit, spec: ProxySpec) -> PlannedRun:
    """The scope fit's plan at the proxy's budget (what the planner itself would say), for the record."""
    from planner.request import PlanRequest
    from planner.solve import solve_plan

    try:
        plan = solve_plan(PlanRequest(compute_flops=spec.budget_flops, law=scope_fit.law, scope=scope_fit.scope,
                                      seq_len=spec.seq_len, vocab_size=session.corpus.vocab_size,
                                      hyperparams=session.rules.hyperparams), scope_fit)
    except ValueError as exc:
        return PlannedRun(error=str(exc)[:300])
    return PlannedRun(params=plan.params, tokens=plan.tokens, batch_tokens=plan.batch_tokens,
                      learning_rate=plan.learning_rate, predicted_loss=plan.predicted_loss.mean,
                      predicted_low=plan.predicted_loss.low, predicted_high=plan.predicted_loss.high)


def _early_stop_spec(session: Session, lad: CheckLadder, scope_fit: Fit, ns_fit: Fit) -> tuple[ProxySpec, int, float]:
    """A run of the middle proxy's size and length on a slice whose eq. 5.7 bound falls a third of the way in."""
    middle = lad.proxies[len(lad.proxies) // 2]
    target = max(1.0, EARLY_STOP_TARGET * middle.steps)
    seq = middle.seq_len
    low = 40 * seq  # the slice's 5% validation part must hold a few sequences
    high = max(low, min(int(session.corpus.n_train), middle.tokens // 4))  # at least 4 epochs, or no overfitting

    def bound(u: float) -> float:
        s = compare.s_stop_steps(scope_fit, ns_fit, _n(scope_fit, middle), u, middle.batch_tokens)
        return math.inf if s is None else s

    lo, hi = math.log(low), math.log(high)
    if bound(math.exp(lo)) >= target:
        u = low
    elif bound(math.exp(hi)) <= target:
        u = high
    else:
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            if bound(math.exp(mid)) < target:
                lo = mid
            else:
                hi = mid
        u = math.exp(0.5 * (lo + hi))
    u = int(max(low, min(high, round(u))))
    spec = msgspec.structs.replace(middle, role="early_stop", label=f"early stop, {u:,} tokens",
                                   eval_every=max(1, middle.steps // 48))
    return spec, u, bound(u)


def _write_slice(session: Session, unique_tokens: int, artifacts: str | os.PathLike | None) -> Path:
    """A text file holding the first ``unique_tokens`` training bytes, then held-out validation bytes sized so
    that the corpus loader's 5% split puts exactly those bytes in validation.

    The slice is derived data named by the corpus fingerprint, not an output: it lives in the corpus cache
    (verifier.corpus.cache_dir), never in the working directory or beside the check's picture."""
    data = session.corpus
    val = math.ceil(unique_tokens / 19)
    while unique_tokens + val - math.ceil(0.05 * (unique_tokens + val)) > unique_tokens:
        val += 1
    while val > 1 and unique_tokens + val - 1 - math.ceil(0.05 * (unique_tokens + val - 1)) == unique_tokens:
        val -= 1
    val = min(val, len(data.val))
    body = np.asarray(data.train[:unique_tokens], dtype=np.uint8).tobytes()
    tail = np.asarray(data.val[:val], dtype=np.uint8).tobytes()
    path = cache_dir() / "slices" / f"{data.fingerprint[:12]}-{unique_tokens}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(body + tail)
        os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------- exponents


def _values(fit: Fit) -> dict[str, float]:
    """The exponents the fit's family reports."""
    return get_law(fit.law).exponents(fit.coefficients)


def _n_opt(fit: Fit, budget: float) -> float | None:
    from planner.solve import model_for

    try:
        n = float(model_for(fit).optimum(budget)[0])
    except (ValueError, ArithmeticError):
        return None
    return n if math.isfinite(n) else None


def _plan_exponents(plan_fit: Fit, plan) -> Exponents:
    intervals = {k: v for k, v in plan_fit.intervals.items() if k in ("alpha", "beta")}
    return Exponents(fit=FitRef.of(plan_fit), values=_values(plan_fit), intervals=intervals,
                     n_opt=float(plan.params))


def _exponents(fit: Fit, plan, plan_fit: Fit, lad: CheckLadder) -> Exponents:
    """A scope fit's exponents, its own N_opt at the plan's budget, and (same family as the plan) the plan fit's
    N_opt at the largest proxy budget carried to the plan's budget with this scope's allocation exponent."""
    values = _values(fit)
    transfer = None
    law = get_law(fit.law)
    if law.reports_allocation and law is get_law(plan_fit.law) and lad.proxies:
        top = max(s.budget_flops for s in lad.proxies)
        a_plan = law.allocation_exponent(plan_fit.coefficients)
        transfer = float(plan.params) * (plan.compute_flops / top) ** (law.allocation_exponent(fit.coefficients)
                                                                        - a_plan)
    return Exponents(fit=FitRef.of(fit), values=values, intervals=dict(fit.intervals),
                     n_opt=_n_opt(fit, plan.compute_flops), n_opt_transfer=transfer)


def _with_intervals(session: Session, exp: Exponents, plan) -> Exponents:
    """Bootstrap intervals for a Chinchilla scope fit's exponents and its N_opt at the plan's budget."""
    runs = runs_mod.list_runs(session.db, scope=session.scope, status="complete")
    fit = get_fit(session.db, exp.fit.id)
    t0 = time.monotonic()
    try:
        intervals = compare.bootstrap_exponents(fit.law, runs, fit.coefficients, plan.compute_flops,
                                                 resamples=BOOTSTRAP_RESAMPLES, seed=session.seed)
    except (ValueError, FloatingPointError) as exc:
        session.say(f"no bootstrap intervals: {exc}")
        return exp
    session.say(f"bootstrap of the scope's exponents ({BOOTSTRAP_RESAMPLES} resamples): "
                f"{time.monotonic() - t0:.1f} s")
    n_interval = intervals.pop("n_opt")
    return msgspec.structs.replace(exp, intervals=intervals, n_opt_interval=n_interval)


# ---------------------------------------------------------------------------------------------- picture


def _picture(session: Session, check: Check, plan, plan_fit: Fit, scope_fit: Fit, trained: Sequence[Run],
             items: Sequence[CheckItem], lad: CheckLadder, planned: Sequence[float], alloc: experiment.Allocation,
             plan_a: float | None, artifacts: str | os.PathLike | None) -> Path | None:
    by_id = {r.id: r for r in trained}
    picture = plot.CheckPicture(
        title=(f"check {check.id} of plan {plan.id} ({plan_fit.name or plan_fit.law}, C={plan.compute_flops:.3g})"
               + (f" [control: {check.summary.control}]" if check.summary.control else "")
               + f" on {session.scope}; predictions from {scope_fit.law} fit {scope_fit.id}"),
        plan_exponent=plan_a, size_unit=f"{get_law(scope_fit.law).conventions.params} parameters")
    for item in items:
        if item.kind in ("final_loss", "extrapolation") and item.interval80 and item.predicted is not None:
            run = by_id.get(item.run_ids[0]) if item.run_ids else None
            if run is None:
                continue
            picture.bands.append(plot.Band(
                label=f"{run.id} {run.role}", role=("heldout" if item.kind == "extrapolation" else run.role or ""),
                predicted=item.predicted, interval80=tuple(item.interval80), interval95=tuple(item.interval95),
                observed=item.observed, compute=6.0 * float(run.n_params) * float(run.tokens)
                + (1e-6 if item.kind == "extrapolation" else 0.0)))
    for row, c, n_plan, v in zip(lad.grid, lad.budgets, planned, alloc.vertices, strict=True):
        runs = [r for r in (by_id.get(_run_id(trained, lad, s)) for s in row) if r is not None
                and r.status == "complete" and r.final_val_loss is not None]
        runs.sort(key=lambda r: compare.run_params(scope_fit.law, r))
        picture.profiles.append(plot.Profile(
            budget=c, sizes=[compare.run_params(scope_fit.law, r) for r in runs],
            losses=[r.final_val_loss for r in runs], planned=n_plan, vertex=v.n, vertex_interval=v.interval()))
    e = alloc.exponent
    if e.a is not None:
        picture.fitted_exponent = (e.a, *e.interval())
        picture.exponent_intercept = e.intercept
    stop = next((i for i in items if i.kind == "early_stop"), None)
    for run in trained:
        if run.role == "early_stop" and run.status == "complete":
            pts = [p for p in runs_mod.get_points(session.db, run.id) if p.val_loss is not None and p.step > 0]
            if pts:
                best = min(pts, key=lambda p: p.val_loss)
                bound = run.prediction.s_stop_steps if run.prediction else None
                picture.early_stop = plot.EarlyStop(
                    steps=np.array([p.step for p in pts], dtype=float),
                    val_loss=np.array([p.val_loss for p in pts], dtype=float), bound=bound, best_step=best.step,
                    unique_tokens=float(run.prediction.unique_tokens or 0) if run.prediction else 0.0,
                    upper=None if stop is None or not stop.interval95 else stop.interval95[1])
    directory = plot.artifacts_dir(session.db_path) if artifacts is None else Path(artifacts)
    try:
        return plot.draw(picture, directory / f"check-{check.id}.png")
    except (OSError, ValueError) as exc:
        session.say(f"no picture: {exc}")
        return None


def _run_id(trained: Sequence[Run], lad: CheckLadder, spec: ProxySpec) -> int | None:
    for s, r in zip(lad.specs, trained, strict=False):
        if s is spec:
            return r.id
    return None
