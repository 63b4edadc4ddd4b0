"""The training loop: one run of a GPT on a corpus, its curve written to the store as it is measured.

``train(config, db=db)`` creates (or resumes) a run, trains it, and returns a ``RunResult``. Every step's
training loss and every evaluation's validation loss go into ``run_points``; the run's status moves
pending → running → complete, or failed on any error. Checkpoints (model, optimizer, RNG state, step) are
written atomically every ``checkpoint_every`` evaluations; running the same configuration again after a
crash or ``kill -9`` continues from the last one, and because batches are a pure function of (seed, step)
the continued curve is the one the uninterrupted run would have drawn.

Under ``torchrun`` (see verifier/ddp.py) the same loop runs on every rank with DistributedDataParallel:
each rank trains on its slice of the same global batch and rank 0 alone talks to the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import sqlite_utils
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from fits import accounting
from verifier import corpus as corpus_mod
from verifier import device as device_mod
from verifier import runs
from verifier.model import GPT, GPTConfig
from verifier.runs import ConfigError, Run, RunConfig, RunPoint

log = logging.getLogger("verifier.train")

BYTES_PER_STATE_PARAM = 16
"""fp32 weight + gradient + AdamW's two moments."""
ACTIVATION_ELEMENTS_PER_LAYER = 18
"""Saved activations per token per layer, in units of d_model (inputs of the LayerNorms, QKV, attention
output and statistics, projection, and the 4·d_model feed-forward input and output)."""
SMALL_STEP_FLOPS = 2e9
"""Per-rank training FLOPs per step below which the CPU loop runs on one thread."""


class ModelTooLarge(ValueError):
    """The estimated training memory exceeds what the device has available."""


class RunBusy(RuntimeError):
    """Another process is training this run right now."""


class TrainingDiverged(RuntimeError):
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
    """Achieved training FLOP/s in ``flops_per_token`` accounting (6N + attention), all ranks together."""
    n_params: int
    params_total: int
    resumed_from: int | None
    device: str
    world_size: int = 1


# ---------------------------------------------------------------------------------------------- config


def default_n_head(d_model: int) -> int:
    """64-wide heads (as planner.shape chooses), or the nearest head count that divides d_model."""
    for h in range(max(1, d_model // 64), 0, -1):
        if d_model % h == 0:
            return h
    return 1


def default_warmup(steps: int) -> int:
    """Kaplan used 3000 warm-up steps of 250k; short runs warm up over 5% of their steps."""
    return min(3000, max(1, round(0.05 * steps)))


def kaplan_lr(n_params: int) -> float:
    """Kaplan et al. eq. D.1, LR(N) = 0.003239 − 0.0001395·ln N."""
    from fits.laws.kaplan2020 import learning_rate

    return float(learning_rate(n_params))


def make_config(*, n_layer: int | None = None, d_model: int | None = None, n_head: int | None = None,
                params: float | None = None, steps: int | None = None, tokens: float | None = None,
                batch_size: int = 16, seq_len: int = 256, lr: float | None = None,
                warmup_steps: int | None = None, corpus: str | os.PathLike | None = None,
                **fields) -> RunConfig:
    """A RunConfig with the derived values filled in.

    Shape: explicit (n_layer, d_model[, n_head]) or a non-embedding parameter target ``params`` (shape
    from ``planner.shape.shape_for_params``). Length: ``steps`` or ``tokens`` (rounded up to whole steps).
    Defaults: n_head for 64-wide heads, lr from Kaplan's eq. D.1, warm-up 5% of the steps (at most 3000).
    """
    if params is not None:
        if n_layer is not None or d_model is not None:
            raise ConfigError("params: give either a parameter target or --n-layer/--d-model, not both")
        n_layer, d_model, shape_head = _shape_for(params)
        n_head = n_head or shape_head
    if n_layer is None or d_model is None:
        raise ConfigError("shape: give --n-layer and --d-model, or a --params target")
    if d_model < 1 or n_layer < 1:
        raise ConfigError("n_layer and d_model must be positive integers")
    n_head = n_head or default_n_head(d_model)
    if (steps is None) == (tokens is None):
        raise ConfigError("steps: give exactly one of --steps or --tokens")
    if tokens is not None:
        if not tokens > 0:
            raise ConfigError(f"tokens: must be positive, got {tokens}")
        steps = max(1, math.ceil(tokens / (batch_size * seq_len)))
    if lr is None:
        lr = kaplan_lr(accounting.non_embedding_params(n_layer, d_model, bias=fields.get("bias", False)))
        if not lr > 0:
            raise ConfigError("lr: Kaplan's eq. D.1 gives no usable learning rate above N ≈ 1e10; pass --lr")
    warmup_steps = warmup_steps if warmup_steps is not None else default_warmup(steps)
    corpus_path = None if corpus is None else os.fspath(Path(corpus).expanduser().resolve())
    try:
        return RunConfig(n_layer=n_layer, d_model=d_model, n_head=n_head, steps=steps, lr=lr,
                         warmup_steps=warmup_steps, batch_size=batch_size, seq_len=seq_len,
                         corpus=corpus_path, **fields)
    except TypeError as exc:  # an unknown field name
        raise ConfigError(str(exc)) from exc


def _shape_for(params: float) -> tuple[int, int, int]:
    try:
        from planner.shape import shape_for_params
    except ImportError as exc:
        raise ConfigError("params: planner.shape is not available to choose a shape; "
                          "pass --n-layer and --d-model instead") from exc
    shape = shape_for_params(params)
    for warning in getattr(shape, "warnings", []):
        log.warning("shape for N=%.3g: %s", params, warning)
    return int(shape.n_layer), int(shape.d_model), int(shape.n_head)


def estimate_memory(config: RunConfig, vocab_size: int, *, cuda: bool, world_size: int = 1) -> int:
    """Bytes one rank needs: parameters, gradients and AdamW state in fp32, plus the activations of one
    micro-batch (bf16 under autocast on GPU, fp32 on CPU) and the fp32 logits with their gradient."""
    total = accounting.total_params(config.n_layer, config.d_model, vocab_size, config.seq_len,
                                    tie_embeddings=config.tie_embeddings, bias=config.bias)
    micro = config.micro_batch or max(1, config.batch_size // world_size)
    tokens = micro * config.seq_len
    act_bytes = 2 if cuda else 4
    activations = tokens * config.d_model * (ACTIVATION_ELEMENTS_PER_LAYER * config.n_layer + 4) * act_bytes
    logits = tokens * vocab_size * 4 * 3
    return total * BYTES_PER_STATE_PARAM + activations + logits


# ---------------------------------------------------------------------------------------------- helpers


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
def _run_lock(directory: Path, run_id: int) -> Iterator[None]:
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
        with _run_lock(directory, run_id):
            return False
    except RunBusy:
        return True


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a reader sees the old checkpoint or the new one, never half of one


def _param_groups(model: GPT, weight_decay: float) -> list[dict]:
    """Weight decay on matrices (embeddings included, as in GPT-2), none on biases and LayerNorm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def _make_optimizer(model: GPT, config: RunConfig, dev: torch.device) -> torch.optim.Optimizer:
    # CUDA: the fused kernel. CPU: foreach, which measured several times faster than the CPU fused kernel.
    impl = {"fused": True} if dev.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr,
                             betas=(config.beta1, config.beta2), **impl)


class _Progress:
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


def _compiled(step_model: torch.nn.Module, model: GPT, dev: torch.device, micro: int, seq_len: int,
              world: int) -> torch.nn.Module:
    """torch.compile, tried once on a dummy batch; any failure (no C++ compiler, an unsupported op)
    falls back to eager with a warning. The trial leaves no gradients behind and the weights untouched."""
    compiled = torch.compile(step_model)
    x = torch.zeros(micro, seq_len, dtype=torch.long, device=dev)
    ok = torch.ones((), device=dev)
    try:
        with device_mod.autocast(dev):
            _, loss = compiled(x, x.clone())  # distinct tensors, as in training (dynamo guards on aliasing)
        loss.backward()
    except Exception as exc:
        log.warning("torch.compile failed (%s: %s); training eagerly", type(exc).__name__, str(exc)[:200])
        ok.zero_()
    model.zero_grad(set_to_none=True)
    if world > 1:  # every rank takes the same path, or DDP's collectives would not match
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return compiled if ok.item() == 1 else step_model


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _main_first(fn, rank: int, world: int):
    """Run ``fn`` on rank 0 and hand its (small, picklable) result to every rank; an error on rank 0
    is raised on every rank, so none waits forever in a collective that rank 0 never reaches."""
    result, error = None, None
    if rank == 0:
        try:
            result = fn()
        except BaseException as exc:
            error = exc
    if world > 1:
        box = [(result, None if error is None else (isinstance(error, ValueError), str(error)))]
        dist.broadcast_object_list(box, src=0)
        result, failure = box[0]
        if rank != 0 and failure is not None:
            bad_input, message = failure
            raise (ValueError if bad_input else RuntimeError)(f"rank 0: {message}")
    if error is not None:
        raise error
    return result


def _all_reduce_sum(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


# ---------------------------------------------------------------------------------------------- train


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
    rank, world = _rank_world()
    main = rank == 0
    if main and db is None:
        raise ValueError("db: rank 0 needs a database to record the run in")
    run: Run | None = None
    # Flush-denormal is process-wide CPU state; hand it back as found so numeric code running after
    # training in the same process (fits, property tests) sees IEEE behaviour again.
    flushed_before = device_mod.flush_denormal_enabled()
    if main and run_id is not None:
        run = runs.get_run(db, run_id)
        if run.config is None or runs.config_json(run.run_config) != runs.config_json(config):
            raise ConfigError(f"config: differs from the stored config of run {run_id}")
        if run.status == "complete":
            raise ConfigError(f"run_id: run {run_id} is already complete")
    try:
        dev = device_mod.resolve_device(device)
        if world > 1 and dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        if threads is None:
            threads = max(1, device_mod.cpu_count() // local_world)
            step_flops = config.batch_tokens * accounting.shape_flops_per_token(
                config.n_layer, config.d_model, config.seq_len, "kaplan")
            if step_flops / world < SMALL_STEP_FLOPS:
                threads = 1
        loaded: dict[str, corpus_mod.Corpus] = {}

        def load() -> None:  # rank 0 builds the token cache; the other ranks then open it
            loaded["data"] = corpus_mod.load_corpus(config.corpus, tokenizer=config.tokenizer,
                                                    vocab_size=config.vocab_size)

        _main_first(load, rank, world)
        data = loaded.get("data") or corpus_mod.load_corpus(config.corpus, tokenizer=config.tokenizer,
                                                            vocab_size=config.vocab_size)
        data.check_seq_len(config.seq_len)
        if config.batch_size % world:
            raise ConfigError(f"batch_size: {config.batch_size} sequences do not split evenly over {world} ranks")
        local_batch = config.batch_size // world
        micro = config.micro_batch or local_batch
        if local_batch % micro:
            raise ConfigError(f"micro_batch: {micro} does not divide the per-rank batch of {local_batch}")
        # CPU data parallelism across threads: with shards > 1 each op runs single-threaded and every
        # micro-batch is split over a pool of threads that run forward and backward side by side (ops
        # release the GIL; autograd locks the accumulation into shared gradients). For the small ops of
        # small models this keeps the cores busy where per-op threading spends its time synchronising.
        shards = 1
        if dev.type == "cpu" and world == 1 and threads > 1 and not compile and config.dropout == 0:
            shards = max(k for k in range(1, threads + 1) if micro % k == 0)
        device_mod.configure(dev, threads=1 if shards > 1 else threads)
        need = estimate_memory(config, data.vocab_size, cuda=dev.type == "cuda", world_size=world)
        if dev.type == "cpu":
            need *= local_world  # the ranks on this host share its memory
        have = device_mod.available_memory(dev)
        if need > 0.9 * have:
            raise ModelTooLarge(
                f"memory: this run needs about {need / 2**30:.2f} GiB per device (parameters, optimizer state "
                f"and activations) but {dev} has {have / 2**30:.2f} GiB available; use a smaller model or "
                "batch, set --micro-batch, or spread the batch over more devices with torchrun")
        scope = config.scope or data.scope
        counts = accounting.param_counts(config.n_layer, config.d_model, data.vocab_size, config.seq_len,
                                         tie_embeddings=config.tie_embeddings, bias=config.bias)
        n_params, params_total = counts.non_embedding, counts.total
        held = contextlib.ExitStack()

        def claim() -> tuple[int, str]:
            nonlocal run
            if run is None:
                run = _claim_or_create(db, config, scope, n_params, params_total, resume)
            directory = checkpoint_dir(db, run.id)
            held.enter_context(_run_lock(directory, run.id))
            return run.id, str(directory)

        with held:
            key, directory = _main_first(claim, rank, world)
            pool = None
            if shards > 1:  # threads inherit the FP environment, but say flush-denormal explicitly
                pool = held.enter_context(ThreadPoolExecutor(
                    shards, thread_name_prefix="shard", initializer=torch.set_flush_denormal, initargs=(True,)))
            result = _train_run(config, db, key, Path(directory), data, dev, rank, world, micro, pool, shards,
                                progress and main, attention, compile, keep_checkpoint, n_params, params_total)
        if main and not keep_checkpoint:
            shutil.rmtree(directory, ignore_errors=True)
        return result
    except RunBusy:
        raise  # the run belongs to the process that holds it; leave its status alone
    except BaseException as exc:
        if main and run is not None:
            with contextlib.suppress(Exception):
                if runs.get_run(db, run.id).status != "complete":
                    runs.update_run(db, run.id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    finally:
        torch.set_flush_denormal(flushed_before)


def _claim_or_create(db, config: RunConfig, scope: str, n_params: int, params_total: int,
                     resume: bool) -> Run:
    if resume:
        for candidate in runs.find_resumable(db, config, scope):
            with contextlib.suppress(RunBusy), _run_lock(checkpoint_dir(db, candidate.id), candidate.id):
                return candidate
    return runs.create_run(db, config, scope=scope, n_params=n_params, params_total=params_total)


def _train_run(config: RunConfig, db, run_id: int, ckpt_dir: Path, data: corpus_mod.Corpus,
               dev: torch.device, rank: int, world: int, micro: int, pool: ThreadPoolExecutor | None,
               shards: int, progress: bool, attention: str,
               compile_model: bool, keep_final: bool, n_params: int, params_total: int) -> RunResult:
    main = rank == 0
    ckpt_path = ckpt_dir / "checkpoint.pt"
    torch.manual_seed(config.seed)  # identical initial weights on every rank and every device
    model = GPT(GPTConfig(n_layer=config.n_layer, d_model=config.d_model, n_head=config.n_head,
                          vocab_size=data.vocab_size, seq_len=config.seq_len,
                          tie_embeddings=config.tie_embeddings, bias=config.bias, dropout=config.dropout,
                          attention=attention))
    assert sum(p.numel() for p in model.parameters()) == params_total, "parameter accounting and model disagree"
    model.to(dev)
    optimizer = _make_optimizer(model, config, dev)

    start, seconds, resumed_from = 0, 0.0, None
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=dev, weights_only=True)
        if state["config"] != runs.config_json(config):
            raise ConfigError(f"checkpoint {ckpt_path} belongs to a different config")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if dev.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], dev)
        start, seconds, resumed_from = state["step"], state["seconds"], state["step"]
    if main:
        runs.delete_points_after(db, run_id, start if resumed_from is not None else -1)
        runs.update_run(db, run_id, status="running", error=None)
        if resumed_from is not None:
            log.info("run %d resumes from step %d", run_id, start)

    step_model: torch.nn.Module = model
    ddp = None
    if world > 1:
        ddp = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
        step_model = ddp
    if compile_model:
        step_model = _compiled(step_model, model, dev, micro, config.seq_len, world)

    flops_token = accounting.shape_flops_per_token(config.n_layer, config.d_model, config.seq_len, "kaplan")
    train_tokens, val_tokens = data.train, data.val
    val_offsets = corpus_mod.eval_offsets(len(val_tokens), config.seq_len, config.eval_sequences)
    accum = (config.batch_size // world) // micro
    bar = _Progress(run_id, config.steps, progress)

    def forward_backward(x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
        with device_mod.autocast(dev):  # autocast and grad mode are per thread: set them here
            _, loss = step_model(x, y)
        (loss * scale).backward()
        return loss.detach()

    def eval_loss(offsets) -> torch.Tensor:
        x, y = (torch.from_numpy(a).to(dev) for a in corpus_mod.gather(val_tokens, offsets, config.seq_len))
        with torch.no_grad(), device_mod.autocast(dev):
            _, loss = model(x, y)
        return loss.double() * len(offsets)

    eval_chunk = max(1, config.eval_chunk(data.vocab_size, micro) // shards)

    def evaluate() -> float:
        model.eval()
        mine = val_offsets[rank::world]
        size = eval_chunk
        chunks = [mine[i:i + size] for i in range(0, len(mine), size)]
        sums = list(pool.map(eval_loss, chunks) if pool else map(eval_loss, chunks))
        total = torch.stack([torch.stack(sums).sum(), torch.tensor(float(len(mine)), dtype=torch.float64,
                                                                   device=dev)])
        model.train()
        total = _all_reduce_sum(total, world)
        return float(total[0] / total[1])

    def local_batches(step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        offsets = corpus_mod.batch_offsets(len(train_tokens), config.seq_len, config.batch_size,
                                           seed=config.seed, step=step)
        mine = offsets[rank * micro * accum:(rank + 1) * micro * accum]
        x, y = corpus_mod.gather(train_tokens, mine, config.seq_len)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        if dev.type == "cuda":
            x, y = x.pin_memory().to(dev, non_blocking=True), y.pin_memory().to(dev, non_blocking=True)
        for i in range(accum):
            yield x[i * micro:(i + 1) * micro], y[i * micro:(i + 1) * micro]

    pending: list[RunPoint] = []  # train-only points, written with the next evaluation
    losses: list[torch.Tensor] = []  # kept on the device: reading each one would sync every step
    loss_steps: list[int] = []
    evals_done = 0
    history: list[tuple[int, float]] = []
    last_train = float("nan")
    if main and resumed_from is not None:
        history = [(p.step, p.val_loss) for p in runs.get_points(db, run_id) if p.val_loss is not None]
    t_start = time.perf_counter()
    seconds_base = seconds

    def flush(step: int, val_loss: float | None, tok_s: float) -> None:
        nonlocal last_train
        if losses:
            values = _all_reduce_sum(torch.stack(losses).float(), world) / world
            values = values.tolist()
            if not all(math.isfinite(v) for v in values):
                bad = loss_steps[next(i for i, v in enumerate(values) if not math.isfinite(v))]
                raise TrainingDiverged(f"loss is not finite at step {bad}; lower --lr or raise --warmup")
            for s, v in zip(loss_steps, values, strict=True):
                pending.append(RunPoint(step=s, tokens=s * config.batch_tokens, train_loss=v,
                                        lr=config.lr_at(s)))
            last_train = values[-1]
            losses.clear()
            loss_steps.clear()
        elapsed = seconds_base + time.perf_counter() - t_start
        if pending and pending[-1].step == step:
            last = pending[-1]
            pending[-1] = RunPoint(step=step, tokens=last.tokens, train_loss=last.train_loss,
                                   val_loss=val_loss, lr=last.lr, seconds=elapsed)
        else:  # step 0: validation only
            pending.append(RunPoint(step=step, tokens=step * config.batch_tokens, val_loss=val_loss,
                                    lr=config.lr_at(step) if step else 0.0, seconds=elapsed))
        if main:
            runs.write_points(db, run_id, pending)
            bar.point(pending[-1], tok_s, tok_s * flops_token)
        pending.clear()

    if start == 0:
        val = evaluate()
        history.append((0, val))
        flush(0, val, 0.0)

    # Throughput counts training steps only: evaluation and store writes are excluded, timed from a
    # device synchronisation so queued GPU work is charged to the steps that queued it.
    loop_start, excluded, tok_s = time.perf_counter(), 0.0, 0.0

    def rate(step: int) -> float:
        return (step - start) * config.batch_tokens / max(time.perf_counter() - loop_start - excluded, 1e-9)

    for step in range(start + 1, config.steps + 1):
        lr = config.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if config.dropout > 0:  # dropout masks from (seed, step, rank): resumable without RNG replay
            torch.manual_seed(hash((config.seed, step, rank)) & 0x7FFF_FFFF)
        step_loss = torch.zeros((), device=dev)
        for i, (x, y) in enumerate(local_batches(step)):
            if pool is not None:
                parts = zip(x.chunk(shards), y.chunk(shards), strict=True)
                for loss in pool.map(lambda p: forward_backward(*p, 1.0 / (accum * shards)), parts):
                    step_loss += loss / (accum * shards)
                continue
            sync = contextlib.nullcontext()
            if ddp is not None and i < accum - 1:
                sync = ddp.no_sync()  # all-reduce gradients once, after the last micro-batch
            with sync:
                step_loss += forward_backward(x, y, 1.0 / accum) / accum
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip, foreach=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss)
        loss_steps.append(step)
        if main and bar.tty:
            tok_s = rate(step)
            bar.step(step, tok_s, tok_s * flops_token)

        if step % config.eval_every == 0 or step == config.steps:
            device_mod.synchronize(dev)
            tok_s = rate(step)
            paused = time.perf_counter()
            val = evaluate()
            history.append((step, val))
            flush(step, val, tok_s)
            evals_done += 1
            last = step == config.steps
            if main and ((not last and evals_done % config.checkpoint_every == 0) or (last and keep_final)):
                _save_checkpoint(ckpt_path, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                    "seconds": seconds_base + time.perf_counter() - t_start, "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
                    "config": runs.config_json(config), "run_id": run_id})
            if world > 1:
                dist.barrier()  # no rank runs ahead of a checkpoint it might have to resume from
            excluded += time.perf_counter() - paused

    bar.close()
    total_seconds = seconds_base + time.perf_counter() - t_start
    best_step, best_val = min(history, key=lambda h: h[1])
    final_val = history[-1][1]
    stored = None
    if main:
        stored = runs.update_run(db, run_id, status="complete", final_val_loss=final_val,
                                 best_val_step=best_step, error=None)
    return RunResult(run=stored, final_train_loss=last_train, final_val_loss=final_val,
                     best_val_loss=best_val, best_val_step=best_step, steps=config.steps,
                     tokens=config.tokens, seconds=total_seconds, tokens_per_second=tok_s,
                     flops_per_second=tok_s * flops_token, n_params=n_params, params_total=params_total,
                     resumed_from=resumed_from, device=str(dev), world_size=world)


def final_losses(points: list[RunPoint]) -> tuple[float | None, float | None]:
    """Last training and validation losses of a curve."""
    train = next((p.train_loss for p in reversed(points) if p.train_loss is not None), None)
    val = next((p.val_loss for p in reversed(points) if p.val_loss is not None), None)
    return train, val


__all__ = ["ModelTooLarge", "RunBusy", "RunResult", "TrainingDiverged", "checkpoint_dir", "default_n_head",
           "estimate_memory", "make_config", "run_is_live", "train"]
