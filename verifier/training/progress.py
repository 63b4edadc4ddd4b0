"""A one-line progress bar on a terminal, log lines elsewhere."""

from __future__ import annotations

import logging
import math
import sys
import time

from verifier.runs import RunPoint

log = logging.getLogger("verifier.train")


class Progress:
    """A one-line progress bar on a terminal, log lines elsewhere."""

    def __init__(self, run_id: int, total: int, enabled: bool) -> None:
        self.run_id, self.total = run_id, total
        self.tty = enabled and sys.stderr.isatty()
        self.enabled = enabled
        self.train_loss = self.val_loss = float("nan")
        self._last_draw = 0.0

    def step(self, step: int, tok_s: float, flop_s: float, *, force: bool = False) -> None:
        if not self.tty or (not force and time.monotonic() - self._last_draw < 0.2):
            return
        self._last_draw = time.monotonic()
        width = 24
        done = int(width * step / self.total)
        bar = "█" * done + "·" * (width - done)
        sys.stderr.write(f"\rrun {self.run_id} {bar} {step}/{self.total} | train {self.train_loss:.4f} "
                         f"| val {self.val_loss:.4f} | {tok_s / 1e3:.1f}k tok/s | "
                         f"{flop_s / 1e9:.1f} GFLOP/s ")
        sys.stderr.flush()

    def point(self, p: RunPoint, tok_s: float, flop_s: float) -> None:
        if p.train_loss is not None:
            self.train_loss = p.train_loss
        if p.val_loss is not None:
            self.val_loss = p.val_loss
        if self.tty:
            self.step(p.step, tok_s, flop_s, force=True)
        elif self.enabled:
            train = "-" if math.isnan(self.train_loss) else f"{self.train_loss:.4f}"
            log.info("run %d step %d/%d train %s val %.4f lr %.3g %.0f tok/s %.3g FLOP/s",
                     self.run_id, p.step, self.total, train, self.val_loss, p.lr or 0.0, tok_s, flop_s)

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
