"""The refit job: turn finished training runs into new fit versions, and activate the ones that earn it.

For every scope whose complete runs differ from those its latest fit of a family was made from, fit every
fittable family (fits.laws.registry) the runs can feed:
  - families fitted on (N, D, loss) ("chinchilla", "kaplan-nd") on (N, tokens, final_val_loss) of the
    scope's complete runs, N counted as the family's conventions say (params_total for a law of all
    parameters when every run records it, n_params otherwise), and
  - families fitted on curves (N, B, step, loss) ("kaplan-ns") on the runs' validation-loss curves
    (run_points after warm-up), when they span enough sizes, with the family's refit options (kaplan-ns
    profiles the critical batch of eq 5.4 on those curves, kaplan_fit.profile_batch: Kaplan's B_star and
    alpha_B are in GPT-2 BPE tokens and do not carry over to another tokenizer),
record each as the next version of its (law, scope) with its held-out error and the run ids it was made from,
and make it active when its held-out error is no worse than the active fit's (or when asked to). A fit flagged
degenerate or undetermined (a coefficient the data do not pin down: too few distinct sizes or token counts, or
a bootstrap interval spanning more than a factor UNDETERMINED_SPAN) is recorded but never activated, not even
as a scope's first fit, unless ``activate=True`` (``--activate``) says so: a plan from it would look as sure as
one from a well-posed fit.

Safe to run from several places at once: fitting happens outside any lock, then the check "has a fit of
exactly these runs been recorded meanwhile?" and the write happen in one BEGIN IMMEDIATE transaction, so a
second runner sees the first one's fit and records nothing. Running it again without new runs does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlite_utils

from fits.accounting import law_params_column
from fits.fit import Fit, Provenance
from fits.fitting import fit as fit_points
from fits.fitting.diagnostics import heldout_split, relative_error
from fits.fitting.engine import InsufficientData
from fits.laws.registry import fittable_law_names, get_law
from fits.measurements import MeasuredRun, complete_runs, measured_scopes, validation_curves
from fits.store import activate_fit, active_fit, from_json, get_fit, point_rows, save_version, transaction

MIN_RUNS_FINAL = 5
"""chinchilla, kaplan-nd: one run per coefficient at least; the fit also needs two distinct sizes and token
counts."""
FINAL_COLUMNS = ("N", "D", "loss")
CURVE_COLUMNS = ("N", "B", "step", "loss")
MIN_SIZES_NS = 3
"""Distinct model sizes for a curve family (kaplan-ns): with two, the N term interpolates exactly between two
curves and its exponent is checked by nothing."""
UNDETERMINED_SPAN = 10.0
"""A coefficient whose 95% interval spans more than this factor is not determined by the data (the same
threshold as fits.fitting.auto's identifiability warning)."""
METHOD = "robust"
SEED = 0


@dataclass
class Job:
    """The data one (law, scope) fit would be made from."""

    law: str
    scope: str
    columns: dict[str, np.ndarray]
    run_ids: list[int]


def refit(
    db: sqlite_utils.Database, scope: str | None = None, activate: bool = False, bootstrap: int = 0
) -> list[Fit]:
    """Fit every (law, scope) with runs newer than its latest fit; returns the fits recorded (newest state).

    ``activate=True`` activates every new fit regardless of held-out error; ``bootstrap`` resamples give each
    new fit 95% intervals.
    """
    written: list[Fit] = []
    for s in _scopes(db, scope):
        for job in _jobs(db, s):
            if _covered(db, job):
                continue
            try:
                options = dict(get_law(job.law).refit_options)
                result = fit_points(job.law, job.columns, method=METHOD, seed=SEED, bootstrap=bootstrap, **options)
            except InsufficientData:
                continue
            record = Fit.from_result(
                result,
                scope=job.scope,
                provenance=Provenance(
                    source="fitted",
                    note=f"refit ({METHOD}) of {len(job.run_ids)} runs"
                    + (f", {bootstrap} bootstrap resamples of whole runs" if bootstrap else ""),
                    data=f"runs of scope {job.scope}",
                    run_ids=job.run_ids,
                    seed=SEED,
                    bootstrap=bootstrap,
                ),
            )
            with transaction(db):
                if _covered(db, job):  # another runner recorded these runs while we were fitting
                    continue
                saved = save_version(db, record, points=point_rows(job.columns, text=()))  # group: run ids
                if activate or (not untrusted(saved) and _earns_activation(db, saved, job)):
                    activate_fit(db, saved.id)
                written.append(get_fit(db, saved.id))
    return written


def _scopes(db: sqlite_utils.Database, scope: str | None) -> list[str]:
    return [scope] if scope is not None else measured_scopes(db)


def _jobs(db: sqlite_utils.Database, scope: str) -> list[Job]:
    runs = complete_runs(db, scope)
    jobs = []
    ok = [r for r in runs if _positive(r.n_params, r.tokens, r.final_val_loss)]
    if len(ok) >= MIN_RUNS_FINAL:
        for name in _laws_on(FINAL_COLUMNS):
            # each family on the N its coefficients count (Chinchilla: all parameters; Kaplan: non-embedding)
            n = law_params_column(get_law(name).conventions.params, [r.n_params for r in ok],
                                  [r.params_total for r in ok])
            columns = {
                "N": np.array(n, dtype=float),
                "D": np.array([r.tokens for r in ok], dtype=float),
                "loss": np.array([r.final_val_loss for r in ok], dtype=float),
            }
            jobs.append(Job(law=name, scope=scope, columns=columns, run_ids=[r.id for r in ok]))
    curve_laws = _laws_on(CURVE_COLUMNS)
    for name in curve_laws:
        curves = _curve_data(db, [r for r in runs if _positive(r.n_params, r.batch_tokens)],
                             get_law(name).conventions.params)
        if curves is not None:
            columns, used = curves
            jobs.append(Job(law=name, scope=scope, columns=columns, run_ids=used))
    return jobs


def _laws_on(columns: tuple[str, ...]) -> list[str]:
    """Fittable families whose input columns are exactly these."""
    return [name for name in fittable_law_names()
            if tuple(get_law(name).fit_columns) == columns and getattr(get_law(name), "in_refit", True)]


def _curve_data(
    db: sqlite_utils.Database, runs: list[MeasuredRun], counts: str = "non-embedding"
) -> tuple[dict[str, np.ndarray], list[int]] | None:
    """(N, B, step, loss, group) columns of the runs' validation curves after warm-up, and the runs used; N as
    a law counting ``counts`` parameters sees it."""
    sizes = law_params_column(counts, [r.n_params for r in runs], [r.params_total for r in runs])
    law_n = {r.id: n for r, n in zip(runs, sizes, strict=True)}
    by_id = {r.id: r for r in runs}
    if not by_id:
        return None
    rows = [
        p
        for p in validation_curves(db, list(by_id))
        if _positive(p.step, p.val_loss) and p.step > (by_id[p.run_id].warmup_steps or 0)
    ]
    used = sorted({p.run_id for p in rows})
    if len({law_n[i] for i in used}) < MIN_SIZES_NS:
        return None
    columns = {
        "N": np.array([law_n[p.run_id] for p in rows], dtype=float),
        "B": np.array([by_id[p.run_id].batch_tokens for p in rows], dtype=float),
        "step": np.array([p.step for p in rows], dtype=float),
        "loss": np.array([p.val_loss for p in rows], dtype=float),
        "group": np.array([p.run_id for p in rows], dtype=float),  # the bootstrap resamples runs
    }
    return columns, used


def _positive(*values: Any) -> bool:
    return all(v is not None and np.isfinite(v) and v > 0 for v in values)


def _covered(db: sqlite_utils.Database, job: Job) -> bool:
    """Whether the latest fit of (law, scope) was made from exactly these runs (a complete run is final)."""
    row = db.execute(
        "SELECT provenance FROM fits WHERE law = ? AND scope = ? ORDER BY version DESC LIMIT 1",
        [job.law, job.scope],
    ).fetchone()
    return row is not None and sorted(from_json(row[0], Provenance).run_ids) == job.run_ids


def untrusted(fit: Fit) -> list[str]:
    """Why a fit must not become active on its own: degenerate, or a coefficient the data leave undetermined."""
    reasons = []
    if fit.diagnostics.degenerate:
        reasons.append("degenerate")
    reasons += [w for w in fit.warnings if "not determined" in w or w.startswith("undetermined")]
    for name, bounds in fit.intervals.items():
        if len(bounds) == 2 and bounds[0] > 0 and bounds[1] / bounds[0] > UNDETERMINED_SPAN:
            reasons.append(f"{name}'s interval spans a factor {bounds[1] / bounds[0]:.0f}")
    return reasons


def _earns_activation(db: sqlite_utils.Database, new: Fit, job: Job) -> bool:
    """No active fit yet, or a held-out error no worse than the active fit's.

    A fit without a stored held-out error (a published or imported set) is scored on the new fit's held-out
    points, which it was not fitted on.
    """
    current = active_fit(db, new.law, new.scope)
    if current is None:
        return True
    if new.heldout_error is None:
        return False
    reference = current.heldout_error
    if reference is None:
        reference = _error_on_heldout(current, job)
    return reference is not None and new.heldout_error <= reference


def _error_on_heldout(current: Fit, job: Job) -> float | None:
    # points as the current fit's own predictions see them (kaplan-ns: steps converted with its B_star, alpha_B)
    form, points = get_law(job.law).points_for(job.columns, coefficients=current.coefficients)
    split = heldout_split(points, form.k)
    if split is None:
        return None
    try:
        return relative_error(form, current.coefficients, points.take(split[1]))
    except (KeyError, TypeError, ValueError):
        return None
