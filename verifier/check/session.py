"""The session a check and a calibration share, and what it measures before any run trains.

``Session`` holds the database and its path (workers open it themselves), the executor, the measured training
throughput in the session's precision, the corpus and the plan's rules; ``Session.train`` stores runs as
'pending' with their predictions, trains them, and rescales the throughput from the measured wall times so the
next phase is sized better. ``open_session`` validates a check's or a calibration's input and measures.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import sqlite_utils

from verifier import runs as runs_mod
from verifier.check import ladder as ladder_mod
from verifier.check.ladder import ProxySpec, Rules, Throughput
from verifier.check.records import CheckError
from verifier.executors import EXECUTORS, Executor, RunOutcome, make_executor
from verifier.runs import Prediction, Run

REFERENCE_FIT = "besiroglu2024"
"""Centre of a calibration grid when nothing else is known: the default planning fit's allocation."""
MEASURE_SECONDS = 1.5


def database_path(db: sqlite_utils.Database) -> str:
    """The file behind an open database (workers open it by path)."""
    rows = db.execute("PRAGMA database_list").fetchall()
    path = next((r[2] for r in rows if r[1] == "main"), "")
    if not path:
        raise CheckError("an in-memory database cannot be shared with training workers; use a file", field="db")
    return path


def check_budget(budget_minutes: float) -> float:
    if isinstance(budget_minutes, bool) or not isinstance(budget_minutes, int | float) or not (
        math.isfinite(budget_minutes) and budget_minutes > 0
    ):
        raise CheckError(f"must be a positive number of minutes, got {budget_minutes!r}", field="budget_minutes")
    if budget_minutes > 7 * 24 * 60:
        raise CheckError(f"{budget_minutes:g} is more than a week; split the work", field="budget_minutes")
    return float(budget_minutes) * 60.0


def log_line(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Session:
    """One verifier session on one corpus: where runs go and how fast they train."""

    db: sqlite_utils.Database
    db_path: str
    executor: Executor
    device: str
    corpus: Any
    """verifier.corpus.Corpus of the default or given corpus."""
    scope: str
    rules: Rules
    deadline: float
    """time.monotonic() by which everything should be done."""
    throughput: Throughput | None = None
    precision: str = "fp32"
    """What the session's runs train in (resolved; also in ``rules`` and every proxy's RunConfig)."""
    plan_id: int | None = None
    check_id: int | None = None
    seed: int = 0
    memory_bytes: float | None = None
    """Memory one worker may use; None: what the device has available, shared by the workers."""
    report: Callable[[str], None] = log_line
    started: float = field(default_factory=time.monotonic)
    outcomes: list[RunOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    centre: Any = None
    """Where a check centred its IsoFLOP profiles when the scope fit could not say (orchestrate's
    EmpiricalAllocation), or None."""

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, message: str) -> None:
        self.report(f"[{self.elapsed():7.1f}s] {message}")

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
        self.say(f"warning: {message}")

    def size(self, build: Callable[[Rules, float], list[ProxySpec]], seconds: float,
             valid: Callable[[list[ProxySpec]], bool] | None) -> tuple[float, list[ProxySpec]]:
        """The ladder ``build(rules, u)`` that fills ``seconds``; when even the smallest valid one at full run
        length does not fit, the session switches to short runs (and says so)."""
        assert self.throughput is not None
        workers = self.executor.workers
        for attempt in ("full", "short"):
            u, specs = ladder_mod.fit_to_time(lambda u: build(self.rules, u), seconds, self.throughput, workers,
                                              valid=valid)
            span = ladder_mod.makespan([self.throughput.run_seconds(s) for s in specs], workers)
            if span <= seconds * 1.1 or attempt == "short" or self.rules.min_steps < ladder_mod.MIN_STEPS:
                if span > seconds * 1.1:
                    self.warn(f"the smallest useful ladder needs about {span:.0f} s, more than the {seconds:.0f} s "
                              "left for it: the command will overrun its time budget")
                return u, specs
            self.rules = self.rules.short()
            self.warn(f"too little time for runs of {ladder_mod.MIN_STEPS}+ steps: proxies take as few as "
                      f"{self.rules.min_steps} steps, where tiny models are limited by optimisation steps more "
                      "than by N or D, so predictions are rougher")
        raise AssertionError("unreachable")

    def measure(self) -> Throughput:
        self.throughput = self.executor.measure(MEASURE_SECONDS, self.precision)
        tp = self.throughput
        self.say(f"throughput per worker: {tp.matmul_flops_per_second / 1e9:.2f} GFLOP/s of matmul, "
                 f"{tp.token_seconds * 1e6:.2f} µs per "
                 f"token and {tp.step_overhead * 1e3:.1f} ms per step besides ({self.executor.workers} "
                 f"{self.executor.name} workers on {tp.device}, {self.precision})")
        return tp

    # ------------------------------------------------------------------------------------------ memory

    def check_memory(self, specs: Sequence[ProxySpec]) -> None:
        """Refuse specs whose training memory exceeds what one worker may use (before any run is stored)."""
        from verifier import device as device_mod
        from verifier.train import estimate_memory

        if not specs:
            return
        dev = device_mod.resolve_device(self.device)
        cuda = dev.type == "cuda"
        if self.memory_bytes is not None:
            have = float(self.memory_bytes)
            source = "the --memory limit"
        else:
            share = 1 if cuda else max(1, self.executor.workers)
            have = device_mod.available_memory(dev) / share
            source = f"{dev} ({'per GPU' if cuda else f'shared by {share} workers'})"
        worst = max(specs, key=lambda s: estimate_memory(s.config(), self.corpus.vocab_size, cuda=cuda))
        need = estimate_memory(worst.config(), self.corpus.vocab_size, cuda=cuda)
        if need > 0.9 * have:
            raise CheckError(
                f"a proxy of N={worst.params:.3g} parameters needs about {need / 2**20:.1f} MiB to train "
                f"but {source} leaves {have / 2**20:.1f} MiB per worker; free memory, use fewer workers, or "
                "raise --memory", field="memory")

    # ------------------------------------------------------------------------------------------ training

    def train(self, specs: Sequence[ProxySpec], predictions: Sequence[Prediction | None] | None = None,
              *, plan_id: int | None = None) -> list[Run]:
        """Store the specs as pending runs (with their predictions), train them, return the stored runs."""
        assert self.throughput is not None, "measure() first"
        predictions = list(predictions) if predictions is not None else [None] * len(specs)
        on_corpus = [s for s in specs if s.corpus == self.rules.corpus]
        epochs = max((s.tokens / self.corpus.n_train for s in on_corpus), default=0.0)
        if epochs > 1.0:
            self.warn(f"runs see the corpus's {self.corpus.n_train:,} training tokens up to {epochs:.1f} times: "
                      "repeated data lowers the value of each token, so the scope's fit describes repeated data")
        order = sorted(range(len(specs)), key=lambda i: self.throughput.run_seconds(specs[i]), reverse=True)
        stored: dict[int, Run] = {}
        for i in order:
            spec = specs[i]
            prediction = predictions[i] or Prediction()
            prediction = msgspec.structs.replace(
                prediction,
                seconds=prediction.seconds if prediction.seconds is not None
                else round(self.throughput.run_seconds(spec), 2),
                budget_flops=prediction.budget_flops if prediction.budget_flops is not None else spec.budget_flops)
            stored[i] = runs_mod.create_run(
                self.db, spec.config(), scope=spec.scope or self.scope, n_params=spec.params,
                params_total=spec.shape.params_total(spec.seq_len, self.corpus.vocab_size),
                plan_id=plan_id if plan_id is not None else self.plan_id, check_id=self.check_id,
                role=spec.role, prediction=prediction)
        ids = [stored[i].id for i in order]
        predicted = {stored[i].id: self.throughput.run_seconds(specs[i]) for i in order}
        span = ladder_mod.makespan(list(predicted.values()), self.executor.workers)
        self.say(f"training {len(ids)} runs (ids {min(ids)}-{max(ids)}), about {span:.0f} s on "
                 f"{self.executor.workers} workers")

        def done(outcome: RunOutcome) -> None:
            what = (f"val {outcome.final_val_loss:.4f}" if outcome.status == "complete"
                    else f"FAILED: {outcome.error}")
            self.say(f"run {outcome.run_id} {outcome.status}: {what} ({outcome.seconds or 0:.1f} s, "
                     f"predicted {predicted[outcome.run_id]:.1f} s)")

        t0 = time.monotonic()
        try:
            outcomes = self.executor.run(ids, on_done=done)
        except BaseException as exc:  # interrupted: nothing of this phase may stay 'running' or 'pending'
            for run_id in ids:
                if runs_mod.get_run(self.db, run_id).status in ("pending", "running"):
                    runs_mod.update_run(self.db, run_id, status="failed", error=f"stopped: {type(exc).__name__}")
            raise
        self.outcomes.extend(outcomes)
        self._rescale(outcomes, predicted, time.monotonic() - t0, span)
        return [runs_mod.get_run(self.db, stored[i].id) for i in range(len(specs))]

    def _rescale(self, outcomes: Sequence[RunOutcome], predicted: dict[int, float], wall: float, span: float) -> None:
        """Fold the measured run times into the throughput, so later phases are sized on what happened."""
        done = [o for o in outcomes if o.status == "complete" and o.seconds]
        if not done or self.throughput is None:
            return
        factor = sum(o.seconds for o in done) / sum(predicted[o.run_id] for o in done)
        # Only ever slower: the error of the throughput model depends on model size (a fast calibration ladder
        # of small models was followed by check runs 1.24x slower than predicted after scaling down, and the
        # check overran its budget by 10%), and a check must not overrun the budget it was given.
        self.say(f"runs took {factor:.2f}x the predicted time ({wall:.0f} s for a predicted {span:.0f} s)"
                 + ("; later phases are sized on that" if factor > 1.0 else ""))
        if factor > 1.0:
            self.throughput = self.throughput.scaled(factor)


def open_session(db: sqlite_utils.Database, *, corpus: str | os.PathLike | None, budget_minutes: float,
                 device: str = "auto", executor: str = "local", workers: int | None = None,
                 memory_gib: float | None = None, scope: str | None = None, hyperparams: str = "deepseek",
                 critical_batch: Callable[[float], float] | None = None, seed: int = 0,
                 cluster: str | None = None, report: Callable[[str], None] = log_line,
                 precision: str = "auto") -> Session:
    """Validate every input that can be wrong (budget, device, corpus, executor, memory), then start workers.

    ``precision`` ("auto", "fp32" or "bf16") is resolved for the device here; runs and the throughput
    measurement use the result.

    Raises ValueError subclasses (CheckError, CorpusError, DeviceError) before anything is stored.
    """
    from verifier import corpus as corpus_mod
    from verifier import device as device_mod

    started = time.monotonic()
    seconds = check_budget(budget_minutes)
    if executor not in EXECUTORS:
        raise CheckError(f"must be one of {', '.join(EXECUTORS)}, got {executor!r}", field="executor")
    if workers is not None and workers < 1:
        raise CheckError(f"must be at least 1, got {workers}", field="workers")
    if memory_gib is not None and not (math.isfinite(memory_gib) and memory_gib > 0):
        raise CheckError(f"must be a positive number of GiB, got {memory_gib!r}", field="memory")
    if seed < 0:
        raise CheckError(f"must be non-negative, got {seed}", field="seed")
    dev = device_mod.resolve_device(device)
    precision = device_mod.resolve_precision(precision, dev)
    path = database_path(db)
    data = corpus_mod.load_corpus(corpus)
    data.check_seq_len(ladder_mod.PROXY_SEQ_LEN)
    if data.n_train < 64 * ladder_mod.PROXY_SEQ_LEN:
        raise CheckError(f"{data.source} has only {data.n_train} training tokens; a check needs at least "
                         f"{64 * ladder_mod.PROXY_SEQ_LEN}", field="corpus")
    corpus_path = None if corpus is None else os.fspath(os.path.abspath(os.path.expanduser(corpus)))
    run_scope = scope or data.scope
    rules = Rules(hyperparams=hyperparams, critical_batch=critical_batch, seed=seed, corpus=corpus_path,
                  scope=scope, precision=precision)
    ex = make_executor(executor, path, dev.type if device == "auto" else device, workers=workers, cluster=cluster)
    session = Session(db=db, db_path=path, executor=ex, device=str(dev), corpus=data, scope=run_scope, rules=rules,
                      deadline=started + seconds, seed=seed, precision=precision,
                      memory_bytes=None if memory_gib is None else memory_gib * 2**30, report=report,
                      started=started)
    try:
        smallest = ladder_mod.make_spec("probe", ladder_mod.MIN_PARAMS, 1e9, rules)
        session.check_memory([smallest])
        session.say(f"corpus {data.source}: {data.n_train:,} training tokens, scope {run_scope}")
        session.measure()
    except BaseException:
        ex.close()
        raise
    return session


# ---------------------------------------------------------------------------------------------- calibration
