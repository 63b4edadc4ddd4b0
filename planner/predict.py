"""predict: the loss a given model size and training length should reach under a fit.

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
from fits.laws import kaplan2020 as k20
from fits.laws import repeated
from planner.chinchilla_plan import PUBLISHED_COMPUTE_RANGE as CHINCHILLA_RANGE
from planner.chinchilla_plan import ChinchillaModel
from planner.context import compute_range, fit_ref, model_for
from planner.errors import PlanError
from planner.kaplan_plan import KaplanNDModel, KaplanNSModel
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
    model = model_for(fit)
    n = float(request.params)
    batch = None if request.batch_tokens is None else float(request.batch_tokens)
    tokens = float(request.tokens) if request.tokens is not None else float(request.steps) * batch
    unique = None if request.unique_tokens is None else float(request.unique_tokens)
    compute = 6.0 * n * tokens
    warnings: list[str] = []
    assumptions: list[str] = []
    overfitting = None
    early_stop = None

    if isinstance(model, ChinchillaModel):
        loss = float(model.loss_nd(n, tokens, unique))
        band_fn = chinchilla_band(fit, model.c, compute_range(fit) or CHINCHILLA_RANGE)
        if band_fn is None:
            band = residual_band(fit, loss)
        else:
            n_eff, d_eff = n, tokens
            if unique is not None:
                n_eff = float(repeated.effective_params(n, repeated.unique_params(n, unique, model.c)))
                d_eff = float(repeated.effective_data(tokens, unique))
            low, high, method = band_fn(n_eff, d_eff)
            band = estimate(loss, low, high, method)
        assumptions.append("Chinchilla L(N, D)" + (" at Muennighoff's effective N', D'" if unique else ""))
        b_crit = float(k20.b_crit(loss, **k20.batch_coefficients(fit.coefficients)))
    elif isinstance(model, KaplanNDModel):
        loss = float(model.loss(n, compute, unique))
        band = residual_band(fit, loss)
        b_crit = float(k20.b_crit(loss, **model.batch))
        assumptions.append("L(N, D) of eq. 1.5 (early-stopped loss on D tokens)")
    else:
        ns = k20.ns_coefficients(fit.coefficients)
        bc = k20.batch_coefficients(fit.coefficients)
        if request.steps is not None:
            loss = float(k20.loss_after_steps(n, float(request.steps), batch, **ns, **bc))
            assumptions.append("L(N, S) with S_min = S/(1 + B_crit(L)/B), eqs. 1.6, 5.4 (spec §19 Q4)")
        else:
            loss = float(KaplanNSModel(fit.coefficients).loss(n, compute))
            assumptions.append("L(N, S) at B = B_crit (S = 2·S_min, D = 2·B_crit·S_min), eqs. 1.6, 5.3")
        try:
            nd = k20.nd_coefficients(fit.coefficients)
        except ValueError:
            nd = None
        if nd is not None:
            data = unique if unique is not None else tokens
            overfitting = float(k20.overfitting(n, data, **nd))
            if unique is not None:
                loss *= 1.0 + overfitting
                assumptions.append("finite unique data: loss × (1 + δL), eq. 4.3")
            if overfitting > 0.02:
                warnings.append(f"overfitting risk: δL = {overfitting:.3f} > 0.02 (eq. 4.3)")
            s_stop = float(k20.s_stop(n, data, **nd))
            at = batch if batch is not None else float(k20.b_crit(loss, **bc))
            stop = float(k20.steps_at_batch(s_stop, at, loss, **bc))
            early_stop = round(stop) if stop < 1e15 else None
        band = residual_band(fit, loss)
        b_crit = float(k20.b_crit(loss, **bc))
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
        early_stop_step=early_stop,
        overfitting=overfitting,
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
