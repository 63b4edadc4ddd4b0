"""The check's items as an experiment: each prediction a distribution registered before the runs train, each
verdict a statement about where the observation fell in it.

* ``fit_spread``: the scope fit's bootstrap (whole runs resampled) gives, per proxy, the spread of its
  predicted final loss and of ln N_opt at each IsoFLOP budget; ``final_predictive`` adds one run's seed noise.
* ``final_item``: pass inside the 95% interval (|z| <= 1.96), fail outside; "inconclusive" when the fit that
  predicted is flagged degenerate or at a bound.
* ``allocation_items``: an IsoFLOP vertex with its interval per budget, the planned N carried to proxy scale
  against them (``allocation``), the fitted exponent against the plan's with the design's power
  (``allocation_exponent``), and the plan's tokens per parameter (a level, not testable across tokenizers).
* ``extrapolation_item``: the scope's family fitted on the IsoFLOP runs only predicts the held-out run
  (≥ 10× their compute) with the fitter's calibrated interval plus seed noise.
* ``early_stop_item``: eq. 5.7 as a lower bound, and a predicted range above it that stopping far later fails.
* ``sweep_items``: the rule's learning rate and batch against ×1/3, ×3 and ×1/2, ×2 at one budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fits.fit import Fit
from fits.fitting import isoflop
from fits.laws.registry import get_law
from verifier.check import items as compare
from verifier.check import stats
from verifier.check.records import CheckItem
from verifier.runs import Run, RunPoint

LOSS_UNIT = "nats/byte"
"""Proxy losses are per byte of the corpus (the tokenizer of every proxy run)."""
BOOTSTRAP_RESAMPLES = 40
STOP_RANGE = 4.0
"""The predicted best-validation step lies within [S_stop, STOP_RANGE·S_stop]: eq. 5.7 is a lower bound that
Kaplan et al. find roughly attained; a best step far above it means the data overfit much later than the law
says."""
EXTRAPOLATION_BOOTSTRAP = 100
"""Bootstrap refits behind the extrapolation item's interval (the fitter's own default)."""
ALLOCATION_EFFECT = math.log(2.0)
"""The smallest allocation error worth detecting (N 2× off costs about as much loss as the residual scatter of
a good fit); an allocation interval wider than this either side cannot tell."""


def flagged(fit: Fit | None) -> str:
    """Why a fit's predictions cannot decide a verdict ("" when they can)."""
    if fit is None:
        return "no fit"
    d = fit.diagnostics
    if d.degenerate:
        return f"fit {fit.id} is flagged degenerate"
    if d.at_bounds:
        return f"fit {fit.id} has {', '.join(d.at_bounds)} at a bound"
    if not fit.active:
        from fits.refit import untrusted

        reasons = untrusted(fit)
        if reasons:
            return f"fit {fit.id} is undetermined ({'; '.join(reasons)})"
    return ""


# ---------------------------------------------------------------------------------------------- fit spread


@dataclass
class Spread:
    """Bootstrap spread of a scope fit's predictions (standard deviations)."""

    final_sigma: dict[int, float] = field(default_factory=dict)
    """Per key (a spec index): sd of the predicted final loss."""
    ln_n_opt_sigma: dict[float, float] = field(default_factory=dict)
    """Per budget: sd of ln N_opt."""
    note: str = ""


def _robust_sd(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    if len(v) < 3:
        return float("nan")
    lo, hi = np.percentile(v, [15.87, 84.13])
    return float((hi - lo) / 2)


def fit_spread(fit: Fit, runs: Sequence[Run], queries: Mapping[int, tuple[float, float, int, float]],
               budgets: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> Spread:
    """Refit ``resamples`` bootstrap resamples of the scope's runs from the fit's coefficients and measure how
    its predictions move: final loss for each query (N, D, steps, batch tokens) and ln N_opt per budget."""
    from fits.fitting import points_for
    from fits.fitting.bootstrap import bootstrap

    law = get_law(fit.law)
    done = [r for r in runs if r.status == "complete" and r.final_val_loss is not None]
    columns = {"N": compare.runs_params(fit.law, done), "D": [r.tokens for r in done],
               "loss": [r.final_val_loss for r in done]}
    try:
        form, points = points_for(fit.law, columns)
        theta0 = form.to_theta(dict(fit.coefficients))[None, :]
        samples = bootstrap(form, points, theta0, resamples, seed=seed, bounds=form.bounds(points))
    except (ValueError, FloatingPointError, KeyError) as exc:
        return Spread(note=f"no bootstrap of fit {fit.id}: {exc}")
    coefs = [form.to_coefficients(t) for t in samples.theta]
    out = Spread(note=f"{len(coefs)} bootstrap refits of fit {fit.id} on {len(done)} runs")
    with np.errstate(all="ignore"):
        for key, (n, d, steps, batch) in queries.items():
            vals = np.array([law.final_loss(c, n, d, steps=steps, batch_tokens=batch) for c in coefs], dtype=float)
            out.final_sigma[key] = _robust_sd(vals)
        for c_budget in budgets:
            try:
                vals = np.array([form.n_opt(c, c_budget) for c in coefs], dtype=float)
            except (AttributeError, NotImplementedError, ValueError):
                break
            out.ln_n_opt_sigma[c_budget] = _robust_sd(np.log(vals))
    return out


def final_predictive(mean: float, fit_sigma: float | None, rel_noise: float) -> stats.Predictive:
    fs = fit_sigma if fit_sigma is not None and math.isfinite(fit_sigma) else 0.0
    return stats.combine(mean, fs, rel_noise * mean)


# ---------------------------------------------------------------------------------------------- items


def _intervals(p: stats.Predictive) -> dict:
    return {"sigma": p.sigma, "interval80": list(p.interval(0.8)), "interval95": list(p.interval(0.95))}


def _judge(z: float, reason: str, wide: str = "") -> str:
    """Inconclusive when the prediction came from a flagged fit; else fail outside the 95% interval; else pass,
    unless the interval is wider than the effect the item tests (``wide`` says so): then inconclusive."""
    if reason:
        return "inconclusive"
    if abs(z) > stats.Z95:
        return "fail"
    return "inconclusive" if wide else "pass"


def final_item(run: Run, pred: stats.Predictive | None, fit: Fit | None, *, registered: bool) -> CheckItem:
    """A run's final validation loss against its predictive distribution."""
    base = {"kind": "final_loss", "name": compare._label(run), "metric": "z = (observed - predicted) / sigma",
            "tolerance": stats.Z95, "rule": "|z| <= 1.96 (inside the 95% interval)", "unit": LOSS_UNIT,
            "run_ids": [run.id], "fit_id": None if fit is None else fit.id, "registered": registered}
    observed = run.final_val_loss
    if pred is None or observed is None:
        return CheckItem(**base, predicted=None if pred is None else pred.mean, observed=observed, error=None,
                         verdict="skip", note="no prediction or no measurement")
    z = pred.z(observed)
    reason = flagged(fit)
    note = "" if registered else "seed-noise pair: interval set after it trained, left out of the coverage"
    return CheckItem(**base, predicted=pred.mean, observed=observed, error=z, z=z, p_value=stats.p_two_sided(z),
                     verdict=_judge(z, reason),
                     note="; ".join(x for x in (reason, note) if x), **_intervals(pred))


def curve_item(run: Run, points: Sequence[RunPoint], ns_fit: Fit, rel_sigma: float) -> CheckItem:
    """The validation curve after warm-up against L(N, S): RMS of z over its points, each point with the
    relative noise ``rel_sigma`` (seed noise and the final prediction's spread)."""
    warm = run.warmup_steps or 0
    measured = [(p.step, p.val_loss) for p in points if p.val_loss is not None and p.step > warm]
    base = {"kind": "curve", "name": compare._label(run), "metric": "RMS of z over the curve after warm-up",
            "tolerance": 2.0, "rule": "rms z <= 2", "unit": LOSS_UNIT, "run_ids": [run.id], "fit_id": ns_fit.id}
    if len(measured) < 2:
        return CheckItem(**base, predicted=None, observed=None, error=None, verdict="skip",
                         note="fewer than two validation points after warm-up")
    steps = np.array([s for s, _ in measured], dtype=float)
    observed = np.array([v for _, v in measured], dtype=float)
    predicted = compare.predict_curve(ns_fit, compare.run_params(ns_fit.law, run), float(run.batch_tokens), steps)
    z = (observed - predicted) / (rel_sigma * predicted)
    rms = float(np.sqrt(np.mean(z**2)))
    worst, at = float(z[np.argmax(np.abs(z))]), int(steps[int(np.argmax(np.abs(z)))])
    reason = flagged(ns_fit)
    return CheckItem(**base, predicted=float(predicted[-1]), observed=float(observed[-1]), error=rms, z=float(z[-1]),
                     p_value=stats.p_rms(rms, len(measured)),
                     sigma=float(rel_sigma * predicted[-1]),
                     verdict="inconclusive" if reason else ("pass" if rms <= 2.0 else "fail"),
                     note="; ".join(x for x in (reason, f"{len(measured)} points; worst z {worst:+.1f} at step {at}")
                                    if x))


@dataclass
class Allocation:
    items: list[CheckItem]
    vertices: list[isoflop.Vertex]
    exponent: isoflop.Exponent


def allocation_items(profiles: Sequence[Sequence[Run]], budgets: Sequence[float], planned: Sequence[float],
                     law: str, fit: Fit, rel_noise: float, *, ln_n_sigma: Mapping[float, float], plan_a: float | None,
                     alternative: float | None, design_power: float | None, plan_tokens_per_param: float | None,
                     control: str | None, planned_from_fit: bool = True) -> Allocation:
    """Approach 2 on the IsoFLOP profiles: vertices, the planned N against them, the exponent against the plan's.

    ``planned_from_fit`` False: the planned N came from a reference allocation, not from ``fit`` (a flagged fit
    then does not make the allocation inconclusive; ``ln_n_sigma`` carries that reference's spread)."""
    items: list[CheckItem] = []
    vertices: list[isoflop.Vertex] = []
    reason_fit = flagged(fit) if planned_from_fit else ""
    for runs, c, n_plan in zip(profiles, budgets, planned, strict=True):
        done = sorted((r for r in runs if r.status == "complete" and r.final_val_loss is not None),
                      key=lambda r: compare.run_params(law, r))
        sizes = [compare.run_params(law, r) for r in done]
        v = isoflop.vertex(sizes, [r.final_val_loss for r in done], rel_noise)
        vertices.append(v)
        pred_sd = ln_n_sigma.get(c, float("nan"))
        pred_sd = pred_sd if math.isfinite(pred_sd) else 0.0
        base = {"kind": "isoflop_vertex", "name": f"IsoFLOP vertex at C={c:.3g} ({len(done)} sizes "
                f"{min(sizes, default=0):.3g}-{max(sizes, default=0):.3g})", "metric": "z of ln N",
                "tolerance": stats.Z95, "rule": "|z| <= 1.96", "unit": "parameters",
                "run_ids": [r.id for r in done], "fit_id": fit.id}
        if v.ln_n is None or v.se is None:
            items.append(CheckItem(**base, predicted=n_plan, observed=None, error=None, verdict="inconclusive",
                                   note=f"undetermined: {v.reason}"))
            continue
        sd = math.hypot(v.se, pred_sd)
        z = (v.ln_n - math.log(n_plan)) / sd
        why = v.reason or reason_fit
        wide = "interval wider than a factor 2" if stats.Z95 * sd > ALLOCATION_EFFECT else ""
        items.append(CheckItem(**base, predicted=n_plan, observed=v.n, error=z, z=z, p_value=stats.p_two_sided(z),
                               sigma=sd,
                               interval80=[n_plan * math.exp(-stats.Z80 * sd), n_plan * math.exp(stats.Z80 * sd)],
                               interval95=[n_plan * math.exp(-stats.Z95 * sd), n_plan * math.exp(stats.Z95 * sd)],
                               observed_interval=list(v.interval()), verdict=_judge(z, why, wide),
                               registered=True, note=why or wide))
    # The planned N at every budget against the vertices (inverse-variance mean of ln(vertex / planned)).
    good = [(v, c, n) for v, c, n in zip(vertices, budgets, planned, strict=True)
            if v.ln_n is not None and v.se and not v.reason]
    base = {"kind": "allocation", "name": "planned N at proxy scale vs the IsoFLOP vertices"
            + (f" (control: {control})" if control else ""), "metric": "z of mean ln(vertex / planned N)",
            "tolerance": stats.Z95, "rule": "|z| <= 1.96", "unit": "ln N",
            "run_ids": [r.id for runs in profiles for r in runs], "fit_id": fit.id}
    if not good:
        items.append(CheckItem(**base, predicted=0.0, observed=None, error=None, verdict="inconclusive",
                               note="no IsoFLOP profile gave a vertex"))
    else:
        w = [1.0 / (v.se**2 + (ln_n_sigma.get(c) or 0.0) ** 2) for v, c, _ in good]
        d = sum(wi * (v.ln_n - math.log(n)) for wi, (v, _, n) in zip(w, good, strict=True)) / sum(w)
        sd = 1.0 / math.sqrt(sum(w))
        z = d / sd
        why = reason_fit
        wide = "interval wider than a factor 2" if stats.Z95 * sd > ALLOCATION_EFFECT else ""
        verdict = _judge(z, why, wide)
        why = why or (wide if verdict == "inconclusive" else "")
        items.append(CheckItem(**base, predicted=0.0, observed=d, error=z, z=z, p_value=stats.p_two_sided(z), sigma=sd,
                               interval80=[-stats.Z80 * sd, stats.Z80 * sd],
                               interval95=[-stats.Z95 * sd, stats.Z95 * sd],
                               observed_interval=[d - stats.Z95 * sd, d + stats.Z95 * sd], verdict=verdict,
                               registered=True,
                               note=(why + "; " if why else "") + f"best N is {math.exp(d):.2f}× the planned N over "
                                    f"{len(good)} budgets"))
    e = isoflop.exponent(budgets, vertices)
    base = {"kind": "allocation_exponent", "name": "a in N_opt ∝ C^a from the vertices vs the plan's law",
            "metric": "z = (a - a_plan) / se", "tolerance": stats.Z95,
            "rule": "|z| <= 1.96, power >= 0.8 and the other family's a outside the 95% interval",
            "unit": "exponent", "run_ids": [], "fit_id": fit.id}
    if e.a is None or plan_a is None:
        items.append(CheckItem(**base, predicted=plan_a, observed=e.a, error=None, verdict="inconclusive",
                               note=e.reason or "the plan's law gives no allocation exponent"))
    else:
        z = (e.a - plan_a) / e.se
        power_note = (f"design power {design_power:.2f} against a={alternative:.3f}"
                      if design_power is not None and alternative is not None else "no power computed")
        lo, hi = e.interval()
        if abs(z) > stats.Z95:
            verdict, why = "fail", ""
        elif design_power is None or design_power < stats.POWER_REQUIRED:
            verdict, why = "inconclusive", "inconclusive: not enough compute"
        elif alternative is not None and lo <= alternative <= hi:
            # the design had the power, but these vertices (one may have dropped out) did not separate the laws
            verdict, why = "inconclusive", (f"the realised interval [{lo:.3f}, {hi:.3f}] holds both the plan's "
                                            f"a={plan_a:.3f} and a={alternative:.3f}")
        else:
            verdict, why = "pass", ""
        items.append(CheckItem(**base, predicted=plan_a, observed=e.a, error=z, z=z, p_value=stats.p_two_sided(z),
                               sigma=e.se,
                               observed_interval=[lo, hi], verdict=verdict, registered=True,
                               note="; ".join(x for x in (why, power_note) if x)))
    # tokens per parameter: a level, and BPE tokens are not bytes
    top = good[-1] if good else None
    items.append(CheckItem(
        kind="tokens_per_param", name="tokens per parameter at the optimum (the plan's level)",
        predicted=plan_tokens_per_param, observed=None if top is None else top[1] / (6.0 * top[0].n ** 2),
        error=None, metric="D/N", tolerance=1.0, rule="not testable on bytes", unit="tokens/param",
        verdict="skip", fit_id=fit.id,
        note="the plan's D/N counts its tokenizer's tokens; proxies train on bytes, so only the shape of the law "
             "(exponents, the planned N relative to the optimum) transfers; observed: bytes per parameter at the "
             "largest profile's vertex"))
    return Allocation(items=items, vertices=vertices, exponent=e)


def extrapolation_item(law: str, fit_runs: Sequence[Run], heldout: Run, rel_noise: float, *, seed: int,
                       bootstrap: int = EXTRAPOLATION_BOOTSTRAP) -> CheckItem:
    """The scope's family fitted on ``fit_runs`` (at ≤ 1/10 of the held-out compute) predicts ``heldout``.

    The fit and its interval are the fitter's own (fits.fitting.auto with this family alone): a bootstrap over
    runs widened by the calibration factor its rolling-origin backtest measured, and the misspecification term,
    as the interval of the expected loss; one run's seed noise is added. A fit the fitter calls undetermined or
    misspecified makes the item inconclusive, with its reason."""
    from fits.errors import BadInput
    from fits.fitting.auto import fit_auto, predict_interval

    fit_law = get_law(law).final_law
    done = [r for r in fit_runs if r.status == "complete" and r.final_val_loss is not None]
    top = max((6.0 * compare.run_params(fit_law, r) * r.tokens for r in done), default=0.0)
    n_held = compare.run_params(fit_law, heldout)
    span = 6.0 * n_held * heldout.tokens / top if top else float("nan")
    base = {"kind": "extrapolation", "name": f"{compare._label(heldout)}: {span:.1f}× the compute of the "
            f"{len(done)} runs fitted", "metric": "z = (observed - predicted) / sigma", "tolerance": stats.Z95,
            "rule": "|z| <= 1.96", "unit": LOSS_UNIT, "run_ids": [heldout.id]}
    observed = heldout.final_val_loss
    try:
        auto = fit_auto([compare.run_params(fit_law, r) for r in done], [r.tokens for r in done],
                        [r.final_val_loss for r in done], laws=[fit_law], bootstrap=bootstrap, seed=seed)
        (mean,) = predict_interval(auto, n_held, float(heldout.tokens), interval=0.8, of="mean")
    except (BadInput, ValueError, FloatingPointError) as exc:
        return CheckItem(**base, predicted=None, observed=observed, error=None, verdict="skip",
                         note=f"no fit: {exc}"[:300])
    rel_fit = math.log(mean.high / mean.low) / (2.0 * stats.Z80) if mean.low > 0 else 0.0
    pred = stats.Predictive(mean=mean.mean, sigma=mean.mean * math.hypot(rel_fit, rel_noise))
    coefs = ", ".join(f"{k}={v:.4g}" for k, v in auto.report.coefficients.items())
    flags = [w for w in auto.report.warnings if w.startswith(("undetermined", "misspecified"))]
    why = "; ".join(flags)[:300]
    note = "; ".join(x for x in (why, coefs, f"calibration ×{auto.report.calibration:.2f}") if x)
    if observed is None:
        return CheckItem(**base, predicted=pred.mean, observed=None, error=None, verdict="skip",
                         note="the held-out run did not finish", **_intervals(pred))
    z = pred.z(observed)
    return CheckItem(**base, predicted=pred.mean, observed=observed, error=z, z=z, p_value=stats.p_two_sided(z),
                     verdict=_judge(z, why), note=note, **_intervals(pred))


def early_stop_item(run: Run, points: Sequence[RunPoint], bound: float | None, fit: Fit | None, *,
                    unique_tokens: float, final_fit: Fit | None = None) -> CheckItem:
    """The best-validation step on an overfitting slice against [S_stop, STOP_RANGE·S_stop]; the bound comes
    from ``fit`` (L(N, S)) and ``final_fit``'s data term, and a flag on either makes the item inconclusive."""
    base = {"kind": "early_stop", "name": f"{compare._label(run)}, {unique_tokens:.3g} unique tokens",
            "metric": "log(observed best step / S_stop)", "tolerance": math.log(STOP_RANGE),
            "rule": f"S_stop/2 <= best <= {STOP_RANGE:g}·S_stop", "unit": "steps", "run_ids": [run.id],
            "fit_id": None if fit is None else fit.id}
    curve = compare.validation_curve(points)
    if bound is None or curve is None:
        return CheckItem(**base, predicted=bound, observed=None, error=None, verdict="skip",
                         note="no bound (no kaplan-ns fit or no data term) or no validation points")
    best_step, best, last_step, last, overfit = curve
    interval = [0.5 * bound, STOP_RANGE * bound]
    err = math.log(max(best_step, 1) / bound)
    common = {"predicted": bound, "observed": float(best_step), "error": err, "interval95": interval}
    reason = flagged(fit) or (flagged(final_fit) if final_fit is not None else "")
    if best_step < 0.5 * bound:
        return CheckItem(**base, **common, verdict="inconclusive" if reason else "fail",
                         note=reason or f"best at step {best_step}: the slice overfit before the eq. 5.7 lower bound")
    if overfit and best_step > STOP_RANGE * bound:
        return CheckItem(**base, **common, verdict="inconclusive" if reason else "fail",
                         note=reason or f"best at step {best_step}, more than {STOP_RANGE:g}× the predicted stop")
    if not overfit:
        if last_step > STOP_RANGE * bound:
            return CheckItem(**base, **common, verdict="inconclusive" if reason else "fail",
                             note=reason or f"no overfitting within {last_step} steps, {last_step / bound:.1f}× the "
                                            "predicted stop")
        return CheckItem(**base, **common, verdict="inconclusive",
                         note=f"no overfitting within {last_step} steps: the run ended inside the predicted range")
    return CheckItem(**base, **common, verdict="inconclusive" if reason else "pass",
                     note=reason or f"validation loss rose from {best:.4f} at step {best_step} to {last:.4f}")


def sweep_item(kind: str, what: str, rule_run: Run, others: Sequence[tuple[float, Run]],
               rel_noise: float, rule_note: str = "") -> CheckItem:
    """The rule's value against a sweep around it at one budget: fail when a swept value beats the rule's by more
    than the noise of a difference (1.96·√2·σ); the note says where the sweep's best lies (and ``rule_note``
    what the rule gave)."""
    done = [(f, r) for f, r in [(1.0, rule_run), *others] if r.status == "complete" and r.final_val_loss]
    budget = (rule_run.prediction.budget_flops if rule_run.prediction else None) or 0.0
    swept = ", ×".join(f"{f:.3g}" for f, _ in others)
    base = {"kind": kind, "name": f"{what} rule at C={budget:.3g} (×{swept})", "metric": "z of (rule - best) loss",
            "tolerance": stats.Z95, "rule": "best swept value within noise of the rule's", "unit": LOSS_UNIT,
            "run_ids": [r.id for _, r in done]}
    if len(done) < 2 or rule_run not in [r for _, r in done]:
        return CheckItem(**base, predicted=None, observed=None, error=None, verdict="skip", note="sweep incomplete")
    f_best, best = min(done, key=lambda x: x[1].final_val_loss)
    sd = math.sqrt(2.0) * rel_noise * rule_run.final_val_loss
    z = (rule_run.final_val_loss - best.final_val_loss) / sd if sd > 0 else 0.0
    losses = ", ".join(f"×{f:.3g}: {r.final_val_loss:.4f}" for f, r in sorted(done, key=lambda x: x[0]))
    where = "at the rule's value" if f_best == 1.0 else f"at ×{f_best:.3g} the rule's value"
    x = np.log([f for f, _ in done])
    if len(set(x.tolist())) >= 3:
        y = np.array([r.final_val_loss for _, r in done])
        c2, c1, _ = np.polyfit(x, y, 2)
        if c2 > 0:
            where += f"; parabola vertex at ×{math.exp(-c1 / (2 * c2)):.2g}"
    return CheckItem(**base, predicted=rule_run.final_val_loss, observed=best.final_val_loss, error=z, z=z, sigma=sd,
                     p_value=stats.p_one_sided(z),
                     verdict="fail" if z > stats.Z95 else "pass",
                     note="; ".join(x for x in (f"observed optimum {where} ({losses})", rule_note) if x))
