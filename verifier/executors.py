"""Where stored runs are trained: in this process, in a pool of local worker processes, or through submitit.

Every executor takes ids of runs already stored as 'pending' (their configs and predictions are written
before any training starts) and trains each with ``verifier.train.train(..., run_id=...)``, which writes
the curve to the store and marks the run complete or failed. Workers open the database themselves, so
they only need its path: SQLite's WAL mode and busy timeout let several of them write at once.

* ``InlineExecutor``: one run after another in this process, with all the threads torch wants.
* ``LocalExecutor``: one long-lived worker process per free core (CPU) or per GPU, each pinned to its
  core or GPU and using one thread; torch is imported once per worker, not once per run.
* ``SubmititExecutor``: one submitit job per run: Slurm on a cluster, or submitit's local executor.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Self

import msgspec

from fits.errors import BadInput

if TYPE_CHECKING:
    from verifier.check.ladder import Throughput

log = logging.getLogger("verifier.executors")

EXECUTORS = ("local", "submitit", "inline")


class RunOutcome(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What became of one run an executor was given."""

    run_id: int
    status: str
    """"complete" or "failed"."""
    final_val_loss: float | None = None
    best_val_step: int | None = None
    seconds: float | None = None
    """Wall time of the whole training call, startup and evaluations included."""
    tokens_per_second: float | None = None
    flops_per_second: float | None = None
    worker: str | None = None
    error: str | None = None


Callback = Callable[[RunOutcome], None]


class Executor(Protocol):
    name: str
    workers: int

    def run(self, run_ids: Sequence[int], on_done: Callback | None = None) -> list[RunOutcome]:
        """Train the runs (given longest first for the best packing) and return their outcomes in the same order."""
        ...

    def measure(self, seconds: float = 1.5, precision: str = "fp32") -> Throughput:
        """Training throughput of one worker in ``precision``, measured where (and as) the runs will train."""
        ...

    def close(self) -> None: ...


def train_stored_run(db_path: str, run_id: int, device: str = "auto") -> RunOutcome:
    """Train one stored run to completion in this process; never raises for a failed run."""
    from fits.store import open_db
    from verifier import runs
    from verifier.train import train

    t0 = time.perf_counter()
    worker = f"pid {os.getpid()}"
    db = open_db(db_path, seed=False)
    try:
        run = runs.get_run(db, run_id)
        result = train(run.run_config, db=db, run_id=run_id, device=device, progress=False, resume=True)
        return RunOutcome(run_id=run_id, status="complete", final_val_loss=result.final_val_loss,
                          best_val_step=result.best_val_step, seconds=time.perf_counter() - t0,
                          tokens_per_second=result.tokens_per_second, flops_per_second=result.flops_per_second,
                          worker=worker)
    except Exception as exc:  # the run is marked failed by train(); report it and carry on with the others
        log.warning("run %d failed: %s: %s", run_id, type(exc).__name__, exc)
        return RunOutcome(run_id=run_id, status="failed", seconds=time.perf_counter() - t0, worker=worker,
                          error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        db.conn.close()


class _HoldsNothing:
    """An executor that keeps nothing open between runs: a context manager whose close has nothing to do."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass


class InlineExecutor(_HoldsNothing):
    """Runs one after another in this process."""

    name = "inline"
    workers = 1

    def __init__(self, db_path: str, device: str = "auto") -> None:
        self.db_path, self.device = db_path, device

    def measure(self, seconds: float = 1.5, precision: str = "fp32") -> Throughput:
        from verifier.check.ladder import measure_throughput
        from verifier.device import cpu_count

        return measure_throughput(self.device, threads=cpu_count(), seconds=seconds, precision=precision)

    def run(self, run_ids: Sequence[int], on_done: Callback | None = None) -> list[RunOutcome]:
        outcomes = []
        for run_id in run_ids:
            outcome = train_stored_run(self.db_path, run_id, self.device)
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
        return outcomes


# ---------------------------------------------------------------------------------------------- local pool


def free_slots(device: str) -> list[str]:
    """Worker slots on this machine: "gpu:<i>" per visible GPU, else "cpu:<core>" per core we may run on."""
    if device != "cpu":
        import torch

        if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
            if device.startswith("cuda:"):
                return [f"gpu:{device.split(':', 1)[1]}"]
            return [f"gpu:{i}" for i in range(torch.cuda.device_count())]
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no pinning, just a count
        cores = list(range(os.cpu_count() or 1))
    return [f"cpu:{c}" for c in cores]


_SLOT: dict[str, object] = {}


def _init_worker(slots: mp.Queue, barrier) -> None:
    """Claim one slot: pin to its core (torch then sizes its thread pool from the affinity) or its GPU."""
    slot = slots.get()
    _SLOT["slot"] = slot
    _SLOT["barrier"] = barrier
    kind, index = slot.split(":", 1)
    if kind == "cpu":
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {int(index)})
        os.environ["OMP_NUM_THREADS"] = "1"
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = index


def _pool_task(db_path: str, run_id: int, device: str) -> RunOutcome:
    slot = str(_SLOT.get("slot", ""))
    if slot.startswith("gpu:"):
        device = "cuda"  # this worker sees exactly one GPU
    outcome = train_stored_run(db_path, run_id, device)
    outcome.worker = f"{slot} (pid {os.getpid()})"
    return outcome


class LocalExecutor:
    """A pool of worker processes on this machine, one per free core (CPU) or GPU.

    The pool lives from the first ``run`` (or ``measure``) until ``close``, so workers import torch once.
    """

    name = "local"

    def __init__(self, db_path: str, device: str = "auto", workers: int | None = None) -> None:
        self.db_path, self.device = db_path, device
        self.slots = free_slots(device)
        self.workers = max(1, min(workers or len(self.slots), len(self.slots)))
        self._pool: cf.ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # interrupted or failed: do not wait for runs still training
            self.terminate()

    def terminate(self) -> None:
        """Stop the workers now (their runs are left for the caller to mark failed)."""
        if self._pool is None:
            return
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
        self._pool = None

    def _open(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            ctx = mp.get_context("spawn")  # fork would copy this process's torch threads and open database
            slots: mp.Queue = ctx.Queue()
            for slot in self.slots[: self.workers]:
                slots.put(slot)
            barrier = ctx.Barrier(self.workers)
            self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx,
                                                initializer=_init_worker, initargs=(slots, barrier))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def measure(self, seconds: float = 1.5, precision: str = "fp32") -> Throughput:
        """Throughput of one worker while all of them train at once (which is how runs will train)."""
        pool = self._open()
        futures = [pool.submit(_measure_task, seconds, precision) for _ in range(self.workers)]
        samples = [f.result() for f in futures]
        # The slowest worker sets the pace of a phase; plan with it.
        return min(samples, key=lambda t: t.matmul_flops_per_second)

    def run(self, run_ids: Sequence[int], on_done: Callback | None = None) -> list[RunOutcome]:
        if not run_ids:
            return []
        pool = self._open()
        outcomes: dict[int, RunOutcome] = {}
        futures = {pool.submit(_pool_task, self.db_path, rid, self.device): rid for rid in run_ids}
        for future in cf.as_completed(futures):
            rid = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # a worker died (killed, out of memory): the run did not finish
                outcome = RunOutcome(run_id=rid, status="failed", error=f"worker lost: {exc}"[:500])
                _mark_failed(self.db_path, rid, outcome.error or "worker lost")
            outcomes[rid] = outcome
            if on_done is not None:
                on_done(outcome)
        return [outcomes[rid] for rid in run_ids]


def _measure_task(seconds: float, precision: str = "fp32"):
    import verifier.train  # noqa: F401  (imports torch: every worker is started before any measures)
    from verifier.check.ladder import measure_throughput

    slot = str(_SLOT.get("slot", "cpu:0"))
    barrier = _SLOT.get("barrier")
    if barrier is not None:  # all workers measure at once, as they will train: that contention is real
        barrier.wait(timeout=300)
    return measure_throughput("cuda" if slot.startswith("gpu:") else "cpu", threads=1, seconds=seconds,
                              precision=precision)


def _mark_failed(db_path: str, run_id: int, error: str) -> None:
    from fits.store import open_db
    from verifier import runs

    db = open_db(db_path, seed=False)
    try:
        if runs.get_run(db, run_id).status != "complete":
            runs.update_run(db, run_id, status="failed", error=error)
    finally:
        db.conn.close()


# ---------------------------------------------------------------------------------------------- submitit


def _submitit_task(db_path: str, run_id: int, device: str, slot: str | None) -> RunOutcome:
    if slot is not None:  # a local job: share this machine's cores like the pool does
        kind, index = slot.split(":", 1)
        if kind == "cpu" and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {int(index)})
        elif kind == "gpu":
            os.environ["CUDA_VISIBLE_DEVICES"] = index
            device = "cuda"
    return train_stored_run(db_path, run_id, device)


class SubmititExecutor(_HoldsNothing):
    """One submitit job per run: Slurm when it is there (or cluster="slurm"), else submitit's local executor.

    ``folder`` holds submitit's logs and pickles; the database must be on a file system the jobs can reach.
    Local jobs are started at most ``workers`` at a time, each pinned to a free core or GPU.
    """

    name = "submitit"

    def __init__(self, db_path: str, folder: str | os.PathLike, device: str = "auto", *, cluster: str | None = None,
                 timeout_min: int = 60, slurm_partition: str | None = None, gpus_per_job: int = 0,
                 cpus_per_job: int = 1, workers: int | None = None) -> None:
        try:
            import submitit
        except ImportError as exc:
            raise ValueError("executor: submitit is not installed; install the 'cluster' extra "
                             "(pip install 'scaleplan[cluster]')") from exc
        self.db_path, self.device = db_path, device
        self.folder = Path(folder)
        self.executor = submitit.AutoExecutor(folder=self.folder, cluster=cluster)
        self.cluster = self.executor.cluster
        params: dict = {"timeout_min": timeout_min, "gpus_per_node": gpus_per_job, "cpus_per_task": cpus_per_job,
                        "name": "scaleplan-run"}
        if self.cluster == "slurm" and slurm_partition:
            params["slurm_partition"] = slurm_partition
        self.executor.update_parameters(**params)
        self.slots: list[str | None] = free_slots(device) if self.cluster in ("local", "debug") else []
        default = len(self.slots) if self.slots else 64
        self.workers = max(1, min(workers or default, default))

    def measure(self, seconds: float = 1.5, precision: str = "fp32") -> Throughput:
        """Measured here, on one thread: a local job is pinned to one core; Slurm nodes are assumed alike."""
        from verifier.check.ladder import measure_throughput

        return measure_throughput(self.device, threads=1, seconds=seconds, precision=precision)

    def run(self, run_ids: Sequence[int], on_done: Callback | None = None) -> list[RunOutcome]:
        outcomes: dict[int, RunOutcome] = {}
        pending = list(run_ids)
        active: dict[int, tuple[object, str | None]] = {}
        free = list(self.slots[: self.workers]) or [None] * self.workers
        while pending or active:
            while pending and free:
                rid, slot = pending.pop(0), free.pop(0)
                active[rid] = (self.executor.submit(_submitit_task, self.db_path, rid, self.device, slot), slot)
            time.sleep(0.2)
            for rid, (job, slot) in list(active.items()):
                if not job.done():
                    continue
                del active[rid]
                free.append(slot)
                try:
                    outcome = job.result()
                except Exception as exc:  # the job itself failed (preempted, killed, bad node)
                    outcome = RunOutcome(run_id=rid, status="failed", error=f"job {job.job_id}: {exc}"[:500])
                    _mark_failed(self.db_path, rid, outcome.error or "job failed")
                outcome.worker = f"submitit {self.cluster} job {job.job_id}"
                outcomes[rid] = outcome
                if on_done is not None:
                    on_done(outcome)
        return [outcomes[rid] for rid in run_ids]


def make_executor(name: str, db_path: str, device: str = "auto", *, workers: int | None = None,
                  folder: str | os.PathLike | None = None, cluster: str | None = None) -> Executor:
    """An executor by name: "local" (process pool), "submitit" (Slurm or local jobs), or "inline"."""
    if name == "local":
        return LocalExecutor(db_path, device, workers)
    if name == "inline":
        return InlineExecutor(db_path, device)
    if name == "submitit":
        folder = folder or Path(db_path).resolve().parent / "submitit"
        return SubmititExecutor(db_path, folder, device, cluster=cluster, workers=workers)
    raise BadInput(f"must be one of {', '.join(EXECUTORS)}, got {name!r}", field="executor")
