"""The training loop: one run of a GPT on a corpus, its curve written to the store as it is measured.

``train(config, db=db)`` creates (or resumes) a run, trains it, and returns a ``RunResult``. Every step's
training loss and every evaluation's validation loss go into ``run_points``; the run's status moves
pending → running → complete, or failed on any error. Checkpoints (model, optimizer, RNG state, step) are
written atomically every ``checkpoint_every`` evaluations; running the same configuration again after a
crash or ``kill -9`` continues from the last one, and because batches are a pure function of (seed, step)
the continued curve is the one the uninterrupted run would have drawn.

Under ``torchrun`` (see verifier/ddp.py) the same loop runs on every rank with DistributedDataParallel:
each rank trains on its slice of the same global batch and rank 0 alone talks to the store.

This module is the entry point: it validates the device, corpus and memory, claims the run and hands it to
the loop; the parts live in verifier/training (config, memory, checkpoints, distributed, build, progress,
loop).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlite_utils
import torch

from verifier import corpus as corpus_mod
from verifier import device as device_mod
from verifier import runs
from verifier.model import embedding_params, flops_per_token, non_embedding_params
from verifier.runs import ConfigError, Run, RunConfig
from verifier.training.checkpoints import RunBusy, checkpoint_dir, claim_or_create, run_is_live, run_lock
from verifier.training.config import default_n_head, default_warmup, kaplan_lr, make_config
from verifier.training.distributed import main_first, rank_world
from verifier.training.loop import Job, RunResult, TrainingDiverged, train_run
from verifier.training.memory import ModelTooLarge, check_memory, estimate_memory

SMALL_STEP_FLOPS = 2e9
"""Per-rank training FLOPs per step below which the CPU loop runs on one thread."""


def train(config: RunConfig, *, db: sqlite_utils.Database | None, run_id: int | None = None,
          device: str | torch.device = "auto", progress: bool = True, resume: bool = True,
          attention: str = "auto", compile: bool = False, keep_checkpoint: bool = False,
          threads: int | None = None) -> RunResult:
    """Train one run and store its curve; returns when the run is complete.

    ``run_id`` trains (or continues) an existing run, e.g. one a check created as 'pending'; its stored
    config must equal ``config``. Without it, ``resume=True`` continues the newest unfinished stand-alone
    run with the same config and corpus, and otherwise a new run is created. Validation errors (corpus,
    device, memory) are raised before a new run is created; once a run exists, any error marks it failed.
    Under torch.distributed, ``db`` is only used on rank 0 (other ranks may pass None). ``threads`` sets
    the CPU threads (default: the cores this process may use, divided among local ranks; one thread for
    runs whose step is under SMALL_STEP_FLOPS, where thread synchronisation costs more than it saves and
    a busy machine makes every parallel region wait for a descheduled thread).
    """
    rank, world = rank_world()
    main = rank == 0
    if main and db is None:
        raise ValueError("db: rank 0 needs a database to record the run in")
    # Flush-denormal is process-wide CPU state; hand it back as found so numeric code running after
    # training in the same process (fits, property tests) sees IEEE behaviour again.
    flushed_before = device_mod.flush_denormal_enabled()
    run = _stored_run(db, run_id, config) if main and run_id is not None else None
    claimed: list[Run] = [run] if run is not None else []
    try:
        return _prepare_and_train(config, db, claimed, device=device, progress=progress and main, resume=resume,
                                  attention=attention, compile_model=compile, keep_checkpoint=keep_checkpoint,
                                  threads=threads, rank=rank, world=world)
    except RunBusy:
        raise  # the run belongs to the process that holds it; leave its status alone
    except BaseException as exc:
        if main and claimed:
            with contextlib.suppress(Exception):
                if runs.get_run(db, claimed[0].id).status != "complete":
                    runs.update_run(db, claimed[0].id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    finally:
        torch.set_flush_denormal(flushed_before)


def _stored_run(db: sqlite_utils.Database, run_id: int, config: RunConfig) -> Run:
    """The run ``run_id``, when it has this config and is not complete yet."""
    run = runs.get_run(db, run_id)
    if run.config is None or runs.config_json(run.run_config) != runs.config_json(config):
        raise ConfigError(f"config: differs from the stored config of run {run_id}")
    if run.status == "complete":
        raise ConfigError(f"run_id: run {run_id} is already complete")
    return run


def _prepare_and_train(config: RunConfig, db: sqlite_utils.Database | None, claimed: list[Run], *,
                       device: str | torch.device, progress: bool, resume: bool, attention: str,
                       compile_model: bool, keep_checkpoint: bool, threads: int | None, rank: int,
                       world: int) -> RunResult:
    """Validate the device, corpus, batch split and memory, claim the run (``claimed`` holds it once it
    exists, for the caller to mark failed) and train it under its lock."""
    dev = device_mod.resolve_device(device)
    if world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    threads = threads if threads is not None else _default_threads(config, world, local_world)
    data = _load_data(config, rank, world)
    micro = _micro_batch(config, world)
    shards = _cpu_shards(config, dev, world, threads, micro, compile_model)
    device_mod.configure(dev, threads=1 if shards > 1 else threads)
    check_memory(config, data.vocab_size, dev, world=world, local_world=local_world)
    scope = config.scope or data.scope
    n_params = non_embedding_params(config.n_layer, config.d_model, bias=config.bias)
    params_total = n_params + embedding_params(data.vocab_size, config.seq_len, config.d_model,
                                               tie_embeddings=config.tie_embeddings)
    held = contextlib.ExitStack()

    def claim() -> tuple[int, str]:
        if not claimed:
            claimed.append(claim_or_create(db, config, scope, n_params, params_total, resume))
        directory = checkpoint_dir(db, claimed[0].id)
        held.enter_context(run_lock(directory, claimed[0].id))
        return claimed[0].id, str(directory)

    with held:
        key, directory = main_first(claim, rank, world)
        pool = None
        if shards > 1:  # threads inherit the FP environment, but say flush-denormal explicitly
            pool = held.enter_context(ThreadPoolExecutor(
                shards, thread_name_prefix="shard", initializer=torch.set_flush_denormal, initargs=(True,)))
        result = train_run(Job(config=config, db=db, run_id=key, checkpoint_dir=Path(directory), data=data, dev=dev,
                               rank=rank, world=world, micro=micro, pool=pool, shards=shards, progress=progress,
                               attention=attention, compile=compile_model, keep_checkpoint=keep_checkpoint,
                               n_params=n_params, params_total=params_total))
    if rank == 0 and not keep_checkpoint:
        shutil.rmtree(directory, ignore_errors=True)
    return result


def _default_threads(config: RunConfig, world: int, local_world: int) -> int:
    """The cores this process may use, divided among local ranks; one for steps under SMALL_STEP_FLOPS."""
    step_flops = flops_per_token(config.n_layer, config.d_model, config.seq_len) * config.batch_tokens
    if step_flops / world < SMALL_STEP_FLOPS:
        return 1
    return max(1, device_mod.cpu_count() // local_world)


def _load_data(config: RunConfig, rank: int, world: int) -> corpus_mod.Corpus:
    """The run's corpus: rank 0 builds the token cache; the other ranks then open it."""
    loaded: dict[str, corpus_mod.Corpus] = {}

    def load() -> None:
        loaded["data"] = corpus_mod.load_corpus(config.corpus, tokenizer=config.tokenizer,
                                                vocab_size=config.vocab_size)

    main_first(load, rank, world)
    data = loaded.get("data") or corpus_mod.load_corpus(config.corpus, tokenizer=config.tokenizer,
                                                        vocab_size=config.vocab_size)
    data.check_seq_len(config.seq_len)
    return data


def _micro_batch(config: RunConfig, world: int) -> int:
    """Sequences per forward/backward on one rank; the batch must split evenly over ranks and micro-batches."""
    if config.batch_size % world:
        raise ConfigError(f"batch_size: {config.batch_size} sequences do not split evenly over {world} ranks")
    local_batch = config.batch_size // world
    micro = config.micro_batch or local_batch
    if local_batch % micro:
        raise ConfigError(f"micro_batch: {micro} does not divide the per-rank batch of {local_batch}")
    return micro


def _cpu_shards(config: RunConfig, dev: torch.device, world: int, threads: int, micro: int,
                compile_model: bool) -> int:
    """CPU data parallelism across threads: with shards > 1 each op runs single-threaded and every
    micro-batch is split over a pool of threads that run forward and backward side by side (ops
    release the GIL; autograd locks the accumulation into shared gradients). For the small ops of
    small models this keeps the cores busy where per-op threading spends its time synchronising."""
    if dev.type == "cpu" and world == 1 and threads > 1 and not compile_model and config.dropout == 0:
        return max(k for k in range(1, threads + 1) if micro % k == 0)
    return 1


__all__ = ["ModelTooLarge", "RunBusy", "RunResult", "TrainingDiverged", "checkpoint_dir", "default_n_head",
           "default_warmup", "estimate_memory", "kaplan_lr", "make_config", "run_is_live", "train"]
