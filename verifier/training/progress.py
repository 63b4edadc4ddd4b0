"""A one-line progress bar on a terminal, log lines elsewhere; both say how far the run is and when it ends.

On a terminal the bar is redrawn at most every REDRAW_SECONDS and at least every few seconds whenever steps
finish (each step offers a redraw); elsewhere a log line comes with every evaluation and, between them, every
LOG_SECONDS. The ETA is the remaining steps at the pace so far (evaluations included, since the remaining
ones will be taken too). Throughput is shown only once a step has been timed: the step-0 evaluation
has none.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from typing import TextIO

from verifier.runs import RunPoint

log = logging.getLogger("verifier.train")

REDRAW_SECONDS = 0.5
LOG_SECONDS = 30.0


def format_eta(seconds: float) -> str:
    """'42 s', '3m05s', '2h07m': the time left, coarse enough to read at a glance."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _loss(value: float) -> str:
    """A loss to 4 decimals, '-' before the first one is known (training losses are read at evaluations)."""
    return "-" if math.isnan(value) else f"{value:.4f}"


class Progress:
    """A one-line progress bar on a terminal, log lines elsewhere."""

    def __init__(self, run_id: int, total: int, enabled: bool, *, start: int = 0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.run_id, self.total = run_id, total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = enabled and self.stream.isatty()
        self.enabled = enabled
        self.clock = clock
        self.train_loss = self.val_loss = float("nan")
        self.start_step, self.t0 = start, clock()
        self._last_draw = self._last_log = self.t0

    def eta_seconds(self, step: int) -> float:
        done = step - self.start_step
        if done <= 0:
            return math.nan
        return (self.clock() - self.t0) / done * (self.total - step)

    def _rate(self, tok_s: float, flop_s: float) -> str:
        return f"{si(tok_s)}tok/s | {si(flop_s)}FLOP/s" if tok_s > 0 else "starting"

    def step(self, step: int, tok_s: float, flop_s: float, *, force: bool = False) -> None:
        """Offer a redraw after ``step``: drawn on a terminal every REDRAW_SECONDS, logged every LOG_SECONDS."""
        if not self.enabled:
            return
        now = self.clock()
        if not self.tty:
            if now - self._last_log >= LOG_SECONDS:
                self._log(step, None, tok_s, flop_s)
            return
        if not force and now - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = now
        width = 24
        done = int(width * step / self.total)
        bar = "█" * done + "·" * (width - done)
        self.stream.write(f"\rrun {self.run_id} {bar} {step}/{self.total} | train {_loss(self.train_loss)} "
                          f"| val {_loss(self.val_loss)} | {self._rate(tok_s, flop_s)} | "
                          f"ETA {format_eta(self.eta_seconds(step))} ")
        self.stream.flush()

    def point(self, p: RunPoint, tok_s: float, flop_s: float) -> None:
        if p.train_loss is not None:
            self.train_loss = p.train_loss
        if p.val_loss is not None:
            self.val_loss = p.val_loss
        if self.tty:
            self.step(p.step, tok_s, flop_s, force=True)
        elif self.enabled:
            self._log(p.step, p.lr, tok_s, flop_s)

    def _log(self, step: int, lr: float | None, tok_s: float, flop_s: float) -> None:
        self._last_log = self.clock()
        train, val = _loss(self.train_loss), _loss(self.val_loss)
        if step == self.start_step or tok_s <= 0:  # nothing timed yet: no throughput, no ETA
            log.info("run %d step %d/%d val %s (before training)", self.run_id, step, self.total, val)
            return
        log.info("run %d step %d/%d train %s val %s%s %.0f tok/s %.3g FLOP/s ETA %s", self.run_id, step,
                 self.total, train, val, "" if lr is None else f" lr {lr:.3g}", tok_s, flop_s,
                 format_eta(self.eta_seconds(step)))

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def si(x: float) -> str:
    """x with an SI prefix and three significant figures ("12.3k ", "850 ", "1.2G "): a slow run on a loaded
    machine reads "40 tok/s", not "0.0k tok/s"."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{prefix} "
    return f"{x:.3g} "
