"""A run's checkpoint directory, the lock that keeps one process per run, and atomic save / restore.

Checkpoints hold the model, the optimizer, the RNG state, the step and the training seconds so far; a run
trained again after a crash or ``kill -9`` continues from its last one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec
import sqlite_utils
import torch

from fits.errors import Busy
from verifier import corpus as corpus_mod
from verifier import runs
from verifier.runs import ConfigError, RunConfig

CHECKPOINT_FILE = "checkpoint.pt"


class RunBusy(Busy, RuntimeError):
    """Another process is training this run right now."""


def checkpoint_dir(db: sqlite_utils.Database, run_id: int) -> Path:
    """``<cache>/runs/<hash of the database path>/<run id>-<hash of its creation time>``.

    Run ids are per database file, and a database recreated at the same path reuses them: the creation
    time keeps a new run from picking up an old run's checkpoint.
    """
    rows = db.execute("PRAGMA database_list").fetchall()
    db_file = next((r[2] for r in rows if r[1] == "main"), "") or f"memory-{id(db)}"
    key = hashlib.sha256(os.path.realpath(db_file).encode()).hexdigest()[:16]
    created = db.execute("SELECT created FROM runs WHERE id = ?", [run_id]).fetchone()
    stamp = hashlib.sha256(str(created[0] if created else "").encode()).hexdigest()[:8]
    return corpus_mod.cache_dir() / "runs" / key / f"{run_id}-{stamp}"


@contextlib.contextmanager
def run_lock(directory: Path, run_id: int) -> Iterator[None]:
    """An exclusive flock per run; the kernel drops it when the holder dies, even by SIGKILL."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(f"run {run_id} is being trained by another process") from None
        yield
    finally:
        os.close(fd)


def run_is_live(db: sqlite_utils.Database, run_id: int) -> bool:
    """Whether some process is training ``run_id`` now. A run left 'running' by a killed process is not
    live; training it again (same config, or its id) continues from its last checkpoint."""
    directory = checkpoint_dir(db, run_id)
    if not directory.exists():
        return False
    try:
        with run_lock(directory, run_id):
            return False
    except RunBusy:
        return True


def claim_or_create(db: sqlite_utils.Database, config: RunConfig, scope: str, n_params: int, params_total: int,
                    resume: bool) -> runs.Run:
    """The newest unfinished stand-alone run of this config that no process holds (``resume``), else a new one."""
    if resume:
        for candidate in runs.find_resumable(db, config, scope):
            with contextlib.suppress(RunBusy), run_lock(checkpoint_dir(db, candidate.id), candidate.id):
                return candidate
    return runs.create_run(db, config, scope=scope, n_params=n_params, params_total=params_total)


def save_checkpoint(path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    seconds: float, config: RunConfig, run_id: int, dev: torch.device) -> None:
    """Write the training state atomically: a reader sees the old checkpoint or the new one, never half of one."""
    state = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "seconds": seconds,
        "torch_rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
        "config": runs.config_json(config), "run_id": run_id,
    }
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


KERNEL_OPTIONS = ("foreach", "fused")
"""Optimizer options that choose its implementation, not its arithmetic."""


def restore_checkpoint(path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                       config: RunConfig, dev: torch.device) -> tuple[int, float] | None:
    """Load the checkpoint at ``path`` into the model, optimizer and RNGs; returns (step, seconds), or None when
    there is none. Raises ConfigError when it belongs to another config."""
    if not path.exists():
        return None
    state = torch.load(path, map_location=dev, weights_only=True)
    # Compared as configs, not as text: a checkpoint written before a field existed holds its default. The
    # precision is a field, so a bf16 checkpoint never continues an fp32 run or the other way round.
    saved = msgspec.json.decode(state["config"], type=RunConfig)
    if runs.config_json(saved) != runs.config_json(config):
        differs = [f for f in RunConfig.__struct_fields__ if getattr(saved, f) != getattr(config, f)]
        raise ConfigError(f"checkpoint {path} belongs to a different config ({', '.join(differs) or 'scope'})")
    model.load_state_dict(state["model"])
    # The saved param groups carry the kernel choice of the process that wrote them (a checkpoint from before
    # the CPU switched to the fused kernel says foreach); the kernel is how this process steps, not state.
    kernels = [{k: g[k] for k in KERNEL_OPTIONS if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state["optimizer"])
    for group, kernel in zip(optimizer.param_groups, kernels, strict=True):
        group.update(kernel)
    torch.set_rng_state(state["torch_rng"])
    if dev.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], dev)
    return state["step"], state["seconds"]
