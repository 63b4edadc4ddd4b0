"""predict: the loss a given model size and training length should reach under a fit.

The fit's family answers (fits.laws.base.LossModel.predict):
Chinchilla fits: L(N, D), with Muennighoff's effective N', D' when unique_tokens is given.
Kaplan fits (spec §19 Q2, Q4): with steps and batch, L(N, S) with S_min = S/(1 + B_crit(L)/B) solved for L
(Table 3 for the published set); with tokens only, the same at B = B_crit (S = 2·S_min, D = 2·B_crit·S_min).
With finite unique data the eq. 4.3 overfitting excess multiplies the loss. Refitted kaplan-nd fits use
eq. 1.5 directly.
"""

from __future__ import annotations

import numpy as np
import sqlite_utils

from fits.fit import Fit
from planner.context import compute_range, fit_ref, law_for, model_for
from planner.errors import PlanError
from planner.plan import Prediction, non_finite_fields
from planner.request import PredictRequest, validate_predict
from planner.service import resolve_fit
from planner.uncertainty import chinchilla_band, estimate, residual_band


def predict(request: PredictRequest, fit: Fit) -> Prediction:
    """The loss ``fit`` predicts for ``request``; pure, no database. PlanError for input outside the law."""
    validate_predict(request)
    try:
        with np.errstate(all="ignore"):
            return _predict(request, fit)
    except PlanError:
        raise
    except (ArithmeticError, ValueError) as exc:
        raise PlanError("params", f"these inputs lie outside where the fit can be evaluated ({exc})") from exc


def _predict(request: PredictRequest, fit: Fit) -> Prediction:
    law = law_for(fit)
    model = model_for(fit).for_moe(None)  # a MoE fit predicts at the layout it was fitted at
    n = float(request.params)
    batch = None if request.batch_tokens is None else float(request.batch_tokens)
    tokens = float(request.tokens) if request.tokens is not None else float(request.steps) * batch
    unique = None if request.unique_tokens is None else float(request.unique_tokens)
    compute = 6.0 * float(model.active_params(n)) * tokens
    steps = None if request.steps is None else float(request.steps)

    parts = model.predict(n, tokens, steps, batch, unique)
    loss, b_crit = parts.loss, parts.critical_batch
    warnings, assumptions = list(parts.warnings), list(parts.assumptions)
    band = residual_band(fit, loss)
    if parts.band_at is not None:
        rng = compute_range(fit) or law.reference_range
        band_fn = chinchilla_band(fit, fit.coefficients, rng) if rng is not None else None
        if band_fn is not None:
            low, high, method = band_fn(*parts.band_at)
            band = estimate(loss, low, high, method)
    c_min = compute / (1.0 + batch / b_crit) if batch is not None else None
    rng = compute_range(fit)
    if rng is not None and not rng[0] / 10 <= compute <= rng[1] * 10:
        warnings.append(
            f"compute {compute:.3g} FLOPs is more than 10× outside the fit's range "
            f"{rng[0]:.3g}–{rng[1]:.3g}; extrapolating"
        )
    result = Prediction(
        fit=fit_ref(fit),
        params=n,
        tokens=tokens,
        steps=None if request.steps is None else round(float(request.steps)),
        batch_tokens=batch,
        compute_flops=compute,
        predicted_loss=band,
        critical_batch_tokens=b_crit,
        c_min_flops=c_min,
        early_stop_step=parts.early_stop,
        overfitting=parts.overfitting,
        epochs=tokens / unique if unique else 1.0,
        warnings=warnings,
        assumptions=assumptions,
    )
    bad = non_finite_fields(result)
    if bad:
        raise PlanError("params", f"the prediction comes out non-finite ({', '.join(bad)}); inputs outside the law")
    return result


def make_prediction(request: PredictRequest, db: sqlite_utils.Database) -> Prediction:
    """predict() against the fit the request names (default besiroglu2024)."""
    validate_predict(request)
    fit, _ = resolve_fit(db, request.fit, request.law, request.scope)
    return predict(request, fit)
