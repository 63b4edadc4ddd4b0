"""Frontier plot: predicted loss (with its band) and N_opt against compute. matplotlib is imported on use."""

from __future__ import annotations

import os

from planner.plan import Frontier


def plot_frontier(frontier: Frontier, path: str | os.PathLike[str]) -> str:
    """Draw ``frontier`` to an image file (format from the suffix, e.g. .png); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = frontier.rows
    compute = [r.compute_flops for r in rows]
    fig, (ax_loss, ax_n) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    ax_loss.fill_between(
        compute,
        [r.predicted_loss.low for r in rows],
        [r.predicted_loss.high for r in rows],
        alpha=0.25,
        label="uncertainty band",
    )
    ax_loss.plot(compute, [r.predicted_loss.mean for r in rows], marker="o", label="predicted loss")
    ax_loss.set(
        xscale="log",
        xlabel="training compute (FLOPs)",
        ylabel="loss (nats/token)",
        title="Loss at the compute-optimal allocation",
    )
    ax_loss.legend()
    ax_n.plot(compute, [r.params for r in rows], marker="o", label="N_opt (params)")
    ax_n.plot(compute, [r.tokens for r in rows], marker="s", label="D_opt (tokens)")
    ax_n.set(xscale="log", yscale="log", xlabel="training compute (FLOPs)", title="Model size and data")
    ax_n.legend()
    name = frontier.fit.name or f"fit {frontier.fit.id}"
    fig.suptitle(f"{name} ({frontier.fit.law}, {frontier.fit.scope})")
    for ax in (ax_loss, ax_n):
        ax.grid(True, which="both", alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return os.fspath(path)
