"""The picture of a check: measured curves and losses beside what the fits predicted (matplotlib, Agg)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Curve:
    label: str
    role: str
    tokens: np.ndarray
    val_loss: np.ndarray
    predicted_tokens: np.ndarray | None = None
    predicted_loss: np.ndarray | None = None
    """The scope's L(N, S) along the run, or None when the scope has no curve fit."""
    predicted_final: float | None = None


@dataclass
class FinalPoint:
    label: str
    role: str
    predicted: float
    observed: float


@dataclass
class IsoFlop:
    budget: float
    sizes: list[float]
    losses: list[float]
    planned: float
    best: float | None
    curve_sizes: np.ndarray | None = None
    curve_losses: np.ndarray | None = None


@dataclass
class EarlyStop:
    steps: np.ndarray
    val_loss: np.ndarray
    bound: float | None
    best_step: int
    unique_tokens: float


@dataclass
class CheckPicture:
    title: str
    curves: list[Curve] = field(default_factory=list)
    finals: list[FinalPoint] = field(default_factory=list)
    isoflop: IsoFlop | None = None
    early_stop: EarlyStop | None = None
    tolerance: float = 0.05


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


ROLE_COLOURS = {"proxy": "tab:blue", "isoflop": "tab:orange", "calibration": "0.6", "early_stop": "tab:red"}


def draw(picture: CheckPicture, path: str | os.PathLike) -> Path:
    """Write the check's PNG to ``path`` (directories created) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    _curves(axes[0, 0], picture)
    _finals(axes[0, 1], picture)
    _isoflop(axes[1, 0], picture.isoflop)
    _early_stop(axes[1, 1], picture.early_stop)
    fig.suptitle(picture.title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _curves(ax, picture: CheckPicture) -> None:
    cmap = __import__("matplotlib").colormaps["viridis"]
    shown = [c for c in picture.curves if c.role != "calibration"] or picture.curves
    for i, c in enumerate(shown):
        colour = cmap(i / max(1, len(shown) - 1))
        ax.plot(c.tokens, c.val_loss, "-", color=colour, lw=1.4, label=c.label)
        if c.predicted_loss is not None and c.predicted_tokens is not None:
            ax.plot(c.predicted_tokens, c.predicted_loss, "--", color=colour, lw=1.0)
        if c.predicted_final is not None and len(c.tokens):
            ax.plot([c.tokens[-1]], [c.predicted_final], "x", color=colour, ms=8, mew=2)
    ax.set_xscale("log")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("validation curves (solid) vs L(N, S) of the scope fit (dashed); x: predicted final L(N, D)",
                 fontsize=9)
    if shown:
        ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3, which="both")


def _finals(ax, picture: CheckPicture) -> None:
    if not picture.finals:
        ax.text(0.5, 0.5, "no final losses", ha="center", transform=ax.transAxes)
        return
    pred = np.array([f.predicted for f in picture.finals])
    obs = np.array([f.observed for f in picture.finals])
    for role in dict.fromkeys(f.role for f in picture.finals):
        idx = [i for i, f in enumerate(picture.finals) if f.role == role]
        ax.scatter(pred[idx], obs[idx], s=30, color=ROLE_COLOURS.get(role, "k"), label=role, zorder=3)
    lo, hi = float(min(pred.min(), obs.min())) * 0.97, float(max(pred.max(), obs.max())) * 1.03
    line = np.linspace(lo, hi, 50)
    tol = picture.tolerance
    ax.plot(line, line, "k-", lw=0.8)
    ax.fill_between(line, line * (1 - tol), line * (1 + tol), color="tab:green", alpha=0.12,
                    label=f"±{tol:.0%}")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("predicted final loss (scope fit, recorded before training)")
    ax.set_ylabel("observed final loss")
    ax.set_title("final loss: observed vs L(N, D)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def _isoflop(ax, iso: IsoFlop | None) -> None:
    if iso is None or not iso.sizes:
        ax.text(0.5, 0.5, "no IsoFLOP triple", ha="center", transform=ax.transAxes)
        return
    ax.plot(iso.sizes, iso.losses, "o", color="tab:orange", ms=7, label="measured")
    if iso.curve_sizes is not None and iso.curve_losses is not None:
        ax.plot(iso.curve_sizes, iso.curve_losses, "--", color="tab:blue", label="scope fit L(N, C/6N)")
    ax.axvline(iso.planned, color="tab:blue", lw=1, label=f"planned N = {iso.planned:.3g}")
    if iso.best is not None:
        ax.axvline(iso.best, color="tab:orange", lw=1, ls=":", label=f"best of triple = {iso.best:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel("final validation loss")
    ax.set_title(f"allocation: IsoFLOP triple at C = {iso.budget:.3g} FLOPs", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")


def _early_stop(ax, es: EarlyStop | None) -> None:
    if es is None or not len(es.steps):
        ax.text(0.5, 0.5, "no early-stopping run", ha="center", transform=ax.transAxes)
        return
    ax.plot(es.steps, es.val_loss, "-", color="tab:red", label="validation loss")
    ax.axvline(es.best_step, color="tab:red", ls=":", label=f"best at step {es.best_step}")
    if es.bound is not None:
        ax.axvline(es.bound, color="k", lw=1, label=f"S_stop bound (eq. 5.7) = {es.bound:.0f}")
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss")
    ax.set_title(f"early stopping on a {es.unique_tokens:.3g}-token slice", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
