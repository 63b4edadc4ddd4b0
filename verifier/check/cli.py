"""``python -m verifier check`` and ``python -m verifier calibrate``: thin commands over verifier.check.orchestrate.

    python -m verifier check --plan 1 --budget-minutes 10
    python -m verifier check --plan 1 --budget-minutes 30 --executor submitit
    python -m verifier calibrate --corpus ./text/ --scope mytext --budget-minutes 15

Exit status: 0 when the check ran (whatever its verdict; with --fail-on-verdict, 1 for a "fail" verdict),
1 when it started but could not finish, 2 for bad input (one line on stderr; nothing is left marked complete).
Outputs: the check in the database, its PNG under --out (else beside the database); the corpus slices an
early-stop run trains on go to the corpus cache, so nothing lands in the working directory unless asked.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator

import msgspec

from fits import cliutil
from fits.cliutil import EXIT_FAILED, EXIT_OK
from verifier.check.records import Check, CheckError, Exponents


def _common(p: argparse.ArgumentParser) -> None:
    # numbers are checked by the library, which names the field (budget_minutes, memory)
    p.add_argument("--budget-minutes", type=cliutil.number, default=10.0,
                   help="wall-clock time for the whole command, training and fitting included (10)")
    p.add_argument("--corpus", help="text file or directory (default: the Python standard library, as bytes)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (auto)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="what the proxies train in; auto: bf16 on CUDA and on CPUs with AMX or AVX512-BF16, "
                        "else fp32 (the ladder is sized with the throughput measured in it)")
    p.add_argument("--executor", choices=("local", "submitit", "inline"), default="local",
                   help="local: a worker process per free core or GPU; submitit: a Slurm job per run "
                        "(the 'cluster' extra); inline: one run after another in this process")
    p.add_argument("--cluster", help="submitit cluster: slurm, local or debug (default: Slurm when present)")
    p.add_argument("--workers", type=int, help="parallel runs (default: one per free core or GPU)")
    p.add_argument("--memory", type=cliutil.number, dest="memory_gib", metavar="GIB",
                   help="memory one training worker may use (default: what the device has free)")
    p.add_argument("--seed", type=int, default=0, help="seed for the runs' initialisation and data order (0)")
    cliutil.add_db_option(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def add_parsers(sub) -> None:
    """Add ``check`` and ``calibrate`` to ``python -m verifier``'s subcommands (their functions are
    ``cmd_check`` and ``cmd_calibrate``, in verifier.cli's table)."""
    check = sub.add_parser(
        "check", help="check a plan's law and rules on a corpus with proxy runs, then refit",
        description="Train proxy runs for a stored plan on a corpus, compare them with the predictions of the "
                    "corpus scope's fit, refit the scope, and store the check (with a PNG).")
    check.add_argument("--plan", type=int, required=True, metavar="ID", help="id of a stored plan")
    check.add_argument("--out", "--artifacts", dest="artifacts", metavar="DIR",
                       help="directory for the check's PNG (default: $SCALEPLAN_ARTIFACTS, else 'checks' beside "
                            "the database); nothing else is written outside the database and the cache")
    check.add_argument("--fail-on-verdict", action="store_true",
                       help="exit 1 when the verdict is fail (for CI); without it a finished check exits 0")
    _common(check)

    cal = sub.add_parser(
        "calibrate", help="train a calibration ladder on a corpus and fit its scope",
        description="Train an IsoFLOP ladder of small runs on a corpus and refit the scope from them.")
    cal.add_argument("--scope", help="name to record the runs and fits under (default: corpus fingerprint)")
    _common(cal)


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """While a command runs, SIGTERM raises KeyboardInterrupt, so workers are stopped and unfinished runs are
    marked failed instead of being left 'running'."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave the default
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report(args: argparse.Namespace):
    if args.quiet:
        return lambda message: None
    return lambda message: print(message, file=sys.stderr, flush=True)


def cmd_check(args: argparse.Namespace) -> int:
    from fits.store import open_db
    from planner.errors import PlanNotFound
    from verifier.check.orchestrate import CheckFailed, run_check

    db = open_db(args.db)
    try:
        with _stop_on_sigterm():
            check = run_check(db, args.plan, budget_minutes=args.budget_minutes, device=args.device,
                              corpus=args.corpus, executor=args.executor, workers=args.workers,
                              memory_gib=args.memory_gib, artifacts=args.artifacts, seed=args.seed,
                              cluster=args.cluster, report=_report(args), precision=args.precision)
    except PlanNotFound as exc:
        raise CheckError(f"{exc} (list plans with python -m planner list)", field="plan") from None
    except CheckFailed as exc:
        return cliutil.report(exc, prefix="error: check could not finish: ")
    finally:
        db.conn.close()
    print(msgspec.json.encode(check).decode() if args.json else format_check(check))
    return verdict_exit(check, args.fail_on_verdict)


def verdict_exit(check: Check, fail_on_verdict: bool) -> int:
    """The exit status of a finished check: 1 for a failed verdict under --fail-on-verdict, else 0."""
    return EXIT_FAILED if fail_on_verdict and check.verdict == "fail" else EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from fits.store import open_db
    from verifier.check.calibrate import calibrate

    db = open_db(args.db)
    try:
        with _stop_on_sigterm():
            result = calibrate(db, corpus=args.corpus, scope=args.scope, budget_minutes=args.budget_minutes,
                               device=args.device, executor=args.executor, workers=args.workers,
                               memory_gib=args.memory_gib, seed=args.seed, cluster=args.cluster,
                               report=_report(args), precision=args.precision)
    finally:
        db.conn.close()
    if args.json:
        print(msgspec.json.encode(result).decode())
        return EXIT_OK
    print(f"calibrated scope {result.scope}: {len(result.run_ids)} runs complete"
          + (f", {len(result.failed_run_ids)} failed" if result.failed_run_ids else "")
          + f" in {result.seconds:.0f} s of {result.budget_seconds:.0f} s")
    for warning in result.warnings:
        print(f"warning: {warning}")
    if not result.fits:
        print("no new fit (too few complete runs or sizes for a fit)")
        return EXIT_FAILED if not result.run_ids else EXIT_OK
    for f in result.fits:
        coefficients = ", ".join(f"{k}={v:.4g}" for k, v in f.coefficients.items())
        heldout = "n/a" if f.heldout_error is None else f"{f.heldout_error:.4f}"
        print(f"  {f.law} v{f.version} (fit {f.id}{', active' if f.active else ''}): {coefficients}; "
              f"held-out error {heldout}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- table


def _num(x: float | None, fmt: str = ".4g") -> str:
    return "-" if x is None else format(x, fmt)


def format_check(check: Check) -> str:
    """The check as a plain-text table: one line per item, then the exponents and the refit."""
    s = check.summary
    lines = [
        f"check {check.id} of plan {check.plan_id} on scope {check.scope}: {str(check.verdict).upper()} "
        f"({s.passed} passed, {s.failed} failed, {s.skipped} skipped) in {_num(s.wall_seconds, '.0f')} s"
        + (f" of {_num(s.budget_seconds, '.0f')} s" if s.budget_seconds else ""),
    ]
    if s.scope_fit is not None:
        lines.append(f"predictions from {s.scope_fit.law} fit {s.scope_fit.id} (v{s.scope_fit.version}) of the scope"
                     + (", fitted on a calibration ladder this check ran first" if s.calibrated else ""))
    header = f"{'kind':<13} {'item':<58} {'predicted':>10} {'observed':>10} {'error':>9}  {'rule':<22} verdict"
    lines += ["", header, "-" * len(header)]
    for item in check.items:
        name = item.name if len(item.name) <= 58 else item.name[:55] + "..."
        fmt = ".4f" if item.unit == "nats/token" else ".4g"
        lines.append(f"{item.kind:<13} {name:<58} {_num(item.predicted, fmt):>10} {_num(item.observed, fmt):>10} "
                     f"{_num(item.error, '+.4f'):>9}  {item.rule[:22]:<22} {item.verdict}")
    exps = ([s.plan_exponents] if s.plan_exponents else []) + list(s.scope_exponents)
    if exps:
        lines += ["", "exponents (scope fits beside the plan's fit):"]
        for e in exps:
            lines.append("  " + _exponent_line(e, check, plan=e is s.plan_exponents))
    if s.refits:
        for r in s.refits:
            held = "n/a (too few points to hold any out)" if r.heldout_error is None else f"{r.heldout_error:.4f}"
            lines.append(f"refit: {r.fit.law} v{r.fit.version} (fit {r.fit.id}) on {r.n_points} points, held-out "
                         f"error {held}, {'active' if r.active else 'not activated'}")
    else:
        lines.append("refit: no new fit (no new runs, or too few for a fit)")
    for w in s.warnings:
        lines.append(f"warning: {w}")
    if check.plot_path:
        lines.append(f"plot: {check.plot_path}")
    return "\n".join(lines)


def _exponent_line(e: Exponents, check: Check, *, plan: bool) -> str:
    who = f"{'plan fit' if plan else 'scope fit'} {e.fit.name or e.fit.id} ({e.fit.law}"
    who += f" v{e.fit.version})" if e.fit.version else ")"
    parts = []
    for key, value in e.values.items():
        interval = e.intervals.get(key)
        text = f"{key}={value:.3f}"
        if interval and len(interval) == 2:
            text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
        parts.append(text)
    budget = check.summary.plan_budget_flops
    if e.n_opt is not None and budget:
        text = f"N_opt(C={budget:.3g})={e.n_opt:.3g}"
        if e.n_opt_interval:
            text += f" [{e.n_opt_interval[0]:.3g}, {e.n_opt_interval[1]:.3g}]"
        parts.append(text)
    if e.n_opt_transfer is not None:
        parts.append(f"plan N_opt with this allocation exponent={e.n_opt_transfer:.3g}")
    return f"{who}: " + "; ".join(parts)


__all__ = ["CheckError", "add_parsers", "cmd_calibrate", "cmd_check", "format_check"]
