"""Predictions from a fit for measured runs: the building blocks the check's experiment
(verifier.check.experiment) judges with — L(N, D) and L(N, S) of a fit, the eq. 5.7 bound, the N a law counts
for a run, where a validation curve was lowest, and bootstrap intervals of a scope's exponents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from fits import accounting
from fits.fit import Fit
from fits.laws.registry import get_law
from verifier.runs import Run, RunPoint


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
