"""Law forms chosen by backtest, and predictive intervals that say how sure a prediction is.

``fit_auto(N, D, loss, ...)`` fits every candidate family (the registered families with a VarPro structure,
fits.fitting.linear_forms, or the ones named) to (N, D, loss) points and

1. screens outliers once, with the first candidate (fits.fitting.outliers), and leaves them out of every
   candidate's fit, backtest and bootstrap (``keep_outliers=True`` keeps them all);
2. scores each candidate by a rolling-origin backtest: fit on the points below a compute cut, predict the
   ones above it, for cuts at several compute quantiles; the score is the mean over cuts of the median
   absolute relative error. The candidate with the best score is chosen, never the best in-sample objective
   (a more flexible form always wins that);
3. bootstraps the competitive candidates over runs (the ``group`` column; each point its own run without it),
   warm-started from the full-data optimum;
4. checks identifiability (coefficients and N_opt whose interval spans more than a factor 10) and
   misspecification (backtest errors that keep one sign beyond what noise and coefficient uncertainty
   explain; competitive forms that disagree beyond their intervals at the extrapolation target).

``predict_interval(auto, N, D, interval, of="run")`` gives, for each target, the chosen form's prediction and a
central interval combining, in log space: the residual noise of one run (``of="run"``, the loss a new run will
measure; ``of="mean"`` leaves it out: the law's expected loss), the chosen form's bootstrap spread times a
calibration factor, the spread between the forms the backtest cannot tell apart (weighted by how far behind the
chosen one each is), and when misspecification is flagged the backtest's bias. The calibration factor is
measured on the data's own record: each rolling-origin fold is bootstrapped as the full fit is, and the factor
is the least ≥ 1 that makes the folds' held-out errors fall inside their intervals at the nominal rate
(docs/fitting.md §6). Each term is a standard deviation of ln L; they are independent sources, so their
variances add.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import msgspec
import numpy as np

from fits.errors import BadInput
from fits.fitting.huber import huber
from fits.fitting.outliers import robust_scale, screen
from fits.fitting.varpro import LinearFit, LinearForm, Prior, fit_linear, prior_scale, refit_from
from fits.result import Excluded, Predictive

PRIORS: dict[str, Prior] = {
    # Besiroglu et al. 2024 (Epoch's replication of Hoffmann et al.): α 0.348 (0.317–0.373), β 0.366
    # (0.331–0.415). As a weak prior the widths are three times the published ones: it decides only where
    # the data leave an exponent loose, and E, A, B (which depend on the tokenizer and data) are left free.
    "besiroglu2024": Prior("besiroglu2024", {"alpha": (0.348, 0.05), "beta": (0.366, 0.06)}),
}
CUTS = (0.5, 0.6, 0.7, 0.8)
"""Compute quantiles of the rolling origins: fit below, score above."""
WEIGHT_FLOOR = 0.1
"""Forms whose backtest weight (see ``form_weight``) is at least this are competitive: their spread joins the
interval."""
BOOTSTRAP = 100
OTHER_BOOTSTRAP = 30
FOLD_BOOTSTRAP = 16
"""Bootstrap refits per rolling-origin fold, for the calibration factor and the bias test."""
CALIBRATION_LEVEL = 0.8
"""The probability at which the backtest calibrates the coefficient spread (the CLI's default interval)."""
CALIBRATION_MAX = 20.0
UNDETERMINED_SPAN = 10.0
BIAS_Z = 3.0
"""Backtest bias beyond this many standard errors (noise and coefficient spread) is misspecification."""
NESTED_P = 0.01
"""A richer form that beats the base form in-sample at this significance (a likelihood-ratio test on the
winsorised squared log residuals) means the base form leaves structure in the data: misspecification."""
MIN_TRAIN_EXTRA = 3
"""A backtest fold needs this many points beyond the candidate's coefficient count."""
NOISE_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99)
"""Probabilities at which a fit keeps the quantiles of its absolute residuals (the noise term's tails)."""


class BacktestFold(msgspec.Struct, kw_only=True):
    cut: float
    """Compute (FLOPs) below which the fold fitted."""
    train: int
    test: int
    median_error: float
    """Median |predicted/observed − 1| on the test points."""
    bias: float
    """Mean ln predicted − ln observed on the test points."""
    spread: float
    """Robust root mean square of ln predicted − ln observed on the test points (√(median r² / 0.455): the
    median of a χ²₁ variable is 0.455), bias included."""


class CandidateReport(msgspec.Struct, kw_only=True):
    law: str
    coefficients: dict[str, float]
    objective: float
    """Summed log-Huber objective on all points kept."""
    backtest: float | None
    """Mean over folds of the median absolute relative error on held-out larger-compute points."""
    folds: list[BacktestFold] = []
    competitive: bool = False
    weight: float = 0.0
    """How far the backtest leaves this form in the running against the chosen one (1: not behind it)."""
    chosen: bool = False
    condition: float | None = None
    """Condition number of the refinement's Jacobian at the optimum (scaled coordinates)."""
    intervals: dict[str, list[float]] = {}
    """Bootstrap central interval of each coefficient, at the requested probability."""


class AllocationReport(msgspec.Struct, kw_only=True):
    """Approach 2 (IsoFLOP vertices → N_opt ∝ C^a, fits.fitting.isoflop) next to the chosen form's allocation,
    when the points have IsoFLOP structure; both scored by the same rolling origin over the profiles."""

    method: str
    """The allocation with the better backtest: "approach2" or the chosen form's name."""
    exponent: float
    """Approach 2's a."""
    interval: list[float]
    """Its central interval at the requested probability."""
    law_exponent: float | None
    """The chosen form's d ln N_opt / d ln C at 10× the largest fitted compute."""
    n_opt: list[float]
    """Approach 2's N_opt at 10× the largest fitted compute: [N, low, high]."""
    law_n_opt: float | None
    vertices: list[dict[str, float]]
    """Per profile: budget (FLOPs), N (vertex), low, high (its interval)."""
    backtest: dict[str, float | None]
    """Mean |ln N* error| on later profiles' vertices: {"approach2": ..., <chosen form>: ...}."""


class AutoReport(msgspec.Struct, kw_only=True):
    """What ``fit_auto`` decided and why; the CLI prints it, ``--json`` emits it."""

    law: str
    coefficients: dict[str, float]
    candidates: list[CandidateReport]
    excluded: list[Excluded] = []
    warnings: list[str] = []
    notes: list[str] = []
    n_points: int
    noise: float
    """Robust standard deviation of one run's ln loss about the chosen form."""
    misspecified: bool = False
    calibration: float = 1.0
    """Factor on the chosen form's bootstrap spread that the rolling-origin backtest measured (≥ 1)."""
    allocation: AllocationReport | None = None
    prior: str | None = None
    bootstrap: int = 0
    seconds: float = 0.0


@dataclass
class Candidate:
    law: Any
    form: LinearForm
    fit: LinearFit
    folds: list[BacktestFold] = field(default_factory=list)
    score: float | None = None
    draws: list[dict[str, float]] = field(default_factory=list)
    competitive: bool = False
    weight: float = 0.0
    fold_fits: list[LinearFit] = field(default_factory=list)
    fold_train: list[np.ndarray] = field(default_factory=list)
    """Each fold's training mask over the points kept."""
    fold_errors: list[np.ndarray] = field(default_factory=list)
    """ln predicted − ln observed on each fold's held-out points."""

    def predict(self, c: Mapping[str, float], N: np.ndarray, D: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(self.law.loss(dict(c), N, D), dtype=float)

    def log_draws(self, N: np.ndarray, D: np.ndarray) -> np.ndarray:
        return log_draws(self.law, self.draws, N, D)


def log_draws(law: Any, draws: Sequence[Mapping[str, float]], N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """ln L of each coefficient draw at each (N, D): (draws, points), draws with a non-finite value dropped."""
    if not draws:
        return np.zeros((0, np.size(N)))
    with np.errstate(all="ignore"):
        out = np.array([np.log(np.asarray(law.loss(dict(c), N, D), dtype=float)) for c in draws])
    return out[np.all(np.isfinite(out), axis=1)]


@dataclass
class AutoFit:
    """Everything ``predict_interval`` needs: the candidates with their draws, the noise, the flags."""

    candidates: list[Candidate]
    chosen: Candidate
    report: AutoReport
    misspecification_scale: float = 0.0
    """Extra standard deviation of ln L when misspecified: the chosen form's backtest RMS bias."""
    noise_quantiles: list[float] = field(default_factory=list)
    """The chosen form's |residual| quantiles at NOISE_LEVELS."""


class Prediction(msgspec.Struct, kw_only=True):
    N: float
    D: float
    mean: float
    low: float
    high: float


def z_score(p: float) -> float:
    """The standard normal quantile (statistics.NormalDist: scipy.stats costs half a second to import)."""
    return NormalDist().inv_cdf(p)


def candidate_laws(names: Sequence[str] | None = None) -> list[Any]:
    """The registered families with a VarPro structure (in registry order), or the named ones."""
    from fits.laws.registry import get_law, law_names

    if names is None:
        return [get_law(n) for n in law_names() if getattr(get_law(n), "linear_form", None) is not None]
    laws = [get_law(n) for n in names]
    for law in laws:
        if getattr(law, "linear_form", None) is None:
            ok = ", ".join(x.name for x in candidate_laws())
            raise BadInput(f"{law.name} is not fitted on (N, D, loss) with intervals; use one of {ok}, or auto",
                           field="law")
    return laws


def fit_auto(
    N: Any,
    D: Any,
    loss: Any,
    *,
    group: Any = None,
    laws: Sequence[str] | None = None,
    keep_outliers: bool = False,
    prior: str | None = None,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
    interval: float = 0.8,
) -> AutoFit:
    """Fit the candidate families (all, or ``laws``), pick one by rolling-origin backtest, bootstrap the
    competitive ones; see the module docstring. ``interval`` only sets the coefficient intervals reported."""
    t0 = time.perf_counter()
    N, D, L = (np.asarray(a, dtype=float).ravel() for a in (N, D, loss))
    if not (N.size == D.size == L.size):
        raise BadInput("N, D and loss differ in length", field="data")
    if np.any(~np.isfinite(np.concatenate([N, D, L]))) or np.any(np.concatenate([N, D, L]) <= 0):
        raise BadInput("every N, D and loss must be a finite number > 0", field="data")
    groups = None if group is None else np.asarray(group).ravel()
    chosen_prior = None
    if prior is not None:
        if prior not in PRIORS:
            raise BadInput(f"unknown prior {prior!r}; expected one of {', '.join(PRIORS)}", field="prior")
        chosen_prior = PRIORS[prior]
    families = candidate_laws(laws)
    need = max(len(f.linear_form.amp_names) + len(f.linear_form.phi_names) for f in families)
    if L.size < need + 1:
        raise BadInput(f"{L.size} points, too few for {need} coefficients", field="data")
    if np.unique(N).size < 2 or np.unique(D).size < 2:
        raise BadInput("the points need at least two model sizes and two token counts", field="data")
    warnings: list[str] = []
    notes: list[str] = []

    # 1. Outliers: screened with the first candidate, the same points left out everywhere.
    first = families[0].linear_form
    last: list[LinearFit] = []
    if keep_outliers:
        keep = np.ones(L.size, dtype=bool)
        excluded: list[Excluded] = []
    else:
        def fit_mask(mask: np.ndarray) -> LinearFit:
            fit = fit_linear(first, N[mask], D[mask], L[mask], warm=last[-1] if last else None)
            last.append(fit)
            return fit

        def resid(fit: LinearFit) -> np.ndarray:
            with np.errstate(all="ignore"):
                return np.log(np.asarray(families[0].loss(fit.coefficients, N, D), dtype=float)) - np.log(L)

        _, screened = screen(fit_mask, resid, N, D, L)
        keep, excluded = screened.keep, screened.excluded
        if excluded:
            notes.append(f"{len(excluded)} point(s) excluded as outliers (rows "
                         f"{', '.join(str(e.row) for e in excluded)}); keep_outliers keeps them")
    n, d, l = N[keep], D[keep], L[keep]
    g = None if groups is None else groups[keep]

    # 2. Full fits and backtests.
    cands = []
    for fam in families:
        if fam is families[0] and last and chosen_prior is None:
            fit = last[-1]  # the screen's last fit is this one: the points kept, no prior
        else:
            fit = fit_linear(fam.linear_form, n, d, l, prior=chosen_prior)
        cand = Candidate(law=fam, form=fam.linear_form, fit=fit)
        backtest(cand, n, d, l, chosen_prior)
        cand.score = float(np.mean([f.median_error for f in cand.folds])) if cand.folds else None
        cands.append(cand)
    scored = [c for c in cands if c.score is not None]
    if not scored:
        warnings.append("too few points below the largest compute for a backtest: the lowest objective decided")
        chosen = min(cands, key=lambda c: c.fit.objective)
    else:
        chosen = choose(scored)
    noise = noise_scale(chosen.fit.residuals, chosen.form.k)
    for c in cands:
        c.weight = form_weight(c, chosen, noise)
        c.competitive = c is chosen or c.weight >= WEIGHT_FLOOR

    # 3. Bootstrap over runs: the competitive candidates on all points, the chosen one on each fold.
    rng = np.random.default_rng(seed)
    member = np.unique(g if g is not None else np.arange(l.size), return_inverse=True)[1]
    resamples = group_resamples(member, np.ones(l.size, dtype=bool), bootstrap, rng)
    for c in cands:
        if c.competitive and bootstrap > 0:
            # The other competitive forms' draws only size their own spread in the disagreement check: fewer do.
            c.draws = bootstrap_draws(c.fit, n, d, l, resamples if c is chosen else resamples[:OTHER_BOOTSTRAP],
                                      chosen_prior)
    fold_var = fold_variances(chosen, n, d, l, member, rng, chosen_prior) if bootstrap > 0 else []
    noise_q = noise_quantiles(chosen.fit.residuals, chosen.form.k)

    # 4. Identifiability, prior influence and misspecification.
    q = ((1 - interval) / 2 * 100, (1 + interval) / 2 * 100)
    intervals = {id(c): {k: [float(x) for x in np.percentile([dr[k] for dr in c.draws], q)]
                         for k in c.fit.coefficients} if c.draws else {} for c in cands}
    for k, (lo, hi) in intervals[id(chosen)].items():
        if lo > 0 and hi / lo > UNDETERMINED_SPAN:
            warnings.append(f"undetermined: {chosen.law.name} {k}'s {interval:.0%} interval {lo:.4g}–{hi:.4g} "
                            f"spans a factor {hi / lo:.0f}: the data do not pin it down")
    target = 10.0 * float(np.max(6.0 * n * d))
    if chosen.draws:
        opts = []
        for dr in chosen.draws[:50]:
            try:
                opts.append(chosen.law.optimum(dr, target)[0])
            except (ValueError, ArithmeticError, BadInput):
                continue
        opts_a = np.array([o for o in opts if np.isfinite(o) and o > 0])
        if opts_a.size >= 5:
            lo, hi = np.percentile(opts_a, q)
            if hi / lo > UNDETERMINED_SPAN:
                warnings.append(f"undetermined: N_opt at {target:.3g} FLOPs (10× the largest fitted compute) has an "
                                f"{interval:.0%} interval {lo:.3g}–{hi:.3g}, a factor {hi / lo:.0f}")
    if chosen_prior is not None:
        free = fit_linear(chosen.form, n, d, l)
        for k, (_, sd) in chosen_prior.centres.items():
            if k in free.coefficients and abs(free.coefficients[k] - chosen.fit.coefficients[k]) > 0.5 * sd:
                notes.append(f"the prior {chosen_prior.name}, not the data, decided {k}: "
                             f"{free.coefficients[k]:.4g} without it, {chosen.fit.coefficients[k]:.4g} with it")
    calibration = calibrate(chosen, fold_var, noise_quantile(noise_q, CALIBRATION_LEVEL, noise))
    misspec, mis_scale = misspecification(chosen, cands, n, d, l, noise, fold_var, warnings)
    reports = [CandidateReport(
        law=c.law.name, coefficients=c.fit.coefficients, objective=c.fit.objective, backtest=c.score,
        folds=c.folds, competitive=c.competitive, weight=c.weight, chosen=c is chosen,
        condition=c.fit.jacobian_condition, intervals=intervals[id(c)]) for c in cands]
    if len(cands) > 1:
        notes.append("chose " + chosen.law.name + " by backtest (mean median error over "
                     f"{len(chosen.folds)} rolling origins): "
                     + ", ".join(f"{c.law.name} {c.score:.3%}" if c.score is not None else f"{c.law.name} n/a"
                                 for c in cands))
    if calibration > 1.0:
        notes.append(f"the backtest's held-out errors widen the coefficient spread {calibration:.2f}×")
    alloc, alloc_flag = allocation(chosen, n, d, l, noise, interval, chosen_prior, warnings)
    misspec = misspec or alloc_flag
    report = AutoReport(
        law=chosen.law.name, coefficients=chosen.fit.coefficients, candidates=reports, excluded=excluded,
        warnings=warnings, notes=notes, n_points=int(l.size), noise=noise, misspecified=misspec,
        calibration=calibration, allocation=alloc, prior=prior, bootstrap=bootstrap, seconds=0.0,
    )
    auto = AutoFit(candidates=cands, chosen=chosen, report=report, misspecification_scale=mis_scale,
                   noise_quantiles=noise_q)
    report.seconds = time.perf_counter() - t0
    return auto


def choose(scored: list[Candidate]) -> Candidate:
    """The best backtest score, except that a form with fewer coefficients wins when it is within one
    standard error (fold to fold) of the best: a backtest difference smaller than that is noise, and the
    simpler form extrapolates with less freedom to go wrong."""
    best = min(scored, key=lambda c: c.score)  # type: ignore[arg-type,return-value]
    errs = np.array([f.median_error for f in best.folds])
    se = float(np.std(errs, ddof=1) / math.sqrt(errs.size)) if errs.size > 1 else 0.0
    near = [c for c in scored if c.score <= best.score + se]  # type: ignore[operator]
    return min(near, key=lambda c: (c.form.k, c.score))


def form_weight(cand: Candidate, chosen: Candidate, noise: float) -> float:
    """exp(−½ t²), t the paired backtest deficit of ``cand`` against ``chosen`` in standard errors (fold by
    fold, the same cuts); 1 for a form no worse than the chosen one. A form the folds put consistently behind
    gets no say in the interval; one they cannot separate from the chosen form keeps nearly all of it."""
    if cand is chosen:
        return 1.0
    mine = {f.cut: f.median_error for f in cand.folds}
    pairs = np.array([(mine[f.cut], f.median_error) for f in chosen.folds if f.cut in mine])
    if pairs.shape[0] == 0:
        return 0.0
    diff = pairs[:, 0] - pairs[:, 1]
    deficit = float(diff.mean())
    if deficit <= 0:
        return 1.0
    se = float(np.std(diff, ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else deficit
    # The median error of a fold is itself noisy at the level of one run's noise over √(points held out).
    floor = noise / math.sqrt(max(1, min(f.test for f in chosen.folds)))
    return float(math.exp(-0.5 * (deficit / max(se, 0.25 * floor, 1e-12)) ** 2))


def group_resamples(member: np.ndarray, mask: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` bootstrap index sets over the runs (groups) of the points in ``mask``."""
    runs = np.unique(member[mask])
    by_run = [np.flatnonzero(mask & (member == j)) for j in runs]
    return [np.concatenate([by_run[j] for j in rng.integers(0, runs.size, runs.size)]) for _ in range(count)]


def bootstrap_draws(fit: LinearFit, N: np.ndarray, D: np.ndarray, L: np.ndarray, resamples: Sequence[np.ndarray],
                    prior: Prior | None) -> list[dict[str, float]]:
    """Warm-started refits of ``fit`` on each resample (those that fail are dropped)."""
    scale = prior_scale(fit.residuals)
    draws = []
    for idx in resamples:
        try:
            draws.append(refit_from(fit, N[idx], D[idx], L[idx], prior=prior, scale=scale).coefficients)
        except (ValueError, FloatingPointError):
            continue
    return draws


def fold_variances(cand: Candidate, N: np.ndarray, D: np.ndarray, L: np.ndarray, member: np.ndarray,
                   rng: np.random.Generator, prior: Prior | None) -> list[tuple[np.ndarray, float]]:
    """Per fold of ``cand``: the bootstrap variance of ln L at each held-out point, and of their mean, from
    refits of the fold's own fit on resamples of its training runs: the coefficient spread that fold's
    extrapolation had, measured the way the full fit's is."""
    out = []
    for fit, train in zip(cand.fold_fits, cand.fold_train, strict=True):
        draws = bootstrap_draws(fit, N, D, L, group_resamples(member, train, FOLD_BOOTSTRAP, rng), prior)
        ld = log_draws(cand.law, draws, N[~train], D[~train])
        if ld.shape[0] > 2:
            out.append((np.var(ld, axis=0), float(np.var(ld.mean(axis=1)))))
        else:
            out.append((np.zeros(int((~train).sum())), 0.0))
    return out


def calibrate(cand: Candidate, fold_var: Sequence[tuple[np.ndarray, float]], noise: float) -> float:
    """The least factor k ≥ 1 on the coefficient spread for which the folds' held-out errors fall inside
    their ``CALIBRATION_LEVEL`` intervals (√(noise² + k²·var)) at that rate, each fold weighing the same."""
    if not fold_var or len(fold_var) != len(cand.fold_errors):
        return 1.0
    e = np.concatenate([np.abs(x) for x in cand.fold_errors])
    v = np.concatenate([fv for fv, _ in fold_var])
    w = np.concatenate([np.full(x.size, 1.0 / x.size) for x in cand.fold_errors])
    z = z_score(0.5 + CALIBRATION_LEVEL / 2)

    def covered(k: float) -> float:
        return float(np.sum(w * (e <= z * np.sqrt(noise**2 + k**2 * v))) / w.sum())

    if covered(1.0) >= CALIBRATION_LEVEL:
        return 1.0
    if covered(CALIBRATION_MAX) < CALIBRATION_LEVEL:
        return CALIBRATION_MAX
    lo, hi = 1.0, CALIBRATION_MAX
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if covered(mid) < CALIBRATION_LEVEL else (lo, mid)
    return hi


def backtest(cand: Candidate, N: np.ndarray, D: np.ndarray, L: np.ndarray, prior: Prior | None) -> None:
    """Rolling-origin folds: fit below each compute cut, score above it; sets ``cand``'s folds, their fits,
    training masks and held-out log errors."""
    C = 6.0 * N * D
    k = len(cand.form.amp_names) + len(cand.form.phi_names)
    seen = set()
    for qq in CUTS:
        cut = float(np.quantile(C, qq))
        train = cut >= C
        if train.sum() < k + MIN_TRAIN_EXTRA or (~train).sum() < 1 or cut in seen:
            continue
        if np.unique(N[train]).size < 2 or np.unique(D[train]).size < 2:
            continue
        seen.add(cut)
        try:
            fit = fit_linear(cand.form, N[train], D[train], L[train], prior=prior, starts=2)
        except (ValueError, np.linalg.LinAlgError):
            continue
        pred = cand.predict(fit.coefficients, N[~train], D[~train])
        rel = pred / L[~train] - 1.0
        if not np.all(np.isfinite(rel)):
            continue
        err = np.log(pred / L[~train])
        cand.fold_fits.append(fit)
        cand.fold_train.append(train)
        cand.fold_errors.append(err)
        cand.folds.append(BacktestFold(cut=cut, train=int(train.sum()), test=int((~train).sum()),
                                       median_error=float(np.median(np.abs(rel))), bias=float(np.mean(err)),
                                       spread=float(np.sqrt(np.median(err**2) / 0.455))))


def nested_test(base: Candidate, rich: Candidate) -> tuple[float, float, int]:
    """(F, p, df) of the nested-model F test of ``base`` against a form with more coefficients, on squared
    log residuals winsorised at 3 robust scales of the richer fit (so a few wild points cannot decide it)."""
    from scipy.stats import f as f_dist

    df = rich.form.k - base.form.k
    n = rich.fit.residuals.size
    cap = (3.0 * max(robust_scale(rich.fit.residuals), 1e-12)) ** 2
    rss_b = float(np.sum(np.minimum(base.fit.residuals**2, cap)))
    rss_r = float(np.sum(np.minimum(rich.fit.residuals**2, cap)))
    if n - rich.form.k < 1 or rss_r <= 0:
        return 0.0, 1.0, df
    stat = max(rss_b - rss_r, 0.0) / df / (rss_r / (n - rich.form.k))
    return stat, float(f_dist.sf(stat, df, n - rich.form.k)), df


def misspecification(chosen: Candidate, cands: list[Candidate], N: np.ndarray, D: np.ndarray, L: np.ndarray,
                     noise: float, fold_var: Sequence[tuple[np.ndarray, float]],
                     warnings: list[str]) -> tuple[bool, float]:
    """(flagged, extra log-sd). Three signs: the chosen form's backtest errors keep one sign beyond noise and
    coefficient spread; a richer form beats the base (first) form in-sample beyond chance (both forms then
    count at full weight in the predictions); competitive forms disagree at 10× the largest compute beyond
    their own spreads."""
    flagged = False
    extra = 0.0
    folds = chosen.folds
    if folds:
        biases = np.array([f.bias for f in folds])
        tests = np.array([f.test for f in folds])
        coef = np.array([mv for _, mv in fold_var]) if len(fold_var) == len(folds) else np.zeros(len(folds))
        se = np.sqrt(noise**2 / tests + coef)
        z = biases / np.maximum(se, 1e-12)
        same_sign = np.all(biases > 0) or np.all(biases < 0)
        if same_sign and np.median(np.abs(z)) > BIAS_Z:
            flagged = True
            extra = float(np.sqrt(np.mean(biases**2)))
            warnings.append(
                f"misspecified: {chosen.law.name}'s backtest errors all {'over' if biases[0] > 0 else 'under'}"
                f"-predict the larger-compute points (mean log error {biases.mean():+.4f}, {np.median(np.abs(z)):.1f}"
                " standard errors): intervals widened by the backtest error")
    base = cands[0]
    for rich in cands[1:]:
        if rich.form.k <= base.form.k:
            continue
        stat, p, df = nested_test(base, rich)
        if p < NESTED_P:
            flagged = True
            # The base form is wrong here, and the richer form's bend was found in these data: where the two
            # part beyond the data is the least certain thing, so both count in full.
            for c in (base, rich):
                c.weight, c.competitive = 1.0, True
            warnings.append(f"misspecified: {rich.law.name} fits the points better than {base.law.name} beyond "
                            f"chance (F {stat:.1f} on {df} extra coefficients, p = {p:.2g}): {base.law.name} leaves "
                            "structure in the data; predictions average the two and their intervals include the "
                            "spread between them")
    comp = [c for c in cands if c.competitive and c.draws]
    if len(comp) > 1:
        C = 10.0 * float(np.max(6.0 * N * D))
        try:
            n_t, d_t = chosen.law.optimum(chosen.fit.coefficients, C)
        except (ValueError, ArithmeticError, BadInput):
            n_t, d_t = None, None
        if n_t is not None:
            nt, dt = np.array([n_t]), np.array([d_t])
            means = np.array([float(np.log(c.predict(c.fit.coefficients, nt, dt))[0]) for c in comp])
            sds = np.array([float(np.std(c.log_draws(nt, dt))) if c.draws else 0.0 for c in comp])
            gap = means.max() - means.min()
            if np.isfinite(gap) and gap > 2.0 * math.sqrt(float(np.sum(sds**2)) + 2 * noise**2):
                flagged = True
                warnings.append(
                    f"misspecified: competitive forms ({', '.join(c.law.name for c in comp)}) disagree by "
                    f"{math.expm1(gap):.2%} at {C:.3g} FLOPs, beyond their intervals: intervals include their "
                    "spread, weighted by their backtest")
    return flagged, extra


def dof_factor(n: int, k: int) -> float:
    """√(n / (n − k)): residuals of a fit of k coefficients to n points understate the noise by this."""
    return math.sqrt(n / max(n - k, 1))


def noise_scale(residuals: np.ndarray, k: int) -> float:
    """One run's noise (sd of ln L): the rms of the residuals winsorised at 3 robust scales (a few wild points
    cannot inflate it), corrected for the k coefficients fitted."""
    r = np.asarray(residuals, dtype=float)
    cap = 3.0 * robust_scale(r)
    w = np.clip(r - np.median(r), -cap, cap)
    return float(np.sqrt(np.mean(w**2))) * dof_factor(r.size, k)


def law_slope(law: Any, coefficients: Mapping[str, float], C: float) -> tuple[float, float] | None:
    """(N_opt(C), d ln N_opt / d ln C) of a fitted form, or None where it has no optimum there."""
    try:
        n0 = float(law.optimum(dict(coefficients), C / 2)[0])
        n1 = float(law.optimum(dict(coefficients), C * 2)[0])
        n_c = float(law.optimum(dict(coefficients), C)[0])
    except (ValueError, ArithmeticError, BadInput):
        return None
    if not all(np.isfinite(x) and x > 0 for x in (n0, n1, n_c)):
        return None
    return n_c, math.log(n1 / n0) / math.log(4.0)


def allocation(chosen: Candidate, N: np.ndarray, D: np.ndarray, L: np.ndarray, noise: float, interval: float,
               prior: Prior | None, warnings: list[str]) -> tuple[AllocationReport | None, bool]:
    """Approach 2 against the chosen form's allocation, where the points hold at least 3 IsoFLOP profiles with
    a determined vertex: the exponent of each, the rolling-origin backtest of each on the later profiles'
    vertices, and a ``misspecified:`` warning when the chosen form's exponent lies outside Approach 2's
    interval and Approach 2 backtests better. Returns (the report, whether it warned); (None, False) without
    IsoFLOP structure."""
    from fits.fitting import isoflop

    a2 = isoflop.approach2(N, D, L, rel_sigma=max(noise, 1e-4))
    if a2 is None or sum(v.determined for v in a2.vertices) < 3:
        return None, False
    z = z_score(0.5 + interval / 2)

    def form_optimum(mask: np.ndarray):
        if mask.sum() < chosen.form.k + MIN_TRAIN_EXTRA:
            return None
        # Warm-started from the loss backtest's largest fold fit on a subset of these points (never from the
        # full fit, which has seen the vertices being predicted); a full fit where there is none.
        earlier = [f for f, t in zip(chosen.fold_fits, chosen.fold_train, strict=True) if not np.any(t & ~mask)]
        try:
            fit = (refit_from(max(earlier, key=lambda f: f.residuals.size), N[mask], D[mask], L[mask], prior=prior,
                              scale=prior_scale(chosen.fit.residuals), max_nfev=200) if earlier
                   else fit_linear(chosen.form, N[mask], D[mask], L[mask], prior=prior, starts=2))
        except (ValueError, np.linalg.LinAlgError, BadInput):
            return None
        return lambda C: float(chosen.law.optimum(fit.coefficients, C)[0])

    try:
        bt = isoflop.allocation_backtest(N, D, L, rel_sigma=max(noise, 1e-4), fit_and_optimum=form_optimum,
                                         origins=len(CUTS))
        scores: dict[str, float | None] = {"approach2": bt.approach2, chosen.law.name: bt.law}
    except (ValueError, ArithmeticError, BadInput, np.linalg.LinAlgError):
        scores = {"approach2": None, chosen.law.name: None}
    target = 10.0 * float(np.max(6.0 * N * D))
    at = a2.n_opt(target)
    lo_n, hi_n = at.interval(z)
    own = law_slope(chosen.law, chosen.fit.coefficients, target)
    a_lo, a_hi = a2.a - z * a2.se, a2.a + z * a2.se
    b2, bl = scores["approach2"], scores[chosen.law.name]
    method = "approach2" if b2 is not None and (bl is None or b2 < bl) else chosen.law.name
    flagged = own is not None and method == "approach2" and not a_lo <= own[1] <= a_hi
    if flagged:
        warnings.append(
            f"misspecified: the IsoFLOP profiles (Approach 2) give N_opt ∝ C^{a2.a:.3f} "
            f"({interval:.0%}: {a_lo:.3f}–{a_hi:.3f}) and predict their later vertices better than "
            f"{chosen.law.name}, whose allocation exponent is {own[1]:.3f}: allocate by Approach 2 "
            f"(N_opt {at.n:.3g} at {target:.3g} FLOPs, {interval:.0%} {lo_n:.3g}–{hi_n:.3g}, against "
            f"{own[0]:.3g})")
    vertices = []
    for v in a2.vertices:
        if v.determined:
            lo, hi = v.vertex.interval(z) or (v.n, v.n)
            vertices.append({"budget": float(v.budget), "N": float(v.n), "low": float(lo), "high": float(hi)})
    return AllocationReport(
        method=method, exponent=float(a2.a), interval=[float(a_lo), float(a_hi)],
        law_exponent=None if own is None else float(own[1]), n_opt=[float(at.n), float(lo_n), float(hi_n)],
        law_n_opt=None if own is None else float(own[0]), vertices=vertices, backtest=scores), flagged


def noise_quantiles(residuals: np.ndarray, k: int) -> list[float]:
    """|r − median r| at NOISE_LEVELS, corrected for the k coefficients fitted (empty below 10 residuals: too
    few to say anything about the tails)."""
    r = np.asarray(residuals, dtype=float)
    if r.size < 10:
        return []
    return [float(x) * dof_factor(r.size, k) for x in np.quantile(np.abs(r - np.median(r)), NOISE_LEVELS)]


def noise_quantile(quantiles: Sequence[float], interval: float, noise: float) -> float:
    """The noise term's standard deviation at ``interval``: the width that holds that probability of the
    residuals over z (real sets have heavier tails than a Gaussian of their robust scale), else ``noise``."""
    if not quantiles:
        return noise
    z = z_score(0.5 + interval / 2)
    return float(np.interp(interval, NOISE_LEVELS, quantiles)) / z


def predict_interval(auto: AutoFit, N: Any, D: Any, interval: float = 0.8, of: str = "run") -> list[Prediction]:
    """The chosen form's loss at each (N, D), with a central interval of probability ``interval``: for one run
    there (``of="run"``) or for the law's expected loss (``of="mean"``)."""
    chosen = auto.chosen
    return predict_with(chosen.law, chosen.fit.coefficients, predictive_of(auto, draws=None), N, D, interval, of)


def predict_with(law: Any, coefficients: Mapping[str, float], pr: Predictive | None, N: Any, D: Any,
                 interval: float = 0.8, of: str = "run") -> list[Prediction]:
    """Predictions with intervals from a law, its coefficients and what a fit keeps for intervals (``pr``;
    without it the interval is the point). With competitive alternatives in ``pr``, the mean is their
    weighted average with the law's own prediction, in ln L."""
    from fits.laws.registry import get_law

    if not 0.0 < interval < 1.0:
        raise BadInput(f"must lie strictly between 0 and 1, got {interval}", field="interval")
    if of not in ("run", "mean"):
        raise BadInput(f"must be run or mean, got {of!r}", field="of")
    N, D = np.atleast_1d(np.asarray(N, dtype=float)), np.atleast_1d(np.asarray(D, dtype=float))
    with np.errstate(all="ignore"):
        ln_own = np.log(np.asarray(law.loss(dict(coefficients), N, D), dtype=float))
    ln_mean = ln_own
    var = np.zeros(N.size)
    if pr is not None:
        if of == "run":
            var += noise_quantile(pr.noise_quantiles, interval, pr.noise) ** 2
        var += pr.misspecification**2
        ld = log_draws(law, pr.draws, N, D)
        if ld.shape[0] > 2:
            var += pr.calibration**2 * np.var(ld, axis=0)
        if pr.alternatives:
            # The forms the backtest cannot separate, averaged in ln L by their weights (the fit's own form at
            # 1): the mean is the mixture's, and the mixture's spread joins the variance.
            w = np.array([1.0] + [float(a.get("weight", 1.0)) for a in pr.alternatives])
            with np.errstate(all="ignore"):
                others = [np.log(np.asarray(get_law(a["law"]).loss(a["coefficients"], N, D), dtype=float))
                          for a in pr.alternatives]
            forms = np.array([ln_own] + [np.where(np.isfinite(o), o, ln_own) for o in others])
            ln_mean = (w[:, None] * forms).sum(axis=0) / w.sum()
            var += (w[:, None] * (forms - ln_mean) ** 2).sum(axis=0) / w.sum()
    z = z_score(0.5 + interval / 2)
    sd = np.sqrt(var)
    return [Prediction(N=float(a), D=float(b), mean=float(math.exp(m)), low=float(math.exp(m - z * s)),
                       high=float(math.exp(m + z * s)))
            for a, b, m, s in zip(N, D, ln_mean, sd, strict=True)]


def objective_of(form: LinearForm, c: Mapping[str, float], N: np.ndarray, D: np.ndarray, L: np.ndarray) -> float:
    """Summed log-Huber objective of a coefficient set (for comparisons with other fitters)."""
    pred = form.prepare(N, D, L).predict(dict(c), N, D)
    return float(huber(np.log(pred) - np.log(L)).sum())


def fit_family(law: Any, columns: Mapping[str, Any], *, warmup: float | None = None, batch: str = "published",
               **options: Any) -> Any:
    """A family fitted by variable projection only, as a fits.result.FitResult (the ``Law.fit`` of
    chinchilla-e and broken-d): fit_auto with that one candidate; ``bootstrap`` gives 95% intervals."""
    from fits.fitting.bootstrap import percentile_interval
    from fits.laws.base import numeric_columns, reject_options
    from fits.result import Diagnostics, FitResult

    reject_options(law, warmup=warmup, batch=batch)
    cols, group = numeric_columns(columns)
    k = int(options.get("bootstrap", 0) or 0)
    auto = fit_auto(cols["N"], cols["D"], cols["loss"], group=group, laws=[law.name], bootstrap=k,
                    seed=int(options.get("seed", 0) or 0), keep_outliers=bool(options.get("keep_outliers", False)))
    c = auto.chosen
    intervals = {name: percentile_interval(np.array([d[name] for d in c.draws])) for name in c.fit.coefficients} \
        if c.draws else {}
    fold = c.folds[-1] if c.folds else None
    r = c.fit.residuals
    return FitResult(
        law=law.name, coefficients=c.fit.coefficients, objective=c.fit.objective, n_points=auto.report.n_points,
        starts=len(c.form.phi_grid()), seconds=auto.report.seconds, converged=c.fit.success,
        warnings=auto.report.warnings, intervals=intervals, bootstrap=k, seed=int(options.get("seed", 0) or 0),
        message="variable projection: NNLS profile over the exponent grid, then joint log-Huber refinement; "
        + "; ".join(auto.report.notes),
        diagnostics=Diagnostics(residual_rms=float(np.sqrt(np.mean(r**2))), residual_max=float(np.max(np.abs(r))),
                                residual_mean=float(np.mean(r)),
                                heldout_error=None if fold is None else fold.median_error,
                                heldout_points=None if fold is None else fold.test),
        excluded=auto.report.excluded,
    )


def predictive_of(auto: AutoFit, draws: int | None = 100) -> Predictive:
    """What a stored fit keeps of ``auto`` for its predictive intervals (``draws``: how many bootstrap draws;
    None keeps them all)."""
    chosen = auto.chosen
    return Predictive(
        noise=auto.report.noise, noise_quantiles=auto.noise_quantiles, calibration=auto.report.calibration,
        misspecification=auto.misspecification_scale,
        draws=chosen.draws if draws is None else chosen.draws[:draws],
        alternatives=[{"law": c.law.name, "coefficients": c.fit.coefficients, "weight": c.weight}
                      for c in auto.candidates if c.competitive and c is not chosen],
    )


def predict_from_fit(fit: Any, N: Any, D: Any, interval: float = 0.8, of: str = "run") -> list[Prediction]:
    """Predictions with intervals from a stored fit (fits.fit.Fit): its kept draws, noise and alternatives
    when it was fitted with them; otherwise the residual rms as the only spread, which a note must say."""
    from fits.laws.registry import get_law

    law = get_law(fit.law)
    if law.in_steps:
        raise BadInput(f"{fit.law} predicts from steps at a batch, not from N and D", field="fit")
    pr = fit.diagnostics.predictive
    if pr is None:
        pr = Predictive(noise=fit.diagnostics.residual_rms or 0.0)
    return predict_with(law, fit.coefficients, pr, N, D, interval, of)
