"""Synthetic coverage of the predictive interval, with Epoch's coefficients as the truth and 1% log-normal noise.

    python bench/coverage.py [--designs a,b,c] [--replicates 50] [--seed 0]

Designs (each replicate draws fresh noise on the same (N, D) points):
- a: three model sizes (1e8, 4e8, 1.6e9 parameters), each at 8 token counts from 5 to 200 tokens/parameter.
- b: one decade of compute: isoFLOP profiles at 5 budgets 1e18–1e19 FLOPs, 7 sizes each from 1/4 to 4× the
  truth's compute-optimal N.
- c: a broken power law in D: β 0.37 below 3e10 tokens, 0.55 above (continuous at the break; E, A, B, α
  Epoch's), isoFLOP profiles at 5 budgets 1e19–1e21 FLOPs, 7 sizes each (D from ~2e9 to ~4e11 tokens).
- c-epoch: the same broken law on the (N, D) points of Epoch's Chinchilla file (245 points, D 2.5e8–3.2e11),
  read from ../shared/data (skipped where it is absent).

Target of each replicate: the loss at the truth's compute-optimal (N, D) for 10× the largest fitted compute.
Reported: the share of replicates whose 80% interval covers (1) the law's true loss there, with
``predict_interval(..., of="mean")``, and (2) one fresh run's loss there (the truth times the same 1% noise),
with ``of="run"``, the interval ``fit --law auto --predict`` prints; the median |error| of the mean, the median
width, the chosen forms, and the share of replicates with a misspecification flag (``report.misspecified``) or
any warning. Aims (issue 10): a and b cover in 70–90% of replicates; c warns in ≥ 80% and covers in ≥ 60%.

How far a design can show a bend at all: ``--power`` prints, per design, the rms misfit of the Chinchilla form
fitted to the noise-free points and the noncentrality n·(misfit/noise)² a test of it would have.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fits.fitting.auto import fit_auto, predict_interval
from fits.laws import chinchilla

TRUTH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
NOISE = 0.01
BREAK, BETA_LOW, BETA_HIGH = 3e10, 0.37, 0.55


def true_loss(design: str, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    if not design.startswith("c"):
        return np.asarray(chinchilla.loss(N, D, **TRUTH))
    data = np.where(D <= BREAK, TRUTH["B"] / D**BETA_LOW,
                    TRUTH["B"] / BREAK**BETA_LOW * (D / BREAK) ** -BETA_HIGH)
    return TRUTH["E"] + TRUTH["A"] / N ** TRUTH["alpha"] + data


def isoflop(budgets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    opt = chinchilla.optimal_allocation(budgets, **TRUTH)
    scale = np.geomspace(0.25, 4.0, 7)
    N = (opt.N[:, None] * scale[None, :]).ravel()
    D = (np.repeat(budgets, scale.size)) / (6 * N)
    return N, D


def epoch_points() -> tuple[np.ndarray, np.ndarray] | None:
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "chinchilla-epoch" / "points.csv"
    if not path.exists():
        return None
    rows = np.genfromtxt(path, delimiter=",", names=True)
    return np.asarray(rows["N"], dtype=float), np.asarray(rows["D"], dtype=float)


def design_points(design: str) -> tuple[np.ndarray, np.ndarray]:
    if design == "c-epoch":
        pts = epoch_points()
        if pts is None:
            raise FileNotFoundError("../shared/data/chinchilla-epoch/points.csv")
        return pts
    if design == "a":
        sizes = np.array([1e8, 4e8, 1.6e9])
        tpp = np.geomspace(5, 200, 8)
        return np.repeat(sizes, tpp.size), (sizes[:, None] * tpp[None, :]).ravel()
    if design == "b":
        return isoflop(np.geomspace(1e18, 1e19, 5))
    return isoflop(np.geomspace(1e19, 1e21, 5))


def target(N: np.ndarray, D: np.ndarray) -> tuple[float, float]:
    c = 10 * float(np.max(6 * N * D))
    opt = chinchilla.optimal_allocation(np.array([c]), **TRUTH)
    return float(opt.N[0]), float(opt.D[0])


def run(design: str, replicates: int, seed: int, bootstrap: int) -> None:
    try:
        N, D = design_points(design)
    except FileNotFoundError as e:
        print(f"design {design}: skipped ({e} is absent)")
        return
    tn, td = target(N, D)
    truth = float(true_loss(design, np.array([tn]), np.array([td]))[0])
    clean = true_loss(design, N, D)
    rng = np.random.default_rng(seed)
    hits, run_hits, errs, widths, warned, flagged, laws = [], [], [], [], [], [], Counter()
    t0 = time.perf_counter()
    print(f"design {design}: {N.size} points, C {6 * (N * D).min():.2g}–{6 * (N * D).max():.2g}, target N {tn:.3g} "
          f"D {td:.3g} (10x the largest compute), true loss {truth:.4f}", flush=True)
    for i in range(replicates):
        L = clean * np.exp(NOISE * rng.standard_normal(N.size))
        observed = truth * float(np.exp(NOISE * rng.standard_normal()))
        auto = fit_auto(N, D, L, bootstrap=bootstrap, seed=seed + i)
        p = predict_interval(auto, [tn], [td], 0.8, of="mean")[0]
        pr = predict_interval(auto, [tn], [td], 0.8, of="run")[0]
        hits.append(p.low <= truth <= p.high)
        run_hits.append(pr.low <= observed <= pr.high)
        errs.append(abs(p.mean / truth - 1))
        widths.append(p.high / p.low - 1)
        flagged.append(bool(auto.report.misspecified))
        warned.append(bool(auto.report.warnings))
        laws[auto.report.law] += 1
        print(f"  {design} rep {i + 1}: {auto.report.law:<12} mean {p.mean:.4f} [{p.low:.4f}, {p.high:.4f}] "
              f"{'in' if hits[-1] else 'OUT'}; run {observed:.4f} in [{pr.low:.4f}, {pr.high:.4f}] "
              f"{'in' if run_hits[-1] else 'OUT'}; misspecified={flagged[-1]} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    k = len(hits)
    print(f"RESULT design {design}: {k} replicates; 80% interval of the mean covers the true loss in "
          f"{np.mean(hits):.0%} ({sum(hits)}/{k}), of a run covers a fresh run in {np.mean(run_hits):.0%} "
          f"({sum(run_hits)}/{k}); median |err| {np.median(errs):.2%}; median width (high/low - 1) "
          f"{np.median(widths):.2%}; misspecification flagged in {np.mean(flagged):.0%}, any warning in "
          f"{np.mean(warned):.0%}; chosen {dict(laws)}; {time.perf_counter() - t0:.0f} s", flush=True)


def power(design: str) -> None:
    """How visible the design's departure from the Chinchilla form is, before any noise."""
    from fits.fitting.varpro import fit_linear
    from fits.laws.registry import get_law

    try:
        N, D = design_points(design)
    except FileNotFoundError:
        return
    law = get_law("chinchilla")
    clean = true_loss(design, N, D)
    fit = fit_linear(law.linear_form, N, D, clean)
    rms = float(np.sqrt(np.mean(fit.residuals**2)))
    print(f"design {design}: {N.size} points; the Chinchilla form misses the noise-free points by {rms:.3%} rms; "
          f"noncentrality n(misfit/noise)^2 = {N.size * (rms / NOISE) ** 2:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--designs", default="a,b,c,c-epoch")
    ap.add_argument("--replicates", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=100, help="bootstrap refits per replicate (fit_auto's default)")
    ap.add_argument("--power", action="store_true", help="print each design's noise-free misfit and stop")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if args.power:
        for d in args.designs.split(","):
            power(d)
        return
    for d in args.designs.split(","):
        run(d, args.replicates, args.seed, args.bootstrap)


if __name__ == "__main__":
    main()
