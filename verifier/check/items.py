"""Predictions and single comparisons of measured runs with a fit: the building blocks the check's
experiment (verifier.check.experiment) uses — L(N, D) and L(N, S) of a fit, the eq. 5.7 bound, the N a law
counts for a run, and the extrapolation fit — plus the older fixed-tolerance items, kept for callers that
want a quick relative comparison:

* curve        RMS relative error of the validation curve after warm-up against L(N, S): ≤ 5%.
* final_loss   relative error of the final validation loss against L(N, D): |err| ≤ 5%.
* early_stop   passes unless the best validation step is before half the eq. 5.7 bound.
* allocation   the best size of an IsoFLOP triple against the planned N, within a factor 2.
* extrapolation the law fitted on every run but the largest predicts the largest: |err| ≤ 5%.

A check judges by the predictive intervals of verifier.check.experiment, not by these tolerances.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fits import accounting
from fits.fit import Fit
from fits.laws.registry import get_law
from verifier.check.records import CheckItem
from verifier.runs import Run, RunPoint

CURVE_TOLERANCE = 0.05
FINAL_TOLERANCE = 0.05
EARLY_STOP_FRACTION = 0.5
ALLOCATION_TOLERANCE = 1.0
EXTRAPOLATION_TOLERANCE = 0.05

LOSS_UNIT = "nats/token"


def final_law(plan_law: str) -> str:
    """The law family a scope fits final losses with, for a plan made with ``plan_law``."""
    return get_law(plan_law).scope_law


# ---------------------------------------------------------------------------------------------- sizes


def run_params(law: str, run: Run) -> float:
    """N of a run as ``law`` counts it (its Conventions.params: total for Chinchilla, non-embedding for
    Kaplan); runs without a recorded total fall back to non-embedding."""
    n = accounting.law_params(get_law(law).conventions.params, run.n_params, run.params_total)
    return float(n or 0.0)


def runs_params(law: str, runs: Sequence[Run]) -> list[float]:
    """N of several runs as ``law`` counts them, one convention for all (fits.accounting.law_params_column)."""
    out = accounting.law_params_column(get_law(law).conventions.params, [r.n_params for r in runs],
                                       [r.params_total for r in runs])
    return [float(n or 0.0) for n in out]


# ---------------------------------------------------------------------------------------------- predictions


def predict_final(fit: Fit, N: float, D: float, *, steps: int | None = None,
                  batch_tokens: float | None = None) -> float:
    """L(N, D) of a fit; for kaplan-ns fits, the loss after ``steps`` at ``batch_tokens`` (data unlimited)."""
    return get_law(fit.law).final_loss(fit.coefficients, N, D, steps=steps, batch_tokens=batch_tokens)


def predict_curve(ns_fit: Fit, N: float, batch_tokens: float, steps: Sequence[int]) -> np.ndarray:
    """L(N, S) of a kaplan-ns fit along a run's steps (batch-adjusted as the fit was, eq. 5.4)."""
    s = np.asarray(steps, dtype=float)
    loss = get_law(ns_fit.law).loss_after_steps(ns_fit.coefficients, N, s, batch_tokens)
    return np.asarray(loss, dtype=float).reshape(s.shape)


def s_stop_steps(final_fit: Fit, ns_fit: Fit, N: float, unique_tokens: float, batch_tokens: float) -> float | None:
    """Kaplan eq. 5.7 in optimizer steps at ``batch_tokens``: S_c/[L(N, D) − L(N, ∞)]^(1/α_S), converted
    from S_min with eq. 5.4. L(N, D) − L(N, ∞) comes from the scope's final-loss fit (for the Chinchilla form
    it is exactly its data term B/D^β), S_c and α_S from its kaplan-ns fit."""
    penalty = get_law(final_fit.law).data_penalty(final_fit.coefficients, N, unique_tokens)
    if penalty is None:
        return None
    l_nd, excess = penalty
    if not excess > 0:
        return None
    return get_law(ns_fit.law).stop_steps(ns_fit.coefficients, excess, l_nd, batch_tokens)


# ---------------------------------------------------------------------------------------------- items


def _label(run: Run) -> str:
    return f"run {run.id} ({run.role or 'run'}): N={run.n_params:.3g}, D={run.tokens:.3g}"


def curve_item(run: Run, points: Sequence[RunPoint], ns_fit: Fit, *, tolerance: float = CURVE_TOLERANCE) -> CheckItem:
    """(a) the validation curve after warm-up against L(N, S) of the scope's kaplan-ns fit."""
    warm = run.warmup_steps or 0
    measured = [(p.step, p.val_loss) for p in points if p.val_loss is not None and p.step > warm]
    base = {"kind": "curve", "name": _label(run), "metric": "RMS relative error over the curve after warm-up",
            "tolerance": tolerance, "rule": f"rms <= {tolerance:g}", "unit": LOSS_UNIT, "run_ids": [run.id],
            "fit_id": ns_fit.id}
    if len(measured) < 2:
        return CheckItem(**base, predicted=None, observed=None, error=None, verdict="skip",
                         note="fewer than two validation points after warm-up")
    steps = np.array([s for s, _ in measured], dtype=float)
    observed = np.array([v for _, v in measured], dtype=float)
    predicted = predict_curve(ns_fit, run_params(ns_fit.law, run), float(run.batch_tokens), steps)
    rel = observed / predicted - 1.0
    rms = float(np.sqrt(np.mean(rel**2)))
    return CheckItem(**base, predicted=float(predicted[-1]), observed=float(observed[-1]), error=rms,
                     verdict="pass" if rms <= tolerance else "fail",
                     note=f"{len(measured)} points; worst {float(np.max(np.abs(rel))):.1%} at step "
                          f"{int(steps[int(np.argmax(np.abs(rel)))])}; predicted/observed shown at the last step")


def final_item(run: Run, predicted: float | None, fit_id: int | None, *, tolerance: float = FINAL_TOLERANCE,
               note: str = "") -> CheckItem:
    """(b) the final validation loss against the L(N, D) recorded before the run trained."""
    base = {"kind": "final_loss", "name": _label(run), "metric": "relative error (observed - predicted)/predicted",
            "tolerance": tolerance, "rule": f"|error| <= {tolerance:g}", "unit": LOSS_UNIT, "run_ids": [run.id],
            "fit_id": fit_id}
    observed = run.final_val_loss
    if predicted is None or observed is None:
        return CheckItem(**base, predicted=predicted, observed=observed, error=None, verdict="skip",
                         note=note or "no prediction or no measurement")
    err = observed / predicted - 1.0
    return CheckItem(**base, predicted=predicted, observed=observed, error=err,
                     verdict="pass" if abs(err) <= tolerance else "fail", note=note)


OVERFIT_RISE = 1.001
"""A slice overfit when its last validation loss stands more than this factor above its best."""


class ValidationCurve(NamedTuple):
    best_step: int
    best: float
    last_step: int
    last: float
    overfit: bool


def validation_curve(points: Sequence[RunPoint]) -> ValidationCurve | None:
    """Where a run's validation loss was lowest and where it ended; None when it has no validation points."""
    vals = [(p.step, p.val_loss) for p in points if p.val_loss is not None]
    if not vals:
        return None
    best_step, best = min(vals, key=lambda v: v[1])
    last_step, last = vals[-1]
    return ValidationCurve(best_step, best, last_step, last, last > best * OVERFIT_RISE)


def early_stop_item(run: Run, points: Sequence[RunPoint], bound: float | None, fit_id: int | None, *,
                    unique_tokens: float, fraction: float = EARLY_STOP_FRACTION) -> CheckItem:
    """(c) the step of the best validation loss on a slice small enough to overfit, against eq. 5.7."""
    base = {"kind": "early_stop", "name": f"{_label(run)}, {unique_tokens:.3g} unique tokens",
            "metric": "observed best-validation step / S_stop lower bound", "tolerance": fraction,
            "rule": f"ratio >= {fraction:g} (eq. 5.7 is a rough lower bound)", "unit": "steps",
            "run_ids": [run.id], "fit_id": fit_id}
    curve = validation_curve(points)
    if bound is None or curve is None:
        return CheckItem(**base, predicted=bound, observed=None, error=None, verdict="skip",
                         note="no bound (the scope has no kaplan-ns fit or no data term) or no validation points")
    best_step, best, last_step, last, overfit = curve
    ratio = best_step / bound
    note = (f"validation loss rose from {best:.4f} at step {best_step} to {last:.4f} at step {last_step}"
            if overfit else f"no overfitting within {last_step} steps: the bound is not contradicted")
    if not overfit and last_step < fraction * bound:
        return CheckItem(**base, predicted=bound, observed=float(best_step), error=ratio, verdict="skip",
                         note=note + ", but the run ended before the bound could be tested")
    return CheckItem(**base, predicted=bound, observed=float(best_step), error=ratio,
                     verdict="pass" if ratio >= fraction else "fail", note=note)


@dataclass
class Vertex:
    n_best: float
    method: str


def isoflop_vertex(sizes: Sequence[float], losses: Sequence[float]) -> Vertex:
    """Best size along an IsoFLOP profile: a parabola in ln N through the points when it opens upwards
    (vertex kept within a factor 2 beyond the sizes tried), else the size with the lowest loss."""
    x = np.log(np.asarray(sizes, dtype=float))
    y = np.asarray(losses, dtype=float)
    i_min = int(np.argmin(y))
    if len(x) >= 3:
        a, b, _ = np.polyfit(x, y, 2)
        if a > 0:
            v = -b / (2 * a)
            lo, hi = x.min() - math.log(2.0), x.max() + math.log(2.0)
            return Vertex(float(math.exp(min(max(v, lo), hi))), "parabola vertex in ln N")
    return Vertex(float(sizes[i_min]), "lowest loss of the triple (profile not convex)")


def allocation_item(planned: Run, triple: Sequence[Run], budget: float, fit_id: int | None, *,
                    planned_n: float | None = None, tolerance: float = ALLOCATION_TOLERANCE,
                    law: str | None = None) -> CheckItem:
    """(d) the planned N against the best of the IsoFLOP triple (N/2, N, 2N) at one budget, N counted as
    ``law`` counts it (non-embedding without one).

    ``planned_n`` is the plan's N when it differs from the middle run's (a plan below the smallest triple
    the proxies allow); by default the middle run's N."""
    size = (lambda r: run_params(law, r)) if law is not None else (lambda r: float(r.n_params))
    base = {"kind": "allocation", "name": f"IsoFLOP triple at C={budget:.3g} FLOPs",
            "metric": "log2(best N / planned N)", "tolerance": tolerance,
            "rule": f"|error| <= {tolerance:g} (within a factor {2**tolerance:g})", "unit": "parameters",
            "run_ids": [r.id for r in triple], "fit_id": fit_id}
    done = [r for r in triple if r.status == "complete" and r.final_val_loss is not None]
    if len(done) < 3 or planned not in done:
        return CheckItem(**base, predicted=float(planned.n_params or 0) or None, observed=None, error=None,
                         verdict="skip", note=f"{len(done)} of the 3 runs completed")
    done.sort(key=size)
    vertex = isoflop_vertex([size(r) for r in done], [r.final_val_loss for r in done])
    target = float(planned_n if planned_n is not None else size(planned))
    err = math.log2(vertex.n_best / target)
    losses = ", ".join(f"N={size(r):.3g}: {r.final_val_loss:.4f}" for r in done)
    note = f"{vertex.method}; {losses}"
    if abs(target / size(planned) - 1) > 0.25:
        note += f"; the plan's N is below the smallest triple the proxies allow, centred on {size(planned):.3g}"
    return CheckItem(**base, predicted=target, observed=vertex.n_best, error=err,
                     verdict="pass" if abs(err) <= tolerance else "fail", note=note)


def spread(grid: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` rows of a start grid drawn without replacement (seeded): a cheap cover of the same box."""
    if count >= len(grid):
        return grid
    rng = np.random.default_rng(seed)
    return grid[np.sort(rng.choice(len(grid), size=count, replace=False))]


def extrapolation_item(law: str, runs: Sequence[Run], *, tolerance: float = EXTRAPOLATION_TOLERANCE,
                       seed: int = 0, starts: int | None = None,
                       initial: Mapping[str, float] | None = None) -> tuple[CheckItem, Mapping[str, float] | None]:
    """(e) fit ``law`` on every complete run but the largest (by 6·N·D) and predict the largest.

    ``starts`` limits the fit to that many starts of the family's grid (plus ``initial``, e.g. the scope's
    current coefficients); None uses the full grid. Returns the item and the coefficients fitted on the rest
    (None when no fit could be made).
    """
    from fits.fitting import InsufficientData, fit, points_for

    done = sorted((r for r in runs if r.status == "complete" and r.final_val_loss is not None),
                  key=lambda r: 6.0 * r.n_params * r.tokens)
    fit_law = get_law(law).final_law  # final losses are (N, D) points
    sizes = dict(zip([r.id for r in done], runs_params(fit_law, done), strict=True))
    base = {"kind": "extrapolation", "metric": "relative error (observed - predicted)/predicted",
            "tolerance": tolerance, "rule": f"|error| <= {tolerance:g}", "unit": LOSS_UNIT}
    if len(done) < 2:
        return CheckItem(**base, name="largest run", predicted=None, observed=None, error=None, verdict="skip",
                         note="fewer than two complete runs"), None
    largest, rest = done[-1], done[:-1]
    name = f"{_label(largest)} from the {len(rest)} smaller runs ({fit_law})"
    columns = {"N": [sizes[r.id] for r in rest], "D": [r.tokens for r in rest],
               "loss": [r.final_val_loss for r in rest]}
    options: dict = {}
    try:
        if starts is not None:
            form, _ = points_for(fit_law, columns)
            grid = spread(form.grid(), starts, seed)
            if initial is not None:
                with contextlib.suppress(KeyError, ValueError):
                    grid = np.vstack([form.to_theta(dict(initial)), grid])
            options["starts"] = grid
        result = fit(fit_law, columns, seed=seed, predict=[(sizes[largest.id], float(largest.tokens))],
                     **options)
    except (InsufficientData, FloatingPointError, ValueError) as exc:
        return CheckItem(**base, name=name, predicted=None, observed=largest.final_val_loss, error=None,
                         verdict="skip", run_ids=[largest.id], note=f"no fit: {exc}"), None
    predicted = float(next(iter(result.derived.values())))
    err = largest.final_val_loss / predicted - 1.0
    note = "; ".join([", ".join(f"{k}={v:.4g}" for k, v in result.coefficients.items()), *result.warnings[:2]])
    return CheckItem(**base, name=name, predicted=predicted, observed=largest.final_val_loss, error=err,
                     verdict="pass" if abs(err) <= tolerance else "fail", run_ids=[largest.id],
                     note=note), result.coefficients


def bootstrap_exponents(law: str, runs: Sequence[Run], coefficients: Mapping[str, float], budget: float, *,
                        resamples: int, seed: int = 0) -> dict[str, list[float]]:
    """95% bootstrap intervals of a final-loss family's reported exponents (Chinchilla: alpha, beta and the
    allocation exponent a = beta/(alpha+beta)) and of N_opt at ``budget``, refitting resamples of the runs'
    final losses from ``coefficients`` (the full-data optimum)."""
    from fits.fitting import points_for
    from fits.fitting.bootstrap import bootstrap, percentile_interval

    family = get_law(law)
    done = [r for r in runs if r.status == "complete" and r.final_val_loss is not None]
    columns = {"N": runs_params(law, done), "D": [r.tokens for r in done],
               "loss": [r.final_val_loss for r in done]}
    form, points = points_for(law, columns)
    theta0 = form.to_theta(dict(coefficients))[None, :]
    samples = bootstrap(form, points, theta0, resamples, seed=seed, bounds=form.bounds(points))
    coefs = [form.to_coefficients(t) for t in samples.theta]
    values = [family.exponents(c) for c in coefs]
    with np.errstate(all="ignore"):
        n_opt = np.array([form.n_opt(c, budget) for c in coefs], dtype=float)
    out = {k: percentile_interval(np.array([v[k] for v in values])) for k in values[0]} if values else {}
    return {**out, "n_opt": percentile_interval(n_opt)}
