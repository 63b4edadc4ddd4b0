"""The optimizer steps, evaluations and checkpoints of one run, and its curve written to the store.

``train_run(job)`` trains a claimed run (``verifier.train.train`` claims it, checks its memory and loads its
corpus) from its last checkpoint, if any, to its last step. Per-step training losses stay on the device until
the next evaluation, then go to ``run_points`` with the evaluation's point (rank 0 alone writes).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec
import sqlite_utils
import torch

from fits import accounting
from fits.errors import Failed
from verifier import corpus as corpus_mod
from verifier import device as device_mod
from verifier import runs
from verifier.runs import Run, RunConfig, RunPoint
from verifier.training import build, checkpoints
from verifier.training.distributed import all_reduce_sum, barrier
from verifier.training.progress import Progress

log = logging.getLogger("verifier.train")


class TrainingDiverged(Failed):
    """The loss became NaN or infinite."""


class RunResult(msgspec.Struct, kw_only=True):
    """What a finished run measured; the full curve is ``runs.get_points(db, run.id)``."""

    run: Run | None
    """The stored run (None on ranks other than 0 of a distributed run)."""
    final_train_loss: float
    final_val_loss: float
    best_val_loss: float
    best_val_step: int
    steps: int
    tokens: int
    seconds: float
    tokens_per_second: float
    flops_per_second: float
    """Achieved training FLOP/s, all ranks together, counted per token in fits.accounting's "kaplan" convention
    on 12·n_layer·d_model² (6N + 6·n_layer·seq_len·d_model, no head)."""
    n_params: int
    params_total: int
    resumed_from: int | None
    device: str
    world_size: int = 1
    precision: str = "fp32"


@dataclass
class Job:
    """One claimed run and where it trains: what the loop needs besides the model."""

    config: RunConfig
    db: sqlite_utils.Database | None
    run_id: int
    checkpoint_dir: Path
    data: corpus_mod.Corpus
    dev: torch.device
    rank: int
    world: int
    micro: int
    """Sequences per forward/backward on this rank."""
    pool: ThreadPoolExecutor | None
    """CPU threads that split each micro-batch into ``shards`` (None: one shard)."""
    shards: int
    progress: bool
    attention: str
    compile: bool
    keep_checkpoint: bool
    n_params: int
    params_total: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def accum(self) -> int:
        """Micro-batches per optimizer step on this rank."""
        return (self.config.batch_size // self.world) // self.micro

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint_dir / checkpoints.CHECKPOINT_FILE

    @property
    def flops_per_token(self) -> float:
        return float(accounting.shape_flops_per_token(self.config.n_layer, self.config.d_model,
                                                      self.config.seq_len, "kaplan"))


class Curve:
    """The curve as it is measured: per-step losses, the validation history and the training seconds."""

    def __init__(self, job: Job, bar: Progress, seconds: float, history: list[tuple[int, float]]) -> None:
        self.job, self.bar = job, bar
        self.history = history
        self.pending: list[RunPoint] = []  # train-only points, written with the next evaluation
        self.losses: list[torch.Tensor] = []  # kept on the device: reading each one would sync every step
        self.loss_steps: list[int] = []
        self.last_train = float("nan")
        self.seconds_base = seconds
        self.t_start = time.perf_counter()

    def elapsed(self) -> float:
        """Training wall time so far, summed over resumptions."""
        return self.seconds_base + time.perf_counter() - self.t_start

    def add(self, step: int, loss: torch.Tensor) -> None:
        self.losses.append(loss)
        self.loss_steps.append(step)

    def evaluated(self, step: int, val_loss: float, tok_s: float) -> None:
        """Record an evaluation, with the training losses since the last one, and write them (rank 0)."""
        self.history.append((step, val_loss))
        self._collect_train_losses()
        config = self.job.config
        if self.pending and self.pending[-1].step == step:
            self.pending[-1] = msgspec.structs.replace(self.pending[-1], val_loss=val_loss, seconds=self.elapsed())
        else:  # step 0: validation only
            self.pending.append(RunPoint(step=step, tokens=step * config.batch_tokens, val_loss=val_loss,
                                         lr=config.lr_at(step) if step else 0.0, seconds=self.elapsed()))
        if self.job.main:
            runs.write_points(self.job.db, self.job.run_id, self.pending)
            self.bar.point(self.pending[-1], tok_s, tok_s * self.job.flops_per_token)
        self.pending.clear()

    def _collect_train_losses(self) -> None:
        if not self.losses:
            return
        config, world = self.job.config, self.job.world
        values = (all_reduce_sum(torch.stack(self.losses).float(), world) / world).tolist()
        if not all(math.isfinite(v) for v in values):
            bad = self.loss_steps[next(i for i, v in enumerate(values) if not math.isfinite(v))]
            raise TrainingDiverged(f"loss is not finite at step {bad}; lower --lr or raise --warmup")
        for s, v in zip(self.loss_steps, values, strict=True):
            self.pending.append(RunPoint(step=s, tokens=s * config.batch_tokens, train_loss=v, lr=config.lr_at(s)))
        self.last_train = values[-1]
        self.losses.clear()
        self.loss_steps.clear()


class Rate:
    """Training tokens per second since the loop started, evaluations and store writes excluded."""

    def __init__(self, start: int, batch_tokens: int) -> None:
        self.start, self.batch_tokens = start, batch_tokens
        self.loop_start, self.excluded = time.perf_counter(), 0.0

    def tokens_per_second(self, step: int) -> float:
        busy = time.perf_counter() - self.loop_start - self.excluded
        return (step - self.start) * self.batch_tokens / max(busy, 1e-9)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - t0


class Trainer:
    """The model, optimizer and step module of one job, and the three things a loop does with them: an
    optimizer step, an evaluation, a checkpoint."""

    def __init__(self, job: Job) -> None:
        self.job = job
        config, dev = job.config, job.dev
        self.model = build.make_model(config, job.data.vocab_size, dev, attention=job.attention,
                                      n_params=job.n_params)
        self.optimizer = build.make_optimizer(self.model, config)
        self.step_model: torch.nn.Module = self.model
        self.ddp = None
        self.val_offsets = corpus_mod.eval_offsets(len(job.data.val), config.seq_len, config.eval_sequences)
        self.eval_chunk = max(1, config.eval_chunk(job.data.vocab_size, job.micro) // job.shards)

    def restore(self) -> tuple[int, float] | None:
        """Continue from the job's checkpoint, if any: (step, seconds)."""
        return checkpoints.restore_checkpoint(self.job.checkpoint_path, model=self.model, optimizer=self.optimizer,
                                              config=self.job.config, dev=self.job.dev)

    def wrap(self) -> None:
        """DDP and torch.compile around the model (after a restore, so both see the restored weights)."""
        job = self.job
        self.step_model, self.ddp = build.step_module(self.model, job.dev, world=job.world,
                                                      compile_model=job.compile, micro=job.micro,
                                                      seq_len=job.config.seq_len,
                                                      precision=job.config.precision)

    # ------------------------------------------------------------------------------------------ step

    def step(self, step: int) -> torch.Tensor:
        """One optimizer step (all micro-batches of this rank); returns its mean loss, on the device."""
        job, config = self.job, self.job.config
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        if config.dropout > 0:  # dropout masks from (seed, step, rank): resumable without RNG replay
            torch.manual_seed(hash((config.seed, step, job.rank)) & 0x7FFF_FFFF)
        step_loss = torch.zeros((), device=job.dev)
        accum = job.accum
        shard_scale = 1.0 / (accum * job.shards)
        for i, (x, y) in enumerate(self._local_batches(step)):
            if job.pool is not None:
                parts = zip(x.chunk(job.shards), y.chunk(job.shards), strict=True)
                for loss in job.pool.map(lambda p: self._forward_backward(*p, shard_scale), parts):
                    step_loss += loss / (accum * job.shards)
                continue
            sync = contextlib.nullcontext()
            if self.ddp is not None and i < accum - 1:
                sync = self.ddp.no_sync()  # all-reduce gradients once, after the last micro-batch
            with sync:
                step_loss += self._forward_backward(x, y, 1.0 / accum) / accum
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return step_loss

    def _forward_backward(self, x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
        # autocast and grad mode are per thread: set them here
        with device_mod.autocast(self.job.dev, self.job.config.precision):
            _, loss = self.step_model(x, y)
        (loss * scale).backward()
        return loss.detach()

    def _local_batches(self, step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's micro-batches of step ``step``: a pure function of (seed, step), so resumable."""
        job, config = self.job, self.job.config
        micro, accum, train_tokens = job.micro, job.accum, job.data.train
        offsets = corpus_mod.batch_offsets(len(train_tokens), config.seq_len, config.batch_size,
                                           seed=config.seed, step=step)
        mine = offsets[job.rank * micro * accum:(job.rank + 1) * micro * accum]
        x, y = corpus_mod.gather(train_tokens, mine, config.seq_len)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        if job.dev.type == "cuda":
            x, y = x.pin_memory().to(job.dev, non_blocking=True), y.pin_memory().to(job.dev, non_blocking=True)
        for i in range(accum):
            yield x[i * micro:(i + 1) * micro], y[i * micro:(i + 1) * micro]

    # ------------------------------------------------------------------------------------------ evaluation

    def evaluate(self) -> float:
        """Mean validation loss over the run's evaluation sequences, all ranks together."""
        job = self.job
        self.model.eval()
        mine = self.val_offsets[job.rank::job.world]
        chunks = [mine[i:i + self.eval_chunk] for i in range(0, len(mine), self.eval_chunk)]
        sums = list(job.pool.map(self._eval_loss, chunks) if job.pool else map(self._eval_loss, chunks))
        total = torch.stack([torch.stack(sums).sum(),
                             torch.tensor(float(len(mine)), dtype=torch.float64, device=job.dev)])
        self.model.train()
        total = all_reduce_sum(total, job.world)
        return float(total[0] / total[1])

    def _eval_loss(self, offsets) -> torch.Tensor:
        dev, seq_len = self.job.dev, self.job.config.seq_len
        x, y = (torch.from_numpy(a).to(dev) for a in corpus_mod.gather(self.job.data.val, offsets, seq_len))
        with torch.no_grad(), device_mod.autocast(dev, self.job.config.precision):
            _, loss = self.model(x, y)
        return loss.double() * len(offsets)

    def save(self, step: int, seconds: float) -> None:
        checkpoints.save_checkpoint(self.job.checkpoint_path, model=self.model, optimizer=self.optimizer, step=step,
                                    seconds=seconds, config=self.job.config, run_id=self.job.run_id,
                                    dev=self.job.dev)


# ---------------------------------------------------------------------------------------------- loop


def train_run(job: Job) -> RunResult:
    """Train the job's run from its last checkpoint (or the start) to its last step; returns what it measured."""
    trainer = Trainer(job)
    restored = trainer.restore()
    start, seconds = restored if restored is not None else (0, 0.0)
    resumed_from = start if restored is not None else None
    history = _start_run(job, resumed_from)
    trainer.wrap()
    bar = Progress(job.run_id, job.config.steps, job.progress, start=start)
    curve = Curve(job, bar, seconds, history)
    if start == 0:
        curve.evaluated(0, trainer.evaluate(), 0.0)
    # Throughput counts training steps only: evaluation and store writes are excluded, timed from a
    # device synchronisation so queued GPU work is charged to the steps that queued it.
    rate = Rate(start, job.config.batch_tokens)
    tok_s, evals_done = 0.0, 0
    for step in range(start + 1, job.config.steps + 1):
        curve.add(step, trainer.step(step))
        if job.main and bar.enabled:  # the bar redraws (or logs) itself only every so often
            tok_s = rate.tokens_per_second(step)
            bar.step(step, tok_s, tok_s * job.flops_per_token)
        if step % job.config.eval_every == 0 or step == job.config.steps:
            device_mod.synchronize(job.dev)
            tok_s = rate.tokens_per_second(step)
            with rate.paused():
                curve.evaluated(step, trainer.evaluate(), tok_s)
                evals_done += 1
                _maybe_checkpoint(job, trainer, curve, step, evals_done)
    bar.close()
    return _finish(job, curve, tok_s, resumed_from)


def _start_run(job: Job, resumed_from: int | None) -> list[tuple[int, float]]:
    """Mark the run running and drop points past the checkpoint (rank 0); the validation history so far."""
    if not job.main:
        return []
    runs.delete_points_after(job.db, job.run_id, resumed_from if resumed_from is not None else -1)
    runs.update_run(job.db, job.run_id, status="running", error=None)
    if resumed_from is None:
        return []
    log.info("run %d resumes from step %d", job.run_id, resumed_from)
    return [(p.step, p.val_loss) for p in runs.get_points(job.db, job.run_id) if p.val_loss is not None]


def _maybe_checkpoint(job: Job, trainer: Trainer, curve: Curve, step: int, evals_done: int) -> None:
    """Every ``checkpoint_every`` evaluations (and at the end when the checkpoint is kept), on rank 0."""
    last = step == job.config.steps
    due = (not last and evals_done % job.config.checkpoint_every == 0) or (last and job.keep_checkpoint)
    if job.main and due:
        trainer.save(step, curve.elapsed())
    barrier(job.world)  # no rank runs ahead of a checkpoint it might have to resume from


def _finish(job: Job, curve: Curve, tok_s: float, resumed_from: int | None) -> RunResult:
    total_seconds = curve.elapsed()
    best_step, best_val = min(curve.history, key=lambda h: h[1])
    final_val = curve.history[-1][1]
    stored = None
    if job.main:
        stored = runs.update_run(job.db, job.run_id, status="complete", final_val_loss=final_val,
                                 best_val_step=best_step, error=None)
    config = job.config
    return RunResult(run=stored, final_train_loss=curve.last_train, final_val_loss=final_val,
                     best_val_loss=best_val, best_val_step=best_step, steps=config.steps,
                     tokens=config.tokens, seconds=total_seconds, tokens_per_second=tok_s,
                     flops_per_second=tok_s * job.flops_per_token, n_params=job.n_params,
                     params_total=job.params_total, resumed_from=resumed_from, device=str(job.dev),
                     world_size=job.world, precision=config.precision)
