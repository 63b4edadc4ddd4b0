"""Frontier plots as PNG bytes (the planner draws to a file)."""

from __future__ import annotations

import os
import tempfile

from planner import Frontier


def frontier_png(frontier: Frontier) -> bytes:
    from planner.plot import plot_frontier

    handle, path = tempfile.mkstemp(suffix=".png", prefix="scaleplan-frontier-")
    os.close(handle)
    try:
        plot_frontier(frontier, path)
        with open(path, "rb") as image:
            return image.read()
    finally:
        os.unlink(path)
