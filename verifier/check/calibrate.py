"""Calibration: train an IsoFLOP ladder on a corpus and fit the scope from it.

``calibrate(db, corpus=..., scope=..., budget_minutes=...)`` is the ladder alone, then a refit: what a check
runs first when its corpus scope has no fit yet. It runs in a ``Session`` (verifier.check.session), as a check
does.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import replace

import msgspec
import sqlite_utils

from fits.fit import Fit
from fits.laws.registry import get_law
from fits.store import get_fit
from verifier.check import ladder as ladder_mod
from verifier.check.ladder import ProxySpec
from verifier.check.records import CheckError
from verifier.check.session import REFERENCE_FIT, Session, log_line, open_session
from verifier.runs import FitPrediction, Prediction, Run


def reference_n_opt(fit: Fit) -> Callable[[float], float]:
    """N_opt(C) of a fit through the planner's loss model for its family."""
    from planner.solve import model_for

    model = model_for(fit)
    return lambda c: float(model.optimum(c)[0])


def plan_prediction(fit: Fit, spec: ProxySpec) -> FitPrediction | None:
    """What ``fit`` says the run will reach, recorded for reference (published fits are in another unit)."""
    from verifier.check.items import predict_final

    try:
        n = spec.law_params(get_law(fit.law).conventions.params)  # the N the fit's family counts
        loss = predict_final(fit, n, spec.tokens, steps=spec.steps, batch_tokens=spec.batch_tokens)
    except (ValueError, KeyError, ZeroDivisionError):
        return None
    return FitPrediction(fit_id=fit.id, law=fit.law, final_loss=loss) if math.isfinite(loss) else None


def calibration_phase(session: Session, seconds: float, reference: Fit) -> list[Run]:
    """Train an IsoFLOP grid centred on ``reference``'s allocation that fills ``seconds``."""
    assert session.throughput is not None
    n_opt = reference_n_opt(reference)
    counts = get_law(reference.law).conventions.params  # the grid is centred on the reference's N_opt, in its N
    _, specs = session.size(lambda rules, u: ladder_mod.calibration_ladder(u, n_opt, replace(rules, counts=counts)),
                            seconds, ladder_mod.distinct_grid)
    session.check_memory(specs)
    budgets = sorted({s.budget_flops for s in specs})
    session.say(f"calibration ladder: {len(specs)} runs at budgets {', '.join(f'{b:.3g}' for b in budgets)} FLOPs, "
                f"N {min(s.params for s in specs):.3g}-{max(s.params for s in specs):.3g}")
    predictions = [Prediction(reference=plan_prediction(reference, s)) for s in specs]
    return session.train(specs, predictions)


def refit_scope(session: Session, scope: str | None = None, bootstrap: int = 0) -> list[Fit]:
    """Refit the scope through fits.refit (each new version activated by fits' own rule); returns new fits.
    ``bootstrap`` resamples give each new fit intervals."""
    from fits.refit import refit, untrusted

    t0 = time.monotonic()
    fits = refit(session.db, scope=scope or session.scope, bootstrap=bootstrap)
    for f in fits:
        reasons = untrusted(f)
        status = ("active" if f.active else f"kept inactive ({'; '.join(reasons)})" if reasons
                  else "kept inactive (held-out error worse than the active fit's)")
        heldout = "n/a" if f.heldout_error is None else f"{f.heldout_error:.4f}"
        session.say(f"refit {f.law} v{f.version} of {f.scope} on {f.n_points} points: held-out error {heldout}, "
                    f"{status}")
    session.say(f"refit took {time.monotonic() - t0:.1f} s")
    return fits


class CalibrationResult(msgspec.Struct, kw_only=True):
    scope: str
    run_ids: list[int]
    failed_run_ids: list[int]
    fits: list[Fit]
    """Fits recorded by the refit (id, law, version, held-out error, active)."""
    seconds: float
    budget_seconds: float
    warnings: list[str] = []


def calibrate(db: sqlite_utils.Database, *, corpus: str | os.PathLike | None, scope: str | None,
              budget_minutes: float, device: str = "auto", executor: str = "local", workers: int | None = None,
              memory_gib: float | None = None, seed: int = 0, cluster: str | None = None,
              reference: str = REFERENCE_FIT, report: Callable[[str], None] = log_line,
              precision: str = "auto") -> CalibrationResult:
    """Train a calibration ladder on ``corpus`` under ``scope`` (default: the corpus fingerprint) and refit it."""
    if scope is not None and not scope.strip():
        raise CheckError("must be a non-empty name", field="scope")
    ref = get_fit(db, reference)
    session = open_session(db, corpus=corpus, budget_minutes=budget_minutes, device=device, executor=executor,
                           workers=workers, memory_gib=memory_gib, scope=scope, seed=seed, cluster=cluster,
                           report=report, precision=precision)
    with session.executor:
        reserve = fit_reserve(session.remaining())
        runs = calibration_phase(session, session.remaining() - reserve, ref)
    fits = refit_scope(session)
    done = [r.id for r in runs if r.status == "complete"]
    failed = [r.id for r in runs if r.status != "complete"]
    return CalibrationResult(scope=session.scope, run_ids=done, failed_run_ids=failed, fits=fits,
                             seconds=session.elapsed(), budget_seconds=budget_minutes * 60.0,
                             warnings=session.warnings)


FIT_SECONDS = 20.0
"""Time set aside for one refit of a scope (the Chinchilla grid of 4,500 starts dominates)."""


def fit_reserve(total: float) -> float:
    """Seconds kept back from training for fitting: a refit, bounded to a third of what is left."""
    return min(FIT_SECONDS, total / 3.0)

