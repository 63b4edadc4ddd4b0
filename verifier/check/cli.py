"""``python -m verifier check`` and ``python -m verifier calibrate``: thin commands over verifier.check.orchestrate.

    python -m verifier check --plan 1 --budget-minutes 10
    python -m verifier check --plan 1 --budget-minutes 30 --executor submitit
    python -m verifier check --plan 1 --budget-minutes 30 --control wrong-allocation
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
from verifier.check.records import FAMILY_ALPHA, Check, CheckError, Exponents, family_test


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
        description="Train an experiment of proxy runs for a stored plan on a corpus (IsoFLOP profiles, seed "
                    "repeats, a held-out run at 10x compute, a rule sweep), judge them against predictive "
                    "intervals stored before they trained, refit the scope, and store the check (with a PNG).")
    check.add_argument("--plan", type=int, required=True, metavar="ID", help="id of a stored plan")
    check.add_argument("--out", "--artifacts", dest="artifacts", metavar="DIR",
                       help="directory for the check's PNG (default: $SCALEPLAN_ARTIFACTS, else 'checks' beside "
                            "the database); nothing else is written outside the database and the cache")
    check.add_argument("--fail-on-verdict", action="store_true",
                       help="exit 1 when the verdict is fail (for CI); without it a finished check exits 0")
    check.add_argument("--control", choices=("wrong-allocation",),
                       help="negative control: the same experiment for a plan whose N is 4x off the plan's own "
                            "optimum (its allocation item must fail)")
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
                              cluster=args.cluster, report=_report(args), control=args.control,
                              precision=args.precision)
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


def _value(x: float | None, unit: str) -> str:
    if x is None:
        return "-"
    if unit in ("nats/byte", "nats/token"):
        return f"{x:.4f}"
    if unit in ("exponent", "ln N"):
        return f"{x:+.3f}" if unit == "ln N" else f"{x:.3f}"
    return f"{x:.3g}"


def _interval(item) -> str:
    iv = item.interval80
    if not iv:
        return ""
    return f"[{_value(iv[0], item.unit)}, {_value(iv[1], item.unit)}]"


def format_check(check: Check) -> str:
    """The check as a plain-text table: one line per item (predicted with its pre-registered 80% interval,
    observed, z, verdict, unit), then coverage, power, exponents, the refit and what the check can say."""
    s = check.summary
    lines = [
        f"check {check.id} of plan {check.plan_id} on scope {check.scope}"
        + (f" [negative control: {s.control}]" if s.control else "")
        + f": {str(check.verdict).upper()} ({s.passed} passed, {s.failed} failed, {s.inconclusive} inconclusive, "
        f"{s.skipped} skipped) in {_num(s.wall_seconds, '.0f')} s"
        + (f" of {_num(s.budget_seconds, '.0f')} s" if s.budget_seconds else ""),
    ]
    if s.scope_fit is not None:
        lines.append(f"predictions from {s.scope_fit.law} fit {s.scope_fit.id} (v{s.scope_fit.version}) of the scope"
                     + (", fitted on a calibration ladder this check ran first" if s.calibrated else "")
                     + "; intervals registered before the runs trained")
    header = (f"{'kind':<19} {'item':<52} {'predicted [80% interval]':>30} {'observed':>10} {'z':>6}  "
              f"{'verdict':<12} unit")
    lines += ["", header, "-" * len(header)]
    for item in check.items:
        name = item.name if len(item.name) <= 52 else item.name[:49] + "..."
        pred = f"{_value(item.predicted, item.unit)} {_interval(item)}".strip()
        z = "-" if item.z is None else f"{item.z:+.2f}"
        lines.append(f"{item.kind:<19} {name:<52} {pred:>30} {_value(item.observed, item.unit):>10} {z:>6}  "
                     f"{item.verdict:<12} {item.unit}")
        if item.verdict in ("fail", "inconclusive") and item.note:
            lines.append(f"{'':<19}   ({item.note[:150]})")
    lines.append("")
    if s.coverage80:
        k, n, p = s.coverage80
        lines.append(f"coverage of the 80% intervals: {int(k)}/{int(n)} ({k / n:.0%}); exact binomial test against "
                     f"80%: p = {p:.3g}" if n else "coverage: no registered prediction was observed")
    if s.coverage95:
        k, n, p = s.coverage95
        if n:
            lines.append(f"coverage of the 95% intervals: {int(k)}/{int(n)} ({k / n:.0%}); binomial p = {p:.3g}")
    family = family_test(check.items)
    if family.tested:
        lines.append(f"family-wise test: {family.outside} of {family.tested} items outside their 95% intervals, "
                     f"{len(family.significant)} significant after Holm's correction at {FAMILY_ALPHA:.0%} family-wise"
                     + (f" ({', '.join(i.kind for i in family.significant)})" if family.significant else ""))
    if s.coverage80_low_p is not None:
        lines.append("one-sided binomial test that the 80% intervals cover less than 80%: "
                     f"p = {s.coverage80_low_p:.3g}")
    if s.log_score is not None:
        lines.append(f"log score: {s.log_score:.2f} nats per registered run (mean log predictive density)")
    if s.seed_sigma is not None:
        lines.append(f"run-to-run noise (seed pairs): {s.seed_sigma:.3%} of the loss")
    if s.power is not None:
        lines.append(f"allocation-exponent test: power {s.power:.2f} (computed before training) to reject "
                     f"a={s.power_alternative:.3f} if the plan's a={s.plan_exponent:.3f} holds"
                     + ("" if s.power >= 0.8 else " -> inconclusive: not enough compute"))
    if s.fitted_exponent:
        a, lo, hi = s.fitted_exponent
        lines.append(f"fitted allocation exponent a = {a:.3f} [{lo:.3f}, {hi:.3f}] (95%) vs the plan's "
                     f"{_num(s.plan_exponent, '.3f')}")
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
    if s.limits:
        lines += ["", "what this check can and cannot say:"]
        lines += [f"  - {x}" for x in s.limits]
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
