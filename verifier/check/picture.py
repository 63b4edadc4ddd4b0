"""The picture of a check: measured curves and losses beside what the fits predicted (matplotlib, Agg)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Band:
    """One registered prediction: its mean, 80% and 95% intervals, and the observation."""

    label: str
    role: str
    predicted: float
    interval80: tuple[float, float]
    interval95: tuple[float, float]
    observed: float | None
    compute: float


@dataclass
class Profile:
    budget: float
    sizes: list[float]
    losses: list[float]
    planned: float
    vertex: float | None
    vertex_interval: tuple[float, float] | None


@dataclass
class EarlyStop:
    steps: np.ndarray
    val_loss: np.ndarray
    bound: float | None
    best_step: int
    unique_tokens: float
    upper: float | None = None


@dataclass
class CheckPicture:
    title: str
    bands: list[Band] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    fitted_exponent: tuple[float, float, float] | None = None
    """(a, low, high) from the vertices."""
    exponent_intercept: float | None = None
    plan_exponent: float | None = None
    early_stop: EarlyStop | None = None
    size_unit: str = "parameters"


def artifacts_dir(db_path: str | os.PathLike | None) -> Path:
    """Where check pictures go: $SCALEPLAN_ARTIFACTS, else a ``checks`` directory beside the database (for an
    in-memory database, the cache's: never the working directory by default)."""
    env = os.environ.get("SCALEPLAN_ARTIFACTS")
    if env:
        return Path(env).expanduser()
    if db_path is None or os.fspath(db_path) == ":memory:":
        from verifier.corpus import cache_dir

        return cache_dir() / "checks"
    return Path(db_path).expanduser().resolve().parent / "checks"


ROLE_COLOURS = {"proxy": "tab:blue", "isoflop": "tab:orange", "repeat": "tab:purple", "heldout": "tab:red",
                "early_stop": "tab:red"}


def draw(picture: CheckPicture, path: str | os.PathLike) -> Path:
    """Write the check's PNG to ``path`` (directories created) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    _bands(axes[0, 0], picture)
    _profiles(axes[0, 1], picture)
    _exponent(axes[1, 0], picture)
    _early_stop(axes[1, 1], picture.early_stop)
    fig.suptitle(picture.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _bands(ax, picture: CheckPicture) -> None:
    bands = sorted(picture.bands, key=lambda b: b.compute)
    if not bands:
        ax.text(0.5, 0.5, "no registered predictions", ha="center", transform=ax.transAxes)
        return
    x = np.arange(len(bands))
    pred = np.array([b.predicted for b in bands])
    lo80 = pred - np.array([b.interval80[0] for b in bands])
    hi80 = np.array([b.interval80[1] for b in bands]) - pred
    lo95 = pred - np.array([b.interval95[0] for b in bands])
    hi95 = np.array([b.interval95[1] for b in bands]) - pred
    ax.errorbar(x, pred, yerr=[lo95, hi95], fmt="none", ecolor="0.7", elinewidth=6, label="95% interval")
    ax.errorbar(x, pred, yerr=[lo80, hi80], fmt="_", color="k", ecolor="0.35", elinewidth=6, ms=12,
                label="80% interval, prediction")
    for role in dict.fromkeys(b.role for b in bands):
        idx = [i for i, b in enumerate(bands) if b.role == role and b.observed is not None]
        ax.plot(x[idx], [bands[i].observed for i in idx], "o", color=ROLE_COLOURS.get(role, "k"), ms=6,
                label=f"observed ({role})", zorder=3)
    ax.set_xticks(x)
    ax.set_xticklabels([b.label for b in bands], rotation=70, fontsize=6)
    ax.set_ylabel("final validation loss (nats/byte)")
    ax.set_title("registered predictions (bands) and observations, by compute", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def _profiles(ax, picture: CheckPicture) -> None:
    if not picture.profiles:
        ax.text(0.5, 0.5, "no IsoFLOP profiles", ha="center", transform=ax.transAxes)
        return
    cmap = __import__("matplotlib").colormaps["viridis"]
    for i, p in enumerate(picture.profiles):
        colour = cmap(i / max(1, len(picture.profiles) - 1))
        ax.plot(p.sizes, p.losses, "o", color=colour, label=f"C={p.budget:.3g}")
        if len(p.sizes) >= 3:
            xs = np.log(p.sizes)
            c = np.polyfit(xs, p.losses, 2)
            grid = np.linspace(xs.min(), xs.max(), 50)
            ax.plot(np.exp(grid), np.polyval(c, grid), "-", color=colour, lw=1)
        if p.vertex is not None:
            y = min(p.losses)
            err = None
            if p.vertex_interval is not None:
                err = [[p.vertex - p.vertex_interval[0]], [p.vertex_interval[1] - p.vertex]]
            ax.errorbar([p.vertex], [y], xerr=err, fmt="*", color=colour, ms=12, capsize=3)
        ax.plot([p.planned], [min(p.losses)], "v", color=colour, ms=8, mfc="none")
    ax.set_xscale("log")
    ax.set_xlabel(f"N ({picture.size_unit})")
    ax.set_ylabel("final validation loss")
    ax.set_title("IsoFLOP profiles: parabola vertex (star, 95% interval) and planned N (triangle)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")


def _exponent(ax, picture: CheckPicture) -> None:
    pts = [p for p in picture.profiles if p.vertex is not None]
    if not pts:
        ax.text(0.5, 0.5, "no vertices", ha="center", transform=ax.transAxes)
        return
    c = np.array([p.budget for p in pts])
    v = np.array([p.vertex for p in pts])
    err = np.array([[p.vertex - p.vertex_interval[0], p.vertex_interval[1] - p.vertex] if p.vertex_interval
                    else [0.0, 0.0] for p in pts]).T
    ax.errorbar(c, v, yerr=err, fmt="o", color="k", capsize=3, label="vertex (95%)")
    ax.plot([p.budget for p in picture.profiles], [p.planned for p in picture.profiles], "v", color="tab:blue",
            mfc="none", label="planned N")
    grid = np.geomspace(c.min() / 1.5, c.max() * 1.5, 20)
    if picture.fitted_exponent is not None and picture.exponent_intercept is not None:
        a, lo, hi = picture.fitted_exponent
        ax.plot(grid, np.exp(picture.exponent_intercept + a * np.log(grid)), "k-",
                label=f"fitted a = {a:.3f} [{lo:.3f}, {hi:.3f}]")
    if picture.plan_exponent is not None:
        ref = float(np.exp(np.mean(np.log(v) - picture.plan_exponent * np.log(c))))
        ax.plot(grid, ref * grid ** picture.plan_exponent, "--", color="tab:blue",
                label=f"plan's a = {picture.plan_exponent:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute C (FLOPs)")
    ax.set_ylabel(f"N_opt ({picture.size_unit})")
    ax.set_title("allocation exponent: N_opt ∝ C^a", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")


def _early_stop(ax, es: EarlyStop | None) -> None:
    if es is None or not len(es.steps):
        ax.text(0.5, 0.5, "no early-stopping run", ha="center", transform=ax.transAxes)
        return
    ax.plot(es.steps, es.val_loss, "-", color="tab:red", label="validation loss")
    ax.axvline(es.best_step, color="tab:red", ls=":", label=f"best at step {es.best_step}")
    if es.bound is not None:
        ax.axvspan(0.5 * es.bound, es.upper or es.bound, color="tab:green", alpha=0.12, label="predicted range")
        ax.axvline(es.bound, color="k", lw=1, label=f"S_stop bound (eq. 5.7) = {es.bound:.0f}")
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss")
    ax.set_title(f"early stopping on a {es.unique_tokens:.3g}-token slice", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
