"""``run_check``: check a stored plan's law and planning rules on a corpus with proxy runs, then refit.

1. Validate the input and measure the workers' training throughput (verifier.check.calibrate.open_session).
2. When the corpus scope has no fit of the plan's family yet, train a calibration ladder and refit first.
3. Plan proxies at a few small budgets with the scope's fit and the plan's batch / learning-rate rules,
   add the IsoFLOP triple (planned N, half, twice) at the middle budget and an early-stopping run on a
   corpus slice small enough to overfit, and record every prediction before anything trains.
4. Train them and compare (verifier.check.items): curves against L(N, S), final losses against L(N, D), the
   early-stopping step against eq. 5.7, the planned N against the triple's best, and the largest run
   against a fit of the others.
5. Refit the scope through fits.refit, report this scope's exponents beside the plan fit's and the plan's
   N_opt with them, draw the picture, and store the check.

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
from fits.laws.registry import fittable_law_names, get_law
from fits.store import active_fit, get_fit
from verifier import runs as runs_mod
from verifier.check import items as compare
from verifier.check import ladder as ladder_mod
from verifier.check import picture as plot
from verifier.check.calibrate import (
    FIT_SECONDS,
    REFERENCE_FIT,
    Session,
    calibration_phase,
    log_line,
    open_session,
    plan_prediction,
    refit_scope,
)
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
from verifier.runs import FitPrediction, PlannedRun, Prediction, Run

CALIBRATION_SHARE = 0.45
"""Share of the training time a first check on a fresh scope gives its calibration ladder."""
EARLY_STOP_TARGET = 1 / 3
"""The overfitting slice is sized so that eq. 5.7 puts the stop at this fraction of the run."""
BOOTSTRAP_MIN_SECONDS = 240.0
"""Checks shorter than this report the scope's exponents without bootstrap intervals."""
BOOTSTRAP_RESAMPLES = 100
EXTRAPOLATION_STARTS = 300
"""Starts for the extrapolation item's fit (a spread subset of the full grid): it only needs the basin
the full refit already found, and it runs inside the check's time budget."""




class CheckFailed(Failed):
    """The check started but could not produce its comparisons (no runs finished, no fit could be made)."""


def rule_for(plan_fit: Fit, hyperparams: str | None) -> str:
    return hyperparams or get_law(plan_fit.law).conventions.hyperparams


def run_check(db: sqlite_utils.Database, plan_id: int, *, budget_minutes: float = 10.0, device: str = "auto",
              corpus: str | os.PathLike | None = None, executor: str = "local", workers: int | None = None,
              memory_gib: float | None = None, artifacts: str | os.PathLike | None = None, seed: int = 0,
              cluster: str | None = None, report: Callable[[str], None] = log_line) -> Check:
    """Check plan ``plan_id`` on ``corpus`` within about ``budget_minutes``; returns the stored check.

    Bad input raises a ValueError (or PlanNotFound) before anything is stored; a check that started but could
    not finish is stored with status "failed" and raises CheckFailed.
    """
    from planner.store import get_plan

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
                           seed=seed, cluster=cluster, report=report)
    assert session.throughput is not None
    summary = CheckSummary(
        plan_fit=FitRef.of(plan_fit), budget_seconds=budget_minutes * 60.0, device=session.device,
        executor=session.executor.name, workers=session.executor.workers,
        matmul_flops_per_second=session.throughput.matmul_flops_per_second, corpus=session.corpus.source,
        plan_budget_flops=plan.compute_flops, plan_params=plan.params, assumptions=list(ladder_mod.ASSUMPTIONS),
    )
    check = create_check(db, plan.id, session.scope, summary)
    session.plan_id, session.check_id = plan.id, check.id
    session.say(f"check {check.id} of plan {plan.id} ({plan_fit.law} fit {plan_fit.name or plan_fit.id}, "
                f"{rule} rules) on scope {session.scope}")
    try:
        with session.executor:
            return _check(session, check, plan, plan_fit, family, artifacts)
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
           artifacts: str | os.PathLike | None) -> Check:
    """Calibrate when needed, design and train the check runs, compare, refit, draw and store the check."""
    db, scope = session.db, session.scope
    calibrated, fit_seconds = _calibrate_if_needed(session, family)
    scope_fit = active_fit(db, family, scope)
    curve_law = _curve_law()
    ns_fit = active_fit(db, curve_law, scope) if curve_law is not None else None
    if scope_fit is None:
        raise CheckFailed(f"scope {scope} has no {family} fit and the calibration runs could not make one "
                          "(too few complete runs or sizes); give the check more time")
    session.say(f"predicting with {family} fit {scope_fit.id} (v{scope_fit.version}) of {scope}"
                + (f" and kaplan-ns fit {ns_fit.id}" if ns_fit else "; no kaplan-ns fit, curves are not checked"))

    # Check runs: sized to what is left after the final refit, the extrapolation fit, the bootstrap and the picture.
    bootstrap = session.deadline - session.started >= BOOTSTRAP_MIN_SECONDS
    reserve = 2.0 * fit_seconds + 5.0 + (10.0 if bootstrap else 0.0)
    lad, specs, predictions, slice_tokens = _design(session, scope_fit, ns_fit, plan_fit,
                                                    max(0.0, session.remaining() - reserve), artifacts)
    session.check_memory(specs)
    trained = session.train(specs, predictions)
    if not any(r.status == "complete" for r in trained):
        raise CheckFailed("no check run completed: " + "; ".join(sorted({r.error or "?" for r in trained}))[:500])
    points = {r.id: runs_mod.get_points(db, r.id) for r in trained}
    items = _compare(session, trained, points, scope_fit, ns_fit, family, lad, slice_tokens)

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

    plot_path = _picture(session, check, plan, plan_fit, scope_fit, ns_fit, trained, points, items, lad,
                         slice_tokens, artifacts)
    return _store(session, check, plan, plan_fit, scope_fit, items, exponents, new_fits, calibrated, warnings,
                  plot_path)


def _calibrate_if_needed(session: Session, family: str) -> tuple[bool, float]:
    """A calibration ladder and a refit when the scope has no fit of ``family`` yet: (calibrated, the seconds
    one refit took, or FIT_SECONDS when none ran)."""
    db, scope = session.db, session.scope
    if active_fit(db, family, scope) is not None:
        return False, FIT_SECONDS
    training = max(0.0, session.remaining() - 3.0 * FIT_SECONDS)
    session.say(f"scope {scope} has no {family} fit: calibration ladder first "
                f"({training * CALIBRATION_SHARE:.0f} s)")
    calibration_phase(session, training * CALIBRATION_SHARE, get_fit(db, REFERENCE_FIT))
    t0 = time.monotonic()
    refit_scope(session)
    return True, max(time.monotonic() - t0, 1.0)


def _compare(session: Session, trained: Sequence[Run], points: dict[int, list], scope_fit: Fit, ns_fit: Fit | None,
             family: str, lad: CheckLadder, slice_tokens: int | None) -> list[CheckItem]:
    """The check's items: curves, final losses, the early stop, the allocation and the extrapolation."""
    db, scope = session.db, session.scope
    by_role: dict[str, list[Run]] = {}
    for run in trained:
        by_role.setdefault(run.role or "", []).append(run)
    items: list[CheckItem] = []
    measured = [r for r in trained if r.role in ("proxy", "isoflop")]
    for run in measured:
        if run.status != "complete":
            continue
        if ns_fit is not None:
            items.append(compare.curve_item(run, points[run.id], ns_fit))
    for run in measured:
        pred = _scope_prediction(run)
        items.append(compare.final_item(run, pred.final_loss, pred.fit_id))
    for run in by_role.get("early_stop", []):
        pred = run.prediction or Prediction()
        items.append(compare.early_stop_item(run, points[run.id], pred.s_stop_steps, pred.stop_fit_id,
                                             unique_tokens=float(pred.unique_tokens or slice_tokens or 0)))
    proxies = by_role.get("proxy", [])
    iso = by_role.get("isoflop", [])
    middle = proxies[len(proxies) // 2] if proxies else None
    if middle is not None and len(iso) == 2:
        planned_n = lad.planned[len(lad.planned) // 2] if lad.planned else None
        items.append(compare.allocation_item(middle, [iso[0], middle, iso[1]], lad.triple_budget, scope_fit.id,
                                             planned_n=planned_n, law=scope_fit.law))
    scope_runs = runs_mod.list_runs(db, scope=scope, status="complete")
    # The scope fit seeds the extrapolation's starts when it is of the family that item fits.
    same = get_law(scope_fit.law) is get_law(get_law(family).final_law)
    extrapolation, _ = compare.extrapolation_item(family, scope_runs, seed=session.seed, starts=EXTRAPOLATION_STARTS,
                                                  initial=scope_fit.coefficients if same else None)
    items.append(extrapolation)
    return items


def _store(session: Session, check: Check, plan, plan_fit: Fit, scope_fit: Fit, items: list[CheckItem],
           exponents: list[Exponents], new_fits: Sequence[Fit], calibrated: bool, warnings: list[str],
           plot_path: Path | None) -> Check:
    """Store the completed check with its verdict and summary, and say so."""
    db = session.db
    verdict = overall_verdict(items)
    counts = {v: sum(1 for i in items if i.verdict == v) for v in ("pass", "fail", "skip")}
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
        passed=counts["pass"], failed=counts["fail"], skipped=counts["skip"],
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
                f"{counts['skip']} skipped) in {session.elapsed():.0f} s")
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
            found = active_fit(db, name, scope)
            if found is not None:
                out[name] = found
    return [out[name] for name in names if name in out]


# ---------------------------------------------------------------------------------------------- design


def _design(session: Session, scope_fit: Fit, ns_fit: Fit | None, plan_fit: Fit, seconds: float,
            artifacts: str | os.PathLike | None) -> tuple[CheckLadder, list[ProxySpec], list[Prediction], int | None]:
    """The check ladder that fills ``seconds``, with the predictions each run is checked against."""
    from planner.solve import model_for

    assert session.throughput is not None
    model = model_for(scope_fit)
    plan_n = lambda c: float(model.optimum(c)[0])  # noqa: E731
    slicing = session.corpus.tokenizer == "bytes" and ns_fit is not None

    def build(rules: ladder_mod.Rules, u: float) -> CheckLadder:
        lad = ladder_mod.check_ladder(u, plan_n, rules)
        if slicing:
            lad.extra = [_early_stop_spec(session, lad, scope_fit, ns_fit)[0]]
        return lad

    def valid(specs: list[ProxySpec]) -> bool:
        """Three distinct sizes in the IsoFLOP triple, and every proxy trained at its own budget."""
        proxies = [s for s in specs if s.role == "proxy"]
        triple = [s.params for s in specs if s.role == "isoflop"] + [proxies[len(proxies) // 2].params]
        measured = [s for s in specs if s.role in ("proxy", "isoflop")]
        return len(set(triple)) == 3 and all(ladder_mod.realizes_budget(s) for s in measured)

    # proxies sized on the N the scope's family counts (total parameters for Chinchilla)
    session.rules = replace(session.rules, counts=get_law(scope_fit.law).conventions.params)
    u, _ = session.size(lambda rules, u: build(rules, u).specs, seconds, valid)
    lad = build(session.rules, u)
    slice_tokens = None
    if slicing:
        spec, slice_tokens, _ = _early_stop_spec(session, lad, scope_fit, ns_fit)
        path = _write_slice(session, slice_tokens, artifacts)
        spec = msgspec.structs.replace(spec, corpus=os.fspath(path), scope=f"{session.scope}+slice{slice_tokens}")
        lad.extra = [spec]
    specs = lad.specs
    budgets = sorted({s.budget_flops for s in lad.proxies})
    session.say(f"check ladder: {len(lad.proxies)} proxies at {', '.join(f'{b:.3g}' for b in budgets)} FLOPs "
                f"(N {', '.join(f'{s.params:.3g}' for s in lad.proxies)}), IsoFLOP triple at "
                f"{lad.triple_budget:.3g}" + (f", early-stop run on {slice_tokens:,} tokens" if slicing else ""))
    predictions = [_predict(session, spec, scope_fit, ns_fit, plan_fit, slice_tokens) for spec in specs]
    return lad, specs, predictions, slice_tokens


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
    that the corpus loader's 5% split puts exactly those bytes in validation."""
    data = session.corpus
    val = math.ceil(unique_tokens / 19)
    while unique_tokens + val - math.ceil(0.05 * (unique_tokens + val)) > unique_tokens:
        val += 1
    while val > 1 and unique_tokens + val - 1 - math.ceil(0.05 * (unique_tokens + val - 1)) == unique_tokens:
        val -= 1
    val = min(val, len(data.val))
    body = np.asarray(data.train[:unique_tokens], dtype=np.uint8).tobytes()
    tail = np.asarray(data.val[:val], dtype=np.uint8).tobytes()
    directory = plot.artifacts_dir(session.db_path) if artifacts is None else Path(artifacts)
    path = directory / "slices" / f"{data.fingerprint[:12]}-{unique_tokens}.txt"
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


def _picture(session: Session, check: Check, plan, plan_fit: Fit, scope_fit: Fit, ns_fit: Fit | None,
             trained: Sequence[Run], points: dict[int, list], items: Sequence[CheckItem], lad: CheckLadder,
             slice_tokens: int | None, artifacts: str | os.PathLike | None) -> Path | None:
    picture = plot.CheckPicture(
        title=(f"check {check.id} of plan {plan.id} ({plan_fit.name or plan_fit.law}, C={plan.compute_flops:.3g}) "
               f"on {session.scope}; predictions from {scope_fit.law} fit {scope_fit.id}"),
        tolerance=compare.FINAL_TOLERANCE)
    for run in trained:
        if run.status != "complete":
            continue
        pts = [p for p in points[run.id] if p.val_loss is not None and p.step > 0]
        pred = _scope_prediction(run)
        if run.role in ("proxy", "isoflop") and pts:
            steps = np.array([p.step for p in pts], dtype=float)
            curve = None
            if ns_fit is not None:
                curve = compare.predict_curve(ns_fit, compare.run_params(ns_fit.law, run), float(run.batch_tokens),
                                              steps)
            picture.curves.append(plot.Curve(
                label=f"{run.role} N={run.n_params:.2g}", role=run.role or "",
                tokens=np.array([p.tokens for p in pts], dtype=float),
                val_loss=np.array([p.val_loss for p in pts], dtype=float),
                predicted_tokens=steps * run.batch_tokens if curve is not None else None,
                predicted_loss=curve, predicted_final=pred.final_loss))
        if run.role in ("proxy", "isoflop") and pred.final_loss and run.final_val_loss:
            picture.finals.append(plot.FinalPoint(label=f"run {run.id}", role=run.role or "",
                                                  predicted=float(pred.final_loss),
                                                  observed=float(run.final_val_loss)))
        if run.role == "early_stop" and pts:
            best = min(pts, key=lambda p: p.val_loss)
            picture.early_stop = plot.EarlyStop(
                steps=np.array([p.step for p in pts], dtype=float),
                val_loss=np.array([p.val_loss for p in pts], dtype=float),
                bound=run.prediction.s_stop_steps if run.prediction else None, best_step=best.step,
                unique_tokens=float(slice_tokens or 0))
    allocation = next((i for i in items if i.kind == "allocation"), None)
    if allocation is not None:
        triple = [r for r in trained if r.id in allocation.run_ids and r.status == "complete"]
        size = lambda r: compare.run_params(scope_fit.law, r)  # noqa: E731
        triple.sort(key=size)
        sizes = np.geomspace(min(size(r) for r in triple) / 2, max(size(r) for r in triple) * 2, 60) \
            if triple else None
        curve = None
        if sizes is not None and not get_law(scope_fit.law).in_steps:  # L(N, D) along the budget's IsoFLOP line
            curve = np.array([compare.predict_final(scope_fit, n, lad.triple_budget / (6.0 * n)) for n in sizes])
        picture.isoflop = plot.IsoFlop(budget=lad.triple_budget, sizes=[size(r) for r in triple],
                                       losses=[r.final_val_loss for r in triple],
                                       planned=float(allocation.predicted or 0.0),
                                       best=allocation.observed, curve_sizes=sizes, curve_losses=curve)
    directory = plot.artifacts_dir(session.db_path) if artifacts is None else Path(artifacts)
    try:
        return plot.draw(picture, directory / f"check-{check.id}.png")
    except (OSError, ValueError) as exc:
        session.say(f"no picture: {exc}")
        return None
