"""``python -m fits``: fit scaling laws to CSV points and manage the versioned fit store.

A thin layer over the library (fits.fitting, fits.refit, fits.store): every command parses its arguments,
calls one library function and prints the result, as a table for people or as JSON with ``--json``.
Bad input (a missing column, a value that is not a positive number, too few points, an unknown law or fit)
ends with one line on stderr and exit status 2, and nothing is written to the database.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from fits import cliutil
from fits.cliutil import UsageError
from fits.fit import fit_ref

if TYPE_CHECKING:
    import sqlite_utils

    from fits.fit import Fit
    from fits.result import FitResult

DEFAULT_SCOPE = "default"
"""Scope of fits saved from the command line unless --scope says otherwise: a fixed, predictable name, so
repeated saves of the same data become versions of one (law, scope) instead of scattering."""
__all__ = ["UsageError", "build_parser", "main"]


class Parser(cliutil.Parser):
    """argparse with errors on one line (usage stays available through --help)."""


def build_parser() -> Parser:
    from fits.fitting import BATCH_MODES, METHODS
    from fits.laws.registry import fittable_law_names

    parser = Parser(
        prog="python -m fits",
        description="Fit scaling laws to measured points and manage the versioned fit store.",
        epilog="Database: --db PATH, else $SCALEPLAN_DB, else ./scaleplan.db. Run 'python -m fits COMMAND --help'.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    db_opt = Parser(add_help=False)
    cliutil.add_db_option(db_opt)
    json_opt = Parser(add_help=False)
    json_opt.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def command(name: str, *, json: bool = True, **texts: str) -> Parser:
        """A subcommand (help, description, epilog): every one takes --db; all but export print a table or,
        with --json, JSON."""
        return sub.add_parser(name, parents=[db_opt, json_opt] if json else [db_opt], **texts)

    fit = command(
        "fit", help="fit a law family to points from a CSV file",
        description=(
            "Fit a law family to points from a CSV file on the summed Huber (delta=1e-3) loss of log-space "
            "residuals and report coefficients, objective and diagnostics (residuals; held-out error: fit on "
            "all but the largest-compute 15% of points, predict those). robust (default): families linear in "
            "their amplitudes for fixed exponents are fitted by variable projection (exact NNLS on a dense "
            "exponent grid, then a joint refinement), with outliers excluded and named; grid: multi-start "
            "L-BFGS from the full start grid. --law auto or --predict TARGETS.csv: candidate forms chosen by a "
            "rolling-origin backtest and predictions with intervals (docs/fitting.md)."
        ),
        epilog=(
            "CSV columns (a header row; other columns are ignored): chinchilla and kaplan-nd need N,D,loss "
            "(parameters, tokens, nats); kaplan-ns needs N,B,step,loss (B = tokens per step) and reads an "
            "optional warmup column (steps; points with step <= warmup are dropped). Any family reads an "
            "optional group column (a label per run: --bootstrap then resamples whole runs, not points). "
            "Example: python -m fits fit --law chinchilla --data points.csv --bootstrap 1000 --budget 1e21"
        ),
    )
    fit.add_argument(
        "--law",
        required=True,
        choices=("auto", *fittable_law_names()),
        help=f"law family to fit; auto: fit every family with predictive intervals ({', '.join(_candidates())}) "
        "and choose by a rolling-origin backtest (fit the smaller-compute points, predict the larger)",
    )
    fit.add_argument("--data", required=True, metavar="FILE.csv", help="points to fit")
    fit.add_argument(
        "--method",
        choices=METHODS,
        default="robust",
        help="robust (default): coefficients bounded to physically sensible ranges, degenerate fits flagged, "
        "near-equal minima decided by held-out extrapolation; grid: the published procedure unchanged "
        "(unbounded, lowest objective wins)",
    )
    fit.add_argument("--bootstrap", type=cliutil.count, default=0, metavar="K",
                     help="bootstrap resamples for 95%% intervals")
    fit.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    fit.add_argument("--warmup", type=cliutil.nonnegative, metavar="STEPS", help="kaplan-ns: warm-up steps to drop")
    fit.add_argument(
        "--batch",
        choices=BATCH_MODES,
        default="published",
        help="kaplan-ns: convert steps to S_min (eq 5.4) with Kaplan's B_star and alpha_B (published, the "
        "default: GPT-2 BPE tokens) or with ones profiled on these curves and stored with the fit (fitted)",
    )
    fit.add_argument(
        "--predict",
        action="append",
        type=_pair_or_file,
        default=[],
        metavar="N,X|TARGETS.csv",
        help="a CSV file with columns N,D (others ignored): predict the loss at each row with a predictive "
        "interval (bootstrap over runs calibrated on the backtest, one run's noise, the competitive forms "
        "averaged by their backtest weights; --json adds 'predictions' in the file's row order); or N,X: also "
        "report the loss at N and X (D tokens; S_min steps for kaplan-ns) with its coefficient interval; repeatable",
    )
    fit.add_argument("--interval", type=_probability, default=0.8, metavar="P",
                     help="probability of the central predictive interval (default 0.8)")
    fit.add_argument("--keep-outliers", action="store_true",
                     help="fit every point: do not exclude points inconsistent with the rest (default: excluded "
                     "and named in the result)")
    fit.add_argument("--prior", choices=_priors(), help="weak prior on the exponents where the data are few "
                     "(with --law auto or --predict FILE); the result says when the prior, not the data, decided")
    fit.add_argument(
        "--budget",
        action="append",
        type=cliutil.positive,
        default=[],
        metavar="FLOPS",
        help="also report the compute-optimal N at this training budget, with its interval; repeatable",
    )
    fit.add_argument("--save", action="store_true", help="store the fit as the next version of its (law, scope)")
    fit.add_argument("--activate", action="store_true", help="store the fit and make it active (implies --save)")
    fit.add_argument("--scope", default=DEFAULT_SCOPE, help=f"scope to save under (default: {DEFAULT_SCOPE!r})")
    fit.add_argument("--name", help="stable name to save the fit under")

    refit = command(
        "refit", help="refit every scope with new complete runs (cron entry point)",
        description=(
            "For every scope whose complete runs are not yet covered by its latest fit, fit chinchilla and "
            "kaplan-nd on (n_params, tokens, final_val_loss) and kaplan-ns on the validation-loss curves (with "
            "the critical batch profiled on them), store each as a new version with its held-out error, and "
            "activate it when that error is no worse than the active fit's; a fit flagged degenerate or "
            "undetermined (a coefficient the data do not pin down) is stored but not activated. Idempotent; "
            "safe to run from several places at once."
        ),
    )
    refit.add_argument("--scope", help="only this scope")
    refit.add_argument("--activate", action="store_true",
                       help="activate every new fit regardless of held-out error or flags")
    refit.add_argument("--bootstrap", type=cliutil.count, default=0, metavar="K",
                       help="bootstrap resamples for 95%% intervals on each new fit (default 0: none)")

    pred = command(
        "predict", help="predict losses with intervals from a stored fit",
        description="Predict the loss at each row (N, D) of a CSV file from a stored fit, with a central "
        "predictive interval (from the fit's bootstrap draws, noise and competitive forms when it was saved with "
        "--predict FILE or --law auto; else from its residual rms alone).",
    )
    pred.add_argument("--fit", required=True, metavar="ID|NAME", help="fit id, or stable name (its newest version)")
    pred.add_argument("--points", required=True, metavar="TARGETS.csv", help="CSV with columns N,D")
    pred.add_argument("--interval", type=_probability, default=0.8, metavar="P",
                      help="probability of the central interval (default 0.8)")

    lst = command("list", help="list stored fits", description="List stored fits.")
    lst.add_argument("--law", help="only this law family")
    lst.add_argument("--scope", help="only this scope")

    show = command("show", help="show one fit", description="Show one stored fit.")
    show.add_argument("ref", metavar="ID|NAME", help="fit id, or stable name (its newest version)")

    act = command(
        "activate", help="make a fit the active one of its (law, scope)",
        description="Make a fit the active one of its (law, scope); the switch is atomic.",
    )
    act.add_argument("id", metavar="ID", type=int, help="fit id")

    imp = command(
        "import", help="store a fit from a JSON file",
        description=(
            "Store a fit from a JSON object with at least 'law' and 'coefficients' (what 'export' writes); "
            "it becomes the next version of its (law, scope)."
        ),
    )
    imp.add_argument("file", metavar="FILE.json", help="a fit as 'export' writes it")
    imp.add_argument("--scope", help="scope to store under (default: the file's, else 'default')")
    imp.add_argument("--name", help="stable name (default: the file's)")
    imp.add_argument("--activate", action="store_true", help="make the imported fit active")

    exp = command(
        "export", json=False,
        help="print a stored fit as JSON",
        description="Print a stored fit (coefficients, intervals, provenance, diagnostics) as JSON.",
    )
    exp.add_argument("ref", metavar="ID|NAME", help="fit id, or stable name (its newest version)")
    exp.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    cliutil.bind_commands(sub, COMMANDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cliutil.dispatch(args, prefix=f"python -m fits {args.command}: error: ")


# ------------------------------------------------------------------------------------------------ commands


def cmd_fit(args: argparse.Namespace) -> int:
    from fits.csvio import read_columns
    from fits.fitting import fit
    from fits.laws.registry import get_law, laws_with_option

    files = [p for p in args.predict if isinstance(p, str)]
    if args.law == "auto" or files:
        return _fit_predictive(args, files)
    if args.prior:
        raise UsageError("--prior applies with --law auto or --predict FILE", field="prior")
    options = get_law(args.law).fit_options
    for option, given in (("warmup", args.warmup is not None), ("batch", args.batch != "published")):
        if given and option not in options:
            raise UsageError(f"--{option} applies to {', '.join(laws_with_option(option))} only")
    columns = read_columns(args.data, args.law)
    progress = _progress_bar if args.bootstrap and sys.stderr.isatty() else None
    result = fit(
        args.law,
        columns,
        **{name: getattr(args, name) for name in ("warmup", "batch", "method", "bootstrap", "seed", "predict")},
        budgets=args.budget,
        progress=progress,
        # Only families screened for outliers (those with a VarPro structure) take the switch.
        **({"keep_outliers": True} if args.keep_outliers and getattr(get_law(args.law), "linear_form", None)
           else {}),
    )
    if progress is not None:
        print(file=sys.stderr)
    saved = _save(args, result, columns) if (args.save or args.activate) else None
    if args.json:
        out = {"method": args.method, **msgspec.to_builtins(result)}
        if saved is not None:
            out.update(id=saved.id, scope=saved.scope, version=saved.version, active=saved.active)
        _print_json(out)
    else:
        print(format_result(result, args.method, args.data))
        if saved is not None:
            state = "active" if saved.active else "not active"
            print(f"saved: fit {saved.id} ({saved.law}/{saved.scope} v{saved.version}, {state})")
    return 0


def _fit_predictive(args: argparse.Namespace, files: list[str]) -> int:
    """fit --law auto, or any law with --predict FILE: fits.fitting.auto, predictions with intervals."""
    import numpy as np

    from fits.csvio import read_columns, read_targets
    from fits.fitting.auto import BOOTSTRAP, candidate_laws, fit_auto, predict_interval, predictive_of
    from fits.fitting.diagnostics import data_ranges
    from fits.result import FitResult

    pairs = [p for p in args.predict if not isinstance(p, str)]
    for flag, given in (("--budget", args.budget), ("--predict N,X", pairs), ("--warmup", args.warmup is not None),
                        ("--batch", args.batch != "published")):
        if given:
            raise UsageError(f"{flag} does not combine with --law auto or --predict FILE", field="predict")
    laws = None if args.law == "auto" else [args.law]
    families = candidate_laws(laws)
    targets = [read_targets(f) for f in files]  # bad targets are refused before any fitting
    columns = read_columns(args.data, families[0].name)
    auto = fit_auto(columns["N"], columns["D"], columns["loss"], group=columns.get("group"), laws=laws,
                    keep_outliers=args.keep_outliers, prior=args.prior,
                    bootstrap=args.bootstrap or BOOTSTRAP, seed=args.seed, interval=args.interval)
    N = np.concatenate([t[0] for t in targets]) if targets else np.zeros(0)
    D = np.concatenate([t[1] for t in targets]) if targets else np.zeros(0)
    predictions = predict_interval(auto, N, D, args.interval) if N.size else []
    report = auto.report
    # "coefficients" is the Chinchilla form's (E, A, B, alpha, beta): the chosen form's when it has exactly
    # those, else the chinchilla-form candidate's, else (no such candidate) the chosen form's.
    chinchilla_keys = ["E", "A", "B", "alpha", "beta"]
    shown = report.coefficients
    if list(shown) != chinchilla_keys:
        chin = next((c for c in report.candidates if list(c.coefficients) == chinchilla_keys), None)
        shown = chin.coefficients if chin is not None else shown
    saved = None
    if args.save or args.activate:
        chosen = auto.chosen
        r = chosen.fit.residuals
        from fits.result import Diagnostics

        result = FitResult(
            law=report.law, coefficients=report.coefficients, objective=chosen.fit.objective,
            n_points=report.n_points, starts=0, seconds=report.seconds, converged=chosen.fit.success,
            warnings=report.warnings, bootstrap=report.bootstrap, seed=args.seed, message="; ".join(report.notes),
            diagnostics=Diagnostics(
                residual_rms=float(np.sqrt(np.mean(r**2))), residual_max=float(np.max(np.abs(r))),
                residual_mean=float(np.mean(r)),
                heldout_error=chosen.folds[-1].median_error if chosen.folds else None,
                heldout_points=chosen.folds[-1].test if chosen.folds else None,
                compute_range=[float(np.min(6 * columns["N"] * columns["D"])),
                               float(np.max(6 * columns["N"] * columns["D"]))],
                data_ranges=data_ranges(np.asarray(columns["N"], dtype=float), np.asarray(columns["D"], dtype=float)),
                predictive=predictive_of(auto)),
            excluded=report.excluded,
        )
        saved = _save(args, result, columns)
    if args.json:
        out = {"law": report.law, "coefficients": shown, "chosen_coefficients": report.coefficients,
               "interval": args.interval, "predictions": [msgspec.to_builtins(p) for p in predictions],
               **{k: v for k, v in msgspec.to_builtins(report).items() if k not in {"law", "coefficients"}}}
        if saved is not None:
            out.update(id=saved.id, scope=saved.scope, version=saved.version, active=saved.active)
        _print_json(out)
    else:
        print(format_auto(report, predictions, args.interval, args.data))
        if saved is not None:
            print(f"saved: fit {saved.id} ({saved.law}/{saved.scope} v{saved.version}, "
                  f"{'active' if saved.active else 'not active'})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from fits.csvio import read_targets
    from fits.fitting.auto import predict_from_fit
    from fits.store import get_fit

    N, D = read_targets(args.points)
    fit = get_fit(_open(args), fit_ref(args.fit))
    predictions = predict_from_fit(fit, N, D, args.interval)
    if args.json:
        _print_json({"fit": fit.id, "law": fit.law, "coefficients": fit.coefficients, "interval": args.interval,
                     "predictions": [msgspec.to_builtins(p) for p in predictions]})
    else:
        note = "" if fit.diagnostics.predictive is not None else " (residual noise only: fit saved without draws)"
        print(f"fit {fit.id} ({fit.law}/{fit.scope} v{fit.version}): {len(predictions)} predictions, "
              f"{args.interval:.0%} intervals{note}")
        print(format_predictions(predictions, args.interval))
    return 0


def cmd_refit(args: argparse.Namespace) -> int:
    from fits.refit import refit

    db = _open(args)
    fits = refit(db, scope=args.scope, activate=args.activate, bootstrap=args.bootstrap)
    if args.json:
        _print_json([msgspec.to_builtins(f) for f in fits])
    elif not fits:
        print("nothing to refit: every scope's latest fits cover its complete runs")
    else:
        for f in fits:
            held = "n/a" if f.heldout_error is None else f"{f.heldout_error:.2%}"
            state = "activated" if f.active else "stored, not activated"
            print(f"{f.scope}: {f.law} v{f.version} (fit {f.id}) from {len(f.provenance.run_ids)} runs, "
                  f"held-out error {held}: {state}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from fits.store import list_fits

    fits = list_fits(_open(args), law=args.law, scope=args.scope)
    if args.json:
        _print_json([msgspec.to_builtins(f) for f in fits])
        return 0
    rows = [
        [
            str(f.id), f.name or "", f.law, f.scope, str(f.version), "*" if f.active else "", str(f.n_points or ""),
            _num(f.objective), "" if f.heldout_error is None else f"{f.heldout_error:.2%}", (f.created or "")[:19],
        ]
        for f in fits
    ]
    print(_table(["id", "name", "law", "scope", "v", "active", "points", "objective", "held-out", "created"], rows))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from fits.store import get_fit

    fit = get_fit(_open(args), fit_ref(args.ref))
    if args.json:
        _print_json(msgspec.to_builtins(fit))
    else:
        print(format_fit(fit))
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    from fits.store import activate_fit

    fit = activate_fit(_open(args), args.id)
    if args.json:
        _print_json(msgspec.to_builtins(fit))
    else:
        print(f"fit {fit.id} ({fit.name or fit.law}, v{fit.version}) is now the active {fit.law} fit of {fit.scope!r}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from fits.store import save_version

    fit, problems = read_fit_json(args.file, scope=args.scope, name=args.name)
    for p in problems:
        print(f"python -m fits import: warning: {p}", file=sys.stderr)
    saved = save_version(_open(args), fit, activate=args.activate)
    if args.json:
        _print_json(msgspec.to_builtins(saved))
    else:
        state = "active" if saved.active else "not active"
        print(f"imported: fit {saved.id} ({saved.law}/{saved.scope} v{saved.version}, {state})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from fits.store import get_fit

    fit = get_fit(_open(args), fit_ref(args.ref))
    text = msgspec.json.format(msgspec.json.encode(fit), indent=2).decode() + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


# ------------------------------------------------------------------------------------------------ helpers


def read_fit_json(path: str, *, scope: str | None = None, name: str | None = None) -> tuple[Fit, list[str]]:
    """A Fit from a JSON object with at least law and coefficients; also the out-of-range warnings."""
    from fits.fit import Fit, Provenance
    from fits.laws import check_coefficients
    from fits.laws.registry import law_names

    file = Path(path).name
    try:
        raw = msgspec.json.decode(Path(path).read_bytes())
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}", field="file") from None
    except msgspec.DecodeError as exc:
        raise UsageError(f"{file}: not valid JSON: {exc}", field="file") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{file}: expected a JSON object with 'law' and 'coefficients'", field="file")
    law = raw.get("law")
    if law not in law_names():
        raise UsageError(f"{file}: law: {law!r} is not one of {', '.join(law_names())}")
    coefficients = raw.get("coefficients")
    if not isinstance(coefficients, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and _finite(v) for v in coefficients.values()
    ):
        raise UsageError(f"{file}: coefficients: expected an object of finite numbers", field="coefficients")
    problems = check_coefficients(law, coefficients)
    missing = [p for p in problems if p.endswith(": missing")]
    if missing:
        raise UsageError(f"{file}: coefficients: {', '.join(p.split(':')[0] for p in missing)} missing for {law}",
                         field="coefficients")
    try:
        provenance = msgspec.convert(raw.get("provenance") or {"source": "imported"}, Provenance)
        fit = msgspec.convert(
            {
                **{k: v for k, v in raw.items() if k not in {"id", "version", "created", "active", "provenance"}},
                "scope": scope or raw.get("scope") or DEFAULT_SCOPE,
                "name": name if name is not None else raw.get("name"),
                "coefficients": {k: float(v) for k, v in coefficients.items()},
                "provenance": msgspec.to_builtins(provenance),
            },
            Fit,
        )
    except msgspec.ValidationError as exc:
        raise UsageError(f"{file}: {exc}") from None
    if fit.provenance.data is None:
        fit.provenance.data = file
    return fit, [f"{file}: {p}" for p in problems]


def _save(args: argparse.Namespace, result: FitResult, columns: dict[str, Any]) -> Fit:
    from fits.store import save_fitted

    digest = hashlib.sha256(Path(args.data).read_bytes()).hexdigest()[:12]
    return save_fitted(_open(args), result, scope=args.scope, name=args.name,
                       note=f"python -m fits fit --method {args.method}",
                       data=f"{Path(args.data).name} (sha256 {digest})", columns=columns, activate=args.activate)


def _open(args: argparse.Namespace) -> sqlite_utils.Database:
    from fits.store import open_db

    return open_db(args.db)




def _progress_bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\rbootstrap [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    sys.stderr.flush()


def format_result(result: FitResult, method: str, data: str | os.PathLike[str]) -> str:
    status = "converged" if result.converged else "NOT converged"
    lines = [
        f"{result.law} fit of {result.n_points} points from {Path(data).name}: {method}, "
        f"{result.starts:,} starts, {result.seconds:.2f} s, {status}",
        "",
    ]
    header = ["coefficient", "value"]
    if result.intervals:
        header.append(f"95% interval ({result.bootstrap:,} resamples, seed {result.seed})")
    rows = []
    for name, value in result.coefficients.items():
        row = [name, _num(value)]
        if result.intervals:
            lo, hi = result.intervals.get(name, [float("nan")] * 2)
            row.append(f"{_num(lo)} – {_num(hi)}")
        rows.append(row)
    lines.append(_table(header, rows))
    lines.append("")
    d = result.diagnostics
    lines.append(f"objective   {result.objective:.6e}  (sum of Huber, delta 1e-3, of ln pred − ln observed)")
    if d.residual_rms is not None:
        lines.append(
            f"residuals   rms {d.residual_rms:.4g}, max |r| {d.residual_max:.4g}, mean {d.residual_mean:.3g} (log)"
        )
    if d.heldout_error is not None:
        lines.append(
            f"held-out    {d.heldout_error:.2%} mean |relative error| on the {d.heldout_points} largest-compute "
            "points, fitted on the rest"
        )
    for name, value in result.derived.items():
        extra = ""
        if name in result.derived_intervals:
            lo, hi = result.derived_intervals[name]
            extra = f"   95% interval {_num(lo)} – {_num(hi)}"
        lines.append(f"derived     {name} = {_num(value)}{extra}")
    for e in result.excluded:
        lines.append(f"excluded    row {e.row} (N {_num(e.N)}, D {_num(e.D)}, loss {_num(e.loss)}): {e.reason}")
    if result.message:
        lines.append(f"note        {result.message}")
    lines.extend(f"warning     {w}" for w in result.warnings)
    return "\n".join(lines)


def format_predictions(predictions: list[Any], interval: float) -> str:
    rows = [[_num(p.N), _num(p.D), f"{p.mean:.4f}", f"{p.low:.4f} – {p.high:.4f}"] for p in predictions]
    return _table(["N", "D", "loss", f"{interval:.0%} interval"], rows)


def format_auto(report: Any, predictions: list[Any], interval: float, data: str | os.PathLike[str]) -> str:
    lines = [f"{report.law} chosen for {report.n_points} points from {Path(data).name} "
             f"({report.seconds:.2f} s, {report.bootstrap} bootstrap resamples over runs)", ""]
    rows = []
    for c in report.candidates:
        score = "n/a" if c.backtest is None else f"{c.backtest:.3%}"
        mark = "*" if c.chosen else ("~" if c.competitive else "")
        coef = ", ".join(f"{k} {_num(v)}" for k, v in c.coefficients.items())
        rows.append([mark, c.law, score, f"{c.weight:.2f}", f"{c.objective:.4e}", coef])
    lines.append(_table(["", "law", "backtest", "weight", "objective", "coefficients"], rows))
    lines.append("(* chosen, ~ competitive: averaged into the predictions by its weight, its spread joins the "
                 "intervals; backtest: mean over rolling origins of the median |relative error| on larger-compute "
                 "points)")
    a = report.allocation
    if a is not None:
        scores = ", ".join(f"{k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in a.backtest.items())
        own = "" if a.law_exponent is None else f"; {report.law}: C^{a.law_exponent:.3f}, N_opt {_num(a.law_n_opt)}"
        lines += ["", f"allocation  Approach 2 over {len(a.vertices)} IsoFLOP profiles: N_opt ∝ C^{a.exponent:.3f} "
                  f"({interval:.0%} {a.interval[0]:.3f}–{a.interval[1]:.3f}), N_opt {_num(a.n_opt[0])} "
                  f"({_num(a.n_opt[1])}–{_num(a.n_opt[2])}) at 10× the largest compute{own}",
                  f"            backtest on later vertices (mean |ln N* error|): {scores}; better: {a.method}"]
    if predictions:
        lines += ["", format_predictions(predictions, interval)]
    for e in report.excluded:
        lines.append(f"excluded    row {e.row} (N {_num(e.N)}, D {_num(e.D)}, loss {_num(e.loss)}): {e.reason}")
    lines.extend(f"note        {n}" for n in report.notes)
    lines.extend(f"warning     {w}" for w in report.warnings)
    return "\n".join(lines)


def format_fit(fit: Fit) -> str:
    state = "active" if fit.active else "inactive"
    title = f"fit {fit.id}" + (f" {fit.name!r}" if fit.name else "")
    lines = [f"{title}: {fit.law}, scope {fit.scope!r}, version {fit.version}, {state}, created {fit.created}", ""]
    header = ["coefficient", "value"] + (["95% interval"] if fit.intervals else [])
    rows = []
    for name, value in fit.coefficients.items():
        row = [name, _num(value)]
        if fit.intervals:
            iv = fit.intervals.get(name)
            row.append(f"{_num(iv[0])} – {_num(iv[1])}" if iv else "")
        rows.append(row)
    lines += [_table(header, rows), ""]
    p = fit.provenance
    more = " …" if len(p.run_ids) > 12 else ""
    details = [  # (label, text); a detail without text is left out
        ("source", p.source + (f": {p.citation}" if p.citation else "")),
        ("data", p.data),
        ("runs", p.run_ids and f"{len(p.run_ids)} ({', '.join(map(str, p.run_ids[:12]))}{more})"),
        ("note", p.note),
        ("bootstrap", p.bootstrap and f"{p.bootstrap} resamples, seed {p.seed}"),
        ("objective", fit.objective is not None and f"{fit.objective:.6e} over {fit.n_points} points"),
        ("held-out", fit.heldout_error is not None and f"{fit.heldout_error:.2%} mean |relative error|"),
        *(("warning", w) for w in fit.warnings),
    ]
    lines += [f"{label:<12}{text}" for label, text in details if text]
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in [header, *rows])


def _num(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:.6g}"


def _print_json(obj: Any) -> None:
    sys.stdout.write(msgspec.json.encode(obj).decode() + "\n")


def _finite(v: float) -> bool:
    return v == v and v not in (float("inf"), float("-inf"))


def _candidates() -> list[str]:
    from fits.laws.registry import get_law, law_names

    return [n for n in law_names() if getattr(get_law(n), "linear_form", None) is not None]


def _priors() -> list[str]:
    from fits.fitting.auto import PRIORS

    return list(PRIORS)


def _probability(text: str) -> float:
    p = cliutil.number(text)
    if not 0.0 < p < 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability strictly between 0 and 1, got {text!r}")
    return p


def _pair_or_file(text: str) -> tuple[float, float] | str:
    """N,X pair, or the path of a targets CSV (anything that names an existing file or ends in .csv)."""
    if text.lower().endswith(".csv") or (Path(text).is_file() and "," not in text):
        return text
    return _pair(text)


def _pair(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected N,X (two numbers separated by a comma), got {text!r}")
    return (cliutil.positive(parts[0].strip()), cliutil.positive(parts[1].strip()))


COMMANDS: dict[str, cliutil.Command] = {
    "fit": cmd_fit,
    "predict": cmd_predict,
    "refit": cmd_refit,
    "list": cmd_list,
    "show": cmd_show,
    "activate": cmd_activate,
    "import": cmd_import,
    "export": cmd_export,
}


if __name__ == "__main__":
    sys.exit(main())
