"""Training runs and their curves: the ``Run``, ``RunConfig``, ``Prediction`` and ``RunPoint`` records and
their storage in the shared ``runs`` / ``run_points`` tables (schema in fits/store.py).

``RunConfig`` is the one description of a training run: the ladder's proxies are RunConfigs with what the
ladder knows about them added (verifier.check.ladder.ProxySpec), the store keeps it as JSON, and the model's
architecture comes from it (``RunConfig.model_config``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import msgspec

from fits.db import from_json, now, to_json, transaction
from fits.errors import BadInput, NotFound

if TYPE_CHECKING:
    import sqlite_utils

if TYPE_CHECKING:
    from verifier.model import GPTConfig

STATUSES = ("pending", "running", "complete", "failed")
SCHEDULES = ("cosine", "linear", "constant")
TOKENIZERS = ("bytes", "bpe")
PRECISIONS = ("fp32", "bf16")


class ConfigError(BadInput):
    """A run configuration value is out of range; ``field`` names it."""


class RunNotFound(NotFound):
    """No stored run with that id."""

    default_message = "run not found"


EVAL_CHUNK_TOKENS = 16384
"""Tokens per evaluation forward pass (unless a training micro-batch is larger): small proxy runs train on a
few short sequences per step, and evaluating at that size spent a third of their time."""
EVAL_LOGITS_ELEMENTS = 2**25
"""Cap on an evaluation chunk's logits (tokens × vocabulary): 128 MiB in fp32."""


class RunConfig(msgspec.Struct, kw_only=True, frozen=True):
    """Everything that determines a training run's curve (the device does not).

    ``batch_size`` is the global batch in sequences per optimizer step, across all ranks. The learning
    rate warms up linearly over ``warmup_steps`` and then follows ``schedule`` down to
    ``min_lr_ratio``·lr at the last step. ``eval_every`` is in steps, ``checkpoint_every`` in evaluations.
    """

    n_layer: int
    d_model: int
    n_head: int
    steps: int
    lr: float
    warmup_steps: int
    seq_len: int = 256
    batch_size: int = 16
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.95
    eval_every: int = 100
    eval_sequences: int = 64
    checkpoint_every: int = 2
    seed: int = 0
    corpus: str | None = None
    """Absolute path of the corpus; None is the standard-library default."""
    tokenizer: str = "bytes"
    vocab_size: int | None = None
    """BPE vocabulary size (default 4096), or an override for pre-tokenised input."""
    tie_embeddings: bool = True
    bias: bool = False
    """Biases in the linear layers and LayerNorms (GPT-2 layout); off by default, as in nanoGPT."""
    dropout: float = 0.0
    micro_batch: int | None = None
    """Sequences per forward/backward on one rank (gradient accumulation); None: the rank's whole share."""
    scope: str | None = None
    """Overrides the corpus-derived scope ("corpus:<fingerprint>/<tokenizer>")."""
    precision: str = "fp32"
    """"fp32" or "bf16" (autocast; master weights and optimizer in fp32), resolved before the run is stored
    (verifier.device.resolve_precision): it changes the curve, so it is part of the run's identity, and a run
    resumes only in the precision it started in. Configs stored before the field existed read as fp32."""

    def __post_init__(self) -> None:
        positive = ("n_layer", "d_model", "n_head", "steps", "seq_len", "batch_size", "eval_every",
                    "eval_sequences", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"must be a positive integer, got {getattr(self, name)}", field=name)
        if self.d_model % self.n_head:
            raise ConfigError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}", field="n_head")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"must be a positive number, got {self.lr}", field="lr")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ConfigError(f"must lie in 0..steps ({self.steps}), got {self.warmup_steps}", field="warmup_steps")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"must be one of {SCHEDULES}, got {self.schedule!r}", field="schedule")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"must be one of {TOKENIZERS}, got {self.tokenizer!r}", field="tokenizer")
        for name in ("min_lr_ratio", "dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"must lie in [0, 1], got {getattr(self, name)}", field=name)
        for name in ("weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be non-negative, got {getattr(self, name)}", field=name)
        if self.seed < 0:
            raise ConfigError(f"must be non-negative, got {self.seed}", field="seed")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"must be one of {PRECISIONS} (resolve 'auto' first), got {self.precision!r}",
                              field="precision")
        if self.micro_batch is not None and self.micro_batch < 1:
            raise ConfigError(f"must be a positive integer, got {self.micro_batch}", field="micro_batch")

    @property
    def batch_tokens(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def tokens(self) -> int:
        return self.steps * self.batch_tokens

    def as_run_config(self) -> RunConfig:
        """This configuration as a plain RunConfig (a subclass such as a ladder's ProxySpec carries more)."""
        if type(self) is RunConfig:
            return self
        return RunConfig(**{name: getattr(self, name) for name in RunConfig.__struct_fields__})

    def model_config(self, vocab_size: int, *, attention: str = "auto") -> GPTConfig:
        """The model this run trains, on a corpus of ``vocab_size`` tokens."""
        from verifier.model import GPTConfig

        return GPTConfig(n_layer=self.n_layer, d_model=self.d_model, n_head=self.n_head, vocab_size=vocab_size,
                         seq_len=self.seq_len, tie_embeddings=self.tie_embeddings, bias=self.bias,
                         dropout=self.dropout, attention=attention)

    def eval_chunk(self, vocab_size: int, micro_batch: int | None = None) -> int:
        """Sequences per evaluation forward pass. Evaluation keeps no activations for a backward pass, so it
        runs in larger chunks than training: a training micro-batch at least, else EVAL_CHUNK_TOKENS, capped
        so the chunk's logits stay under EVAL_LOGITS_ELEMENTS (a large vocabulary)."""
        tokens = min(EVAL_CHUNK_TOKENS, EVAL_LOGITS_ELEMENTS // max(1, vocab_size))
        return max(micro_batch or self.micro_batch or self.batch_size, tokens // self.seq_len, 1)

    def lr_at(self, step: int) -> float:
        """Learning rate used for update ``step`` (1-based)."""
        if step <= self.warmup_steps:
            return self.lr * step / self.warmup_steps
        floor = self.min_lr_ratio * self.lr
        if self.schedule == "constant" or self.steps == self.warmup_steps:
            return self.lr
        progress = (step - self.warmup_steps) / (self.steps - self.warmup_steps)
        if self.schedule == "linear":
            return floor + (self.lr - floor) * (1.0 - progress)
        return floor + 0.5 * (self.lr - floor) * (1.0 + math.cos(math.pi * progress))


class FitPrediction(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one fit says a run will reach (``final_loss`` absent: the fit makes no usable prediction)."""

    fit_id: int | None = None
    law: str | None = None
    final_loss: float | None = None


class PlannedRun(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The plan a fit gives at a proxy's budget (what the planner itself would say), or why there is none."""

    params: float | None = None
    tokens: float | None = None
    batch_tokens: float | None = None
    learning_rate: float | None = None
    predicted_loss: float | None = None
    predicted_low: float | None = None
    predicted_high: float | None = None
    error: str | None = None


class Prediction(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What was predicted for a run before it trained, stored with it and compared after."""

    seconds: float | None = None
    """Predicted wall time on one worker."""
    budget_flops: float | None = None
    """The budget C = 6·N·D the run stands for."""
    scope_fit: FitPrediction | None = None
    """The final loss the scope's fit predicts (what the check compares)."""
    plan_fit: FitPrediction | None = None
    """The plan's own fit's prediction, for reference (published fits are in another unit)."""
    reference: FitPrediction | None = None
    """A calibration run's prediction by the reference fit, for reference."""
    curve_fit: FitPrediction | None = None
    """The kaplan-ns fit the run's curve is compared with."""
    planned: PlannedRun | None = None
    unique_tokens: int | None = None
    """Early-stopping run: tokens in its corpus slice."""
    s_stop_steps: float | None = None
    """Early-stopping run: the eq. 5.7 bound on the step of the best validation loss."""
    stop_fit_id: int | None = msgspec.field(default=None, name="fit_id")
    """Early-stopping run: the kaplan-ns fit that gave the bound."""
    final_sigma: float | None = None
    """Standard deviation of the predictive distribution of the final loss (the scope fit's bootstrap spread
    and the measured run-to-run noise); absent for runs that train before the noise is measured."""
    final_interval80: list[float] | None = None
    final_interval95: list[float] | None = None


class RunPoint(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One point of a curve: after ``step`` updates and ``tokens`` training tokens.

    ``train_loss`` is the loss of the batch of update ``step`` (None at step 0); ``val_loss`` is set at
    evaluation steps only; ``seconds`` is the training wall time so far, summed over resumptions.
    """

    step: int
    tokens: int
    train_loss: float | None = None
    val_loss: float | None = None
    lr: float | None = None
    seconds: float | None = None


class Run(msgspec.Struct, kw_only=True):
    """A training run as stored: its configuration, status and summary. Points are read separately."""

    id: int
    scope: str
    status: str
    source: str = "verifier"
    """"verifier" (trained here) or "ingested" (measured elsewhere and imported)."""
    config: dict[str, Any] | None = None
    plan_id: int | None = None
    check_id: int | None = None
    role: str | None = None
    prediction: Prediction | None = None
    n_params: int | None = None
    params_total: int | None = None
    batch_tokens: int | None = None
    seq_len: int | None = None
    tokens: int | None = None
    steps: int | None = None
    warmup_steps: int | None = None
    seed: int | None = None
    final_val_loss: float | None = None
    best_val_step: int | None = None
    error: str | None = None
    created: str | None = None
    updated: str | None = None

    @property
    def run_config(self) -> RunConfig | None:
        return None if self.config is None else msgspec.convert(self.config, RunConfig)


# ---------------------------------------------------------------------------------------------- store

_JSON_COLUMNS = {"config": dict[str, Any] | None, "prediction": Prediction | None}


def _row_to_run(row: dict[str, Any]) -> Run:
    row = dict(row)
    for key, type_ in _JSON_COLUMNS.items():
        row[key] = from_json(row[key], type_)
    return msgspec.convert(row, Run)


def config_json(config: RunConfig) -> str:
    """Canonical JSON of a config (field order is fixed, so equal configs give equal text)."""
    return to_json(config.as_run_config())


def create_run(db: sqlite_utils.Database, config: RunConfig, *, scope: str, n_params: int | None = None,
               params_total: int | None = None, plan_id: int | None = None, check_id: int | None = None,
               role: str | None = None, prediction: Prediction | None = None,
               status: str = "pending") -> Run:
    """Insert a verifier run (status 'pending' until a trainer picks it up) and return it."""
    if status not in STATUSES:
        raise ConfigError(f"must be one of {STATUSES}, got {status!r}", field="status")
    stamp = now()
    row = {
        "scope": scope, "plan_id": plan_id, "check_id": check_id, "role": role, "source": "verifier",
        "status": status, "config": config_json(config),
        "prediction": to_json(prediction) if prediction is not None else None,
        "n_params": n_params, "params_total": params_total, "batch_tokens": config.batch_tokens,
        "seq_len": config.seq_len, "tokens": config.tokens, "steps": config.steps,
        "warmup_steps": config.warmup_steps, "seed": config.seed, "created": stamp, "updated": stamp,
    }
    with transaction(db):
        run_id = db["runs"].insert(row).last_pk
    return get_run(db, run_id)


def create_ingested_run(db: sqlite_utils.Database, points: list[RunPoint], *, scope: str, config: dict[str, Any],
                        n_params: int, batch_tokens: int, seq_len: int, params_total: int | None = None,
                        plan_id: int | None = None, warmup_steps: int | None = None,
                        seed: int | None = None) -> Run:
    """Store a run measured elsewhere as complete, with its curve, in one transaction.

    ``points`` must be validated and in step order; the run's tokens and steps are those of its last point, its
    final and best validation losses come from the points. ``config`` is what the caller knows of the run (an
    ingested run has no RunConfig). Raises ConfigError when ``plan_id`` names no plan."""
    last = points[-1]
    with_val = [p for p in points if p.val_loss is not None]
    best = min(with_val, key=lambda p: p.val_loss) if with_val else None
    stamp = now()
    row = {
        "scope": scope, "plan_id": plan_id, "source": "ingested", "status": "complete", "config": to_json(config),
        "n_params": n_params, "params_total": params_total, "batch_tokens": batch_tokens, "seq_len": seq_len,
        "tokens": last.tokens, "steps": last.step, "warmup_steps": warmup_steps, "seed": seed,
        "final_val_loss": with_val[-1].val_loss if with_val else None,
        "best_val_step": best.step if best else None, "created": stamp, "updated": stamp,
    }
    with transaction(db):
        if plan_id is not None and db.execute("SELECT 1 FROM plans WHERE id = ?", [plan_id]).fetchone() is None:
            raise ConfigError(f"no plan with id {plan_id}", field="plan_id")
        run_id = db["runs"].insert(row).last_pk
        write_points(db, run_id, points)
    return get_run(db, run_id)


def get_run(db: sqlite_utils.Database, run_id: int) -> Run:
    rows = list(db["runs"].rows_where("id = ?", [run_id]))
    if not rows:
        raise RunNotFound(f"no run with id {run_id}", field="run_id")
    return _row_to_run(rows[0])


def list_runs(db: sqlite_utils.Database, *, scope: str | None = None, status: str | None = None,
              plan_id: int | None = None, check_id: int | None = None, source: str | None = None) -> list[Run]:
    filters = {"scope": scope, "status": status, "plan_id": plan_id, "check_id": check_id, "source": source}
    clauses = [f"{k} = ?" for k, v in filters.items() if v is not None]
    args = [v for v in filters.values() if v is not None]
    return [_row_to_run(r) for r in db["runs"].rows_where(" AND ".join(clauses) or None, args, order_by="id")]


def update_run(db: sqlite_utils.Database, run_id: int, **fields: Any) -> Run:
    """Set columns of a run (JSON columns take Python objects) and bump ``updated``."""
    if "status" in fields and fields["status"] not in STATUSES:
        raise ConfigError(f"must be one of {STATUSES}, got {fields['status']!r}", field="status")
    for key in _JSON_COLUMNS:
        if key in fields and fields[key] is not None and not isinstance(fields[key], str):
            fields[key] = to_json(fields[key])
    fields["updated"] = now()
    with transaction(db):
        if db.execute("SELECT 1 FROM runs WHERE id = ?", [run_id]).fetchone() is None:
            raise RunNotFound(f"no run with id {run_id}", field="run_id")
        db["runs"].update(run_id, fields)
    return get_run(db, run_id)


def find_resumable(db: sqlite_utils.Database, config: RunConfig, scope: str) -> list[Run]:
    """Unfinished stand-alone verifier runs (no plan or check) with exactly this config and scope,
    newest first: what a rerun of the same command should continue."""
    rows = db["runs"].rows_where(
        "source = 'verifier' AND status != 'complete' AND plan_id IS NULL AND check_id IS NULL "
        "AND config = ? AND scope = ?", [config_json(config), scope], order_by="id desc")
    return [_row_to_run(r) for r in rows]


def write_points(db: sqlite_utils.Database, run_id: int, points: list[RunPoint]) -> None:
    """Insert or replace points (primary key (run_id, step)) in one transaction."""
    if not points:
        return
    rows = [{"run_id": run_id, **msgspec.structs.asdict(p)} for p in points]
    with transaction(db):
        db["run_points"].upsert_all(rows, pk=("run_id", "step"))


def delete_points_after(db: sqlite_utils.Database, run_id: int, step: int) -> int:
    """Remove the points past ``step`` (a resumed run re-writes them); returns how many went."""
    with transaction(db):
        cursor = db.execute("DELETE FROM run_points WHERE run_id = ? AND step > ?", [run_id, step])
        return cursor.rowcount


def get_points(db: sqlite_utils.Database, run_id: int) -> list[RunPoint]:
    rows = db.execute("SELECT step, tokens, train_loss, val_loss, lr, seconds FROM run_points "
                      "WHERE run_id = ? ORDER BY step", [run_id]).fetchall()
    return [RunPoint(step=s, tokens=t, train_loss=tl, val_loss=vl, lr=lr, seconds=sec)
            for s, t, tl, vl, lr, sec in rows]
