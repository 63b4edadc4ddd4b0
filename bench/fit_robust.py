"""Extrapolation on messy subsets of Epoch's Chinchilla points: the robust method against the plain grid.

Each case keeps a messy part of the 240 points (a cut compute range, a few model sizes, a random subsample,
or all three), fits the Chinchilla form on it with both methods, and predicts every one of the 240 points
that used more compute than the largest point kept. The table gives the mean |predicted/observed − 1| on
those larger-compute points, and the flags each fit raised.

    python bench/fit_robust.py            # all cases, about two minutes on two cores
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fits.fitting import fit_chinchilla  # noqa: E402
from fits.laws.chinchilla import loss as chinchilla_loss  # noqa: E402

POINTS = REPO.parent / "shared" / "data" / "chinchilla-epoch" / "points.csv"


def load() -> dict[str, np.ndarray]:
    d = np.genfromtxt(POINTS, delimiter=",", names=True)
    keep = np.sort(np.argsort(d["loss"])[:-5])  # Epoch's 240: the 5 highest-loss points dropped
    return {k: d[k][keep] for k in ("N", "D", "C", "loss")}


def cases(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Named index sets into the 240 points."""
    n, c = data["N"], data["C"]
    size = np.round(np.log10(n), 1)  # the figure's points scatter slightly around each model size
    sizes = np.unique(size)

    def spread(k: int, cmax: float) -> np.ndarray:
        """k model sizes spread over those with at least three points below cmax, and those points."""
        usable = np.array([s for s in sizes if np.sum((size == s) & (c <= cmax)) >= 3])
        chosen = usable[np.round(np.linspace(0, len(usable) - 1, k)).astype(int)]
        return np.flatnonzero(np.isin(size, chosen) & (c <= cmax))

    out = {
        "compute <= 1e20": np.flatnonzero(c <= 1e20),
        "compute <= 3e19": np.flatnonzero(c <= 3e19),
        "5 sizes, compute <= 3e19": spread(5, 3e19),
        "4 sizes, compute <= 1e20": spread(4, 1e20),
        "3 sizes, compute <= 3e20": spread(3, 3e20),
        "2 sizes, compute <= 1e20": spread(2, 1e20),
        "one compute band, 3e19-6e19": np.flatnonzero((c >= 3e19) & (c <= 6e19)),
        "smallest 6 sizes, compute <= 3e20": np.flatnonzero(np.isin(size, sizes[:6]) & (c <= 3e20)),
    }
    for seed in range(3):
        rng = np.random.default_rng(seed)
        out[f"30 random, compute <= 1e20 (seed {seed})"] = np.sort(rng.choice(np.flatnonzero(c <= 1e20), 30, False))
        out[f"12 random, compute <= 1e20 (seed {seed})"] = np.sort(rng.choice(np.flatnonzero(c <= 1e20), 12, False))
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        below = c <= 10 ** rng.uniform(19.5, 20.5)
        counts = {s: int(np.sum(below & (size == s))) for s in sizes}
        chosen = rng.choice([s for s, k in counts.items() if k >= 3], 3, replace=False)
        picks = [rng.choice(np.flatnonzero(below & (size == s)), 3, replace=False) for s in chosen]
        out[f"3 sizes x 3 random points, cut compute (seed {seed})"] = np.sort(np.concatenate(picks))
    return out


def run(selected: list[str] | None = None) -> None:
    data = load()
    table = cases(data)
    if selected:
        table = {k: v for k, v in table.items() if any(s in k for s in selected)}
    header = f"{'case':50s} {'pts':>4s} {'sizes':>5s} {'test':>5s}  {'grid err':>8s} {'robust err':>10s}"
    print(header + "  flags (grid | robust)")
    errors: dict[str, list[float]] = {"grid": [], "robust": []}
    t0 = time.perf_counter()
    for name, idx in table.items():
        test = np.flatnonzero(data["C"] > data["C"][idx].max())
        row, flags = [], []
        for method in ("grid", "robust"):
            res = fit_chinchilla(data["N"][idx], data["D"][idx], data["loss"][idx], method=method)
            pred = chinchilla_loss(data["N"][test], data["D"][test], **res.coefficients)
            err = float(np.mean(np.abs(pred / data["loss"][test] - 1.0)))
            errors[method].append(err)
            row.append(err)
            flags.append(_flags(res))
        n_sizes = np.unique(np.round(np.log10(data["N"][idx]), 1)).size
        print(
            f"{name:50s} {idx.size:4d} {n_sizes:5d} {test.size:5d}  {row[0]:8.4f} {row[1]:10.4f}  "
            f"{flags[0]} | {flags[1]}",
            flush=True,
        )
    g, r = np.array(errors["grid"]), np.array(errors["robust"])
    print()
    print(f"mean error    grid {g.mean():.4f}   robust {r.mean():.4f}")
    print(f"median error  grid {np.median(g):.4f}   robust {np.median(r):.4f}")
    print(f"robust better in {(r < g - 1e-4).sum()}, worse in {(r > g + 1e-4).sum()}, equal in "
          f"{(np.abs(r - g) <= 1e-4).sum()} of {g.size} cases; {time.perf_counter() - t0:.0f} s")


def _flags(res) -> str:
    d = res.diagnostics
    parts = []
    if d.degenerate:
        parts.append("degenerate")
    if d.at_bounds:
        parts.append("bound:" + ",".join(d.at_bounds))
    return " ".join(parts) or "-"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", help="only cases whose name contains one of these strings")
    run(parser.parse_args().cases)
