"""How fast is the full 4,500-start Chinchilla fit, against one scipy L-BFGS-B run per start and the
``chinchilla`` package (0.2.0), on Epoch's 240 points; and how long do 1,000 bootstrap refits take.

    python bench/fit_speed.py                 # scipy on a 10% sample of starts, chinchilla on 243 starts
    python bench/fit_speed.py --full          # every one of the 4,500 starts for both (slow: many minutes)

Ours is timed end to end through the command line (``python -m fits fit ...`` as a subprocess, so Python
start-up and imports count). The scipy loop minimises the same objective (sum of Huber(δ=1e-3) of log-space
residuals, analytic gradient, laws.md §2 coordinates) from each start with default L-BFGS-B settings. The
chinchilla package fits with its own BFGS (numerical gradients, long double) on the same data, with its
log-Huber at δ=1e-3 and the same grid in the same coordinates (e, a, b, alpha, beta); it reports the mean
Huber, converted here to the sum. Sampled timings are scaled linearly to 4,500 starts, and say so.
Wall-clock times are what the ratios use; CPU times (all processes involved) are printed beside them,
since on a shared machine wall-clock time also measures the neighbours.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One BLAS thread for every contender (this process, its pool workers and the CLI subprocesses): scipy's
# L-BFGS-B makes tiny BLAS calls that threaded OpenBLAS slows down by 100x on a busy two-core machine.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fits.fitting.chinchilla_fit import ChinchillaForm, chinchilla_points  # noqa: E402
from fits.fitting.form import Problem  # noqa: E402

POINTS = REPO.parent / "shared" / "data" / "chinchilla-epoch" / "points.csv"
GRID_STARTS = 4500


def epoch_240(directory: Path) -> tuple[Path, dict[str, np.ndarray]]:
    d = np.genfromtxt(POINTS, delimiter=",", names=True)
    keep = np.sort(np.argsort(d["loss"])[:-5])
    data = {k: d[k][keep] for k in ("N", "D", "C", "loss")}
    path = directory / "epoch240.csv"
    rows = zip(data["N"], data["D"], data["C"], data["loss"], strict=True)
    path.write_text("N,D,C,loss\n" + "".join(f"{n:.17g},{dd:.17g},{c:.17g},{loss:.17g}\n" for n, dd, c, loss in rows))
    return path, data


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def time_cli(path: Path, *extra: str, repeat: int = 3) -> tuple[list[float], list[float], dict]:
    times, cpus, out = [], [], {}
    for _ in range(repeat):
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "fits", "fit", "--law", "chinchilla", "--data", os.fspath(path), "--json", *extra],
            cwd=REPO, capture_output=True, text=True, check=True,
        )
        times.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds() - c0)
        out = json.loads(proc.stdout)
    return times, cpus, out


def time_scipy_loop(data: dict[str, np.ndarray], sample: int | None) -> tuple[float, float, float, int]:
    from scipy.optimize import minimize

    points = chinchilla_points(data["N"], data["D"], data["loss"])
    form = ChinchillaForm(0.0, 0.0)  # uncentred: exactly the paper's coordinates (a, b, e, alpha, beta)
    fun = Problem(form, points).scalar()
    grid = form.paper_grid()
    if sample is not None:
        grid = grid[np.random.default_rng(0).choice(len(grid), sample, replace=False)]
    best = np.inf
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    for x0 in grid:
        res = minimize(fun, x0, jac=True, method="L-BFGS-B")
        if np.isfinite(res.fun):
            best = min(best, float(res.fun))
    return time.perf_counter() - t0, cpu_seconds() - c0, best, len(grid)


def time_chinchilla_package(data: dict[str, np.ndarray], full: bool) -> tuple[float, float, float, int]:
    import pandas as pd
    from chinchilla import Chinchilla
    from chinchilla._metrics import log_huber

    project = Path(tempfile.mkdtemp(prefix="chinchilla-bench-"))
    frame = pd.DataFrame({"C": data["C"], "N": data["N"], "D": data["D"], "loss": data["loss"]})
    frame.to_csv(project / "df.csv", index=False)
    loss_fn = functools.partial(log_huber, delta=1e-3)
    loss_fn.__name__ = "log_huber"
    if full:
        ab = list(np.arange(0.0, 25.1, 5.0))
        e = list(np.arange(-1.0, 1.01, 0.5))
        ex = list(np.arange(0.0, 2.01, 0.5))
    else:  # 3 values per axis keeping each axis' range, so the package scales its coordinates the same way
        ab, e, ex = [0.0, 10.0, 25.0], [-1.0, 0.0, 1.0], [0.0, 1.0, 2.0]
    grid = {"e": e, "a": ab, "b": ab, "alpha": ex, "beta": ex}  # the package unpacks them in this order
    starts = len(e) * len(ab) ** 2 * len(ex) ** 2
    cc = Chinchilla(os.fspath(project), param_grid=grid, loss_fn=loss_fn, log_level=40)
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    cc.fit()  # its default: a process pool over all cores
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    pred = cc.predict_loss(data["N"], data["D"])
    r = np.log(pred.astype(float)) - np.log(data["loss"])
    c = np.clip(r, -1e-3, 1e-3)
    return elapsed, cpu, float(np.sum(c * (r - 0.5 * c))), starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="run every start for scipy and chinchilla (slow)")
    parser.add_argument("--scipy-sample", type=int, default=450, help="starts timed for the scipy loop")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path, data = epoch_240(Path(tmp))
        print(f"data: {len(data['loss'])} points ({POINTS.name} without its 5 highest-loss rows); "
              f"{os.cpu_count()} CPUs\n")

        cli_times, cli_cpu, ours = time_cli(path)
        ours_t = min(cli_times)
        print(f"ours (python -m fits fit, full {ours['starts']}-start grid, subprocess): wall "
              f"{', '.join(f'{t:.2f}' for t in cli_times)} s -> best {ours_t:.2f} s "
              f"(CPU {min(cli_cpu):.2f} s); objective {ours['objective']:.7e}")
        print("  coefficients: " + ", ".join(f"{k} {v:.5g}" for k, v in ours["coefficients"].items()))

        boot_times, boot_cpu, boot = time_cli(path, "--bootstrap", "1000", repeat=1)
        print(f"ours with --bootstrap 1000: {boot_times[0]:.2f} s in all (CPU {boot_cpu[0]:.2f} s), so about "
              f"{boot_times[0] - ours_t:.1f} s for the 1,000 bootstrap refits")
        print("  intervals: " + ", ".join(f"{k} [{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in boot["intervals"].items()))

        sample = None if args.full else args.scipy_sample
        sp_t, sp_cpu, sp_best, sp_n = time_scipy_loop(data, sample)
        scale = GRID_STARTS / sp_n
        how = "all starts" if sp_n == GRID_STARTS else f"{sp_n} random starts, scaled linearly to {GRID_STARTS}"
        print(f"\nscipy L-BFGS-B loop: {sp_t:.1f} s (CPU {sp_cpu:.1f} s) for {how} -> {sp_t * scale:.0f} s "
              f"(CPU {sp_cpu * scale:.0f} s); best objective {sp_best:.7e}")

        ch_t, ch_cpu, ch_obj, ch_n = time_chinchilla_package(data, args.full)
        ch_scale = GRID_STARTS / ch_n
        how = "all starts" if ch_n == GRID_STARTS else f"a {ch_n}-start sub-grid, scaled linearly to {GRID_STARTS}"
        print(f"chinchilla 0.2.0 (BFGS, pool of {os.cpu_count()}): {ch_t:.1f} s (CPU {ch_cpu:.1f} s) for {how} -> "
              f"{ch_t * ch_scale:.0f} s (CPU {ch_cpu * ch_scale:.0f} s); objective of its fit {ch_obj:.7e}")

        ours_cpu = min(cli_cpu)
        print(f"\nspeed-up vs scipy loop:       {sp_t * scale / ours_t:7.1f}x wall, "
              f"{sp_cpu * scale / ours_cpu:7.1f}x CPU  (target >= 20x)")
        print(f"speed-up vs chinchilla 0.2.0: {ch_t * ch_scale / ours_t:7.1f}x wall, "
              f"{ch_cpu * ch_scale / ours_cpu:7.1f}x CPU  (target >= 30x)")
        print(f"objective: ours {ours['objective']:.7e}, scipy best {sp_best:.7e}, chinchilla {ch_obj:.7e} -> "
              f"ours is {'no worse' if ours['objective'] <= min(sp_best, ch_obj) * (1 + 1e-9) else 'WORSE'}")


if __name__ == "__main__":
    main()
