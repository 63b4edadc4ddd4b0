"""verifier run's progress: redrawn every fraction of a second on a terminal with an ETA, logged every
LOG_SECONDS elsewhere, and no throughput claimed before a step was timed (issue 11)."""

from __future__ import annotations

import io
import itertools
import logging
import re
import shutil
from pathlib import Path

from verifier.runs import RunPoint
from verifier.train import make_config, train
from verifier.training import progress as progress_mod
from verifier.training.progress import Progress, format_eta, si


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_sees_progress_and_an_eta_every_half_second():
    out, clock = Terminal(), Clock()
    bar = Progress(7, 1000, True, stream=out, clock=clock)
    draws = []
    for step in range(1, 101):  # 0.1 s a step, 10 s in all: between evaluations 100 steps apart
        clock.now += 0.1
        before = out.tell()
        bar.step(step, 5e4, 1e9)
        if out.tell() != before:
            draws.append((clock.now, out.getvalue()[before:]))
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(draws)]
    assert len(draws) >= 18 and max(gaps) <= progress_mod.REDRAW_SECONDS + 0.1 + 1e-9
    assert all("ETA" in text and "50k tok/s" in text for _, text in draws)
    # At step 50 after 5 s, 950 steps remain at 0.1 s each.
    mid = next(text for t, text in draws if " 50/1000 " in text or " 51/1000 " in text)
    assert re.search(r"ETA 1m3[45]s", mid), mid


def test_no_throughput_is_claimed_at_step_0(caplog):
    out = Terminal()
    bar = Progress(3, 100, True, stream=out, clock=Clock())
    bar.point(RunPoint(step=0, tokens=0, val_loss=5.5), 0.0, 0.0)
    assert "starting" in out.getvalue() and "tok/s" not in out.getvalue()
    with caplog.at_level(logging.INFO, logger="verifier.train"):
        Progress(3, 100, True, stream=io.StringIO(), clock=Clock()).point(
            RunPoint(step=0, tokens=0, val_loss=5.5), 0.0, 0.0)
    assert caplog.messages == ["run 3 step 0/100 val 5.5000 (before training)"]


def test_away_from_a_terminal_a_line_is_logged_every_log_seconds(caplog):
    clock = Clock()
    bar = Progress(4, 10_000, True, stream=io.StringIO(), clock=clock)
    with caplog.at_level(logging.INFO, logger="verifier.train"):
        for step in range(1, 1001):  # 0.1 s a step: 100 s
            clock.now += 0.1
            bar.step(step, 1e4, 1e9)
    assert len(caplog.messages) == 3 and all("ETA" in m and "10000 tok/s" in m for m in caplog.messages)


def test_eta_format():
    assert [format_eta(s) for s in (4.4, 65, 7620, float("nan"))] == ["4 s", "1m05s", "2h07m", "?"]


def test_a_real_run_on_a_terminal_redraws_between_evaluations(db, tmp_path: Path, monkeypatch):
    import argparse

    text = tmp_path / "text.txt"
    shutil.copy(argparse.__file__, text)
    monkeypatch.setenv("SCALEPLAN_CACHE", str(tmp_path / "cache"))
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setattr(progress_mod, "REDRAW_SECONDS", 0.0)  # every step, so the test needs no slow steps
    cfg = make_config(n_layer=1, d_model=32, seq_len=32, batch_size=4, lr=3e-3, eval_sequences=8, steps=20,
                      eval_every=20, corpus=text)
    train(cfg, db=db, progress=True)
    frames = terminal.getvalue().split("\r")
    assert sum(" ETA " in f for f in frames) >= 20  # every step, not only the two evaluations
    assert not any("0.0k tok/s" in f for f in frames)
    assert "starting" in frames[1] and " 0/20 " in frames[1]


def test_rates_keep_three_figures_at_any_scale():
    assert [si(x) for x in (40.0, 850.0, 50_000.0, 1.234e9, 0.5)] == ["40 ", "850 ", "50k ", "1.23G ", "0.5 "]


def test_losses_not_yet_known_show_as_a_dash():
    out = Terminal()
    Progress(1, 10, True, stream=out, clock=Clock()).step(1, 1e3, 1e6, force=True)
    assert "train - | val - |" in out.getvalue() and "nan" not in out.getvalue()
