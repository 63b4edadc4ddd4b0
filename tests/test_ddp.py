"""Two CPU processes under torchrun (gloo) draw the same curve as one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from verifier import runs
from verifier.train import make_config, train

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available")


def test_two_processes_match_one(db, db_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import argparse
    import shutil

    cache = tmp_path / "cache"
    monkeypatch.setenv("SCALEPLAN_CACHE", str(cache))
    corpus = tmp_path / "text.txt"
    shutil.copy(argparse.__file__, corpus)
    shape = dict(n_layer=2, d_model=32, seq_len=32, batch_size=8, lr=3e-3, steps=24, warmup_steps=3,
                 eval_every=6, eval_sequences=16, checkpoint_every=1, seed=7)
    one = train(make_config(**shape, corpus=corpus), db=db, progress=False)

    argv = [f"--{k.replace('_', '-')}={v}" for k, v in shape.items() if k != "warmup_steps"]
    # fp32 on both sides: the comparison is of the data-parallel arithmetic, and the CLI would pick bf16 here.
    argv += [f"--warmup={shape['warmup_steps']}", f"--corpus={corpus}", "--device=cpu", "--precision=fp32",
             "--no-resume", "--json", "--quiet"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "verifier.ddp", *argv]
    env = {**os.environ, "SCALEPLAN_DB": str(db_file), "SCALEPLAN_CACHE": str(cache), "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # rank 0 alone reports
    result = json.loads(lines[0])
    assert result["world_size"] == 2 and result["run"]["status"] == "complete"
    two = result["run"]["id"]
    assert two != one.run.id and len(runs.list_runs(db)) == 2  # rank 1 wrote nothing

    a, b = runs.get_points(db, one.run.id), runs.get_points(db, two)
    assert [p.step for p in a] == [p.step for p in b] == list(range(25))
    for p, q in zip(a, b, strict=True):
        if p.train_loss is not None:
            assert q.train_loss == pytest.approx(p.train_loss, rel=1e-4), p.step
        if p.val_loss is not None:
            assert q.val_loss == pytest.approx(p.val_loss, rel=1e-4), p.step
    assert a[-1].val_loss < a[0].val_loss - 0.5  # a curve worth comparing
