"""A parallel layout for a plan: the fastest estimated data × tensor × pipeline layout that fits with headroom.

Search: tensor parallel t a power of two inside one scale-up domain (node) dividing the attention heads (and the
KV heads, or divided by them); pipeline stages p dividing the GPUs left, at most one per layer; data parallel
d = GPUs/(t·p); micro-batch b a power of two dividing the sequences per data-parallel rank (m = sequences/(d·b)
micro-batches per step; the batch may be rounded to a multiple of d by up to 2%, which the layout states);
ZeRO stage 1–3 (0 without data parallelism); selective recompute (what FlashAttention does: the attention
scores are never stored) or full recompute; for a mixture of experts, expert parallel e a power of two dividing
both d and the expert count (planner.memory: the routed experts split e ways, their states sharded over d/e).
Each layout's bytes per GPU come from planner.memory; it fits when they are at most (1 − headroom) of the GPU's
memory (default 10% headroom, for the framework, the allocator's fragmentation and communication buffers). A
device without a known interconnect gets no tensor parallelism and no data parallelism across it.

Step time of a layout (stated in the plan's ``why``):

    compute   batch · FLOPs per token · (1 + recompute) / (GPUs · peak · MFU)       the plan's time at its MFU
              recompute: full repeats each layer's forward, +1/3 of the FLOPs; selective costs nothing extra
    bubble    × (1 + (p − 1)/m)                                                      1F1B pipeline (Narayanan 2021)
    TP        4 all-reduces of s·b·h bf16 per layer per micro-batch (6 with full recompute), ring cost
              2(t−1)/t · bytes at half the node's bidirectional bandwidth; not overlapped
    DP        gradient all-reduce 2(d−1)/d · 2 bytes · params per GPU once per step (ZeRO 0/1), per micro-batch
              under ZeRO-2 (reduce-scatter + gather), 1.5× that under ZeRO-3 (weights gathered forward and back);
              at the scale-out bandwidth once the job spans nodes; overlapped with the backward pass (2/3 of the
              compute; all of it under ZeRO-3), only the excess counts; expert parameters reduce over their d/e
              replicas, 2(d/e−1)/(d/e) · 2 bytes · expert params per GPU
    EP        4 all-to-alls per MoE layer per micro-batch (dispatch and combine, forward and backward; 6 with full
              recompute), each sending a GPU's s·b/t tokens' bf16 hidden states to top_k experts, the (e−1)/e of
              them on other GPUs: 2·s·b·h·top_k·(e−1)/(e·t) bytes; inside the node while t·e GPUs fit in it (at half
              its bidirectional bandwidth), else at the scale-out bandwidth; not overlapped
    PP        point-to-point activations are small next to the above and are left out

A dense model (no experts) has e = 1 and no all-to-all.

MFU is taken as the efficiency of the matmuls in a well-tuned layout, so the step time at the MFU alone is the
plan's time estimate; the layout's step time adds what this layout costs beyond that. Among layouts within 1% of
the fastest, the simplest wins (fewer stages, less tensor parallelism, lower ZeRO stage, larger micro-batches).

Every layout is scored, all at once: numpy arrays over the (t, p, e) degrees × ZeRO stage × micro-batch ×
recompute, with the floats of a layout-at-a-time evaluation (tests/test_layout_search.py holds one as the
reference); about a millisecond for a few thousand layouts (bench/layout_speed.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fits import accounting
from planner.catalogue import Accelerator
from planner.errors import PlanError
from planner.memory import (
    GB,
    GRAD_BYTES,
    LOGIT_BYTES,
    Layout,
    Memory,
    ModelDims,
    activation_bytes_per_layer,
    memory_per_gpu,
    split_of,
    stage_bytes,
)
from planner.plan import MemoryBreakdown, ParallelLayout, Shape

DEFAULT_HEADROOM = 0.10
MAX_MICRO_BATCH = 64
RECOMPUTES = ("selective", "full")
BATCH_SLACK = 0.02
"""A layout may round the batch to a multiple of its data-parallel ranks by up to 2% (the layout says so)."""
FULL_RECOMPUTE_OVERHEAD = 1.0 / 3.0
BACKWARD_SHARE = 2.0 / 3.0


@dataclass(frozen=True)
class Estimate:
    """One layout with its memory and step time (seconds)."""

    layout: Layout
    memory: Memory
    step_seconds: float
    compute_seconds: float
    """At the MFU with no recompute, bubble or communication: the plan's time per step."""
    bubble: float
    recompute: float
    tp_seconds: float
    dp_seconds: float
    """Exposed (not overlapped) data-parallel communication."""
    ep_seconds: float = 0.0
    """Expert-parallel all-to-alls (a mixture of experts with ep > 1)."""


def _powers_of_two(limit: int) -> list[int]:
    out, k = [], 1
    while k <= limit:
        out.append(k)
        k *= 2
    return out


def _divisors(n: int) -> list[int]:
    small = [k for k in range(1, math.isqrt(n) + 1) if n % k == 0]
    return sorted({*small, *(n // k for k in small)})


def tensor_parallel_options(dims: ModelDims, acc: Accelerator, gpus: int) -> list[int]:
    kv = dims.n_kv_head or dims.n_head
    if acc.intra_node_gbs <= 0:
        return [1]
    return [t for t in _powers_of_two(min(acc.node_size, gpus, 64))
            if gpus % t == 0 and dims.n_head % t == 0 and (kv % t == 0 or t % kv == 0)]


def expert_parallel_options(dims: ModelDims, d: int) -> list[int]:
    """Expert-parallel degrees for d data-parallel ranks: powers of two dividing both d and the expert count."""
    if dims.experts < 2:
        return [1]
    return [e for e in _powers_of_two(min(d, dims.experts)) if d % e == 0 and dims.experts % e == 0]


class _Grid:
    """Every candidate layout of a search as numpy arrays over four axes, (t, p, e) × ZeRO slot × micro-batch ×
    recompute, broadcast against each other; ``ok`` marks the layouts that exist (a micro-batch that divides the
    sequences per rank, a ZeRO stage the data parallelism has). Flat indices run in that order, outermost first.
    Arrays, not objects: thousands of layouts are scored per plan, all at once."""

    COLUMNS = ("t", "p", "d", "e", "zero", "b", "m", "full", "weights", "grads", "optimizer", "act", "compute",
               "bubble", "extra", "tp_s", "dp_s", "ep_s", "step")

    def __init__(self, ok: np.ndarray, **columns: np.ndarray) -> None:
        self.ok = ok
        self.columns = columns
        self.step = columns["step"]
        # the same sum as Memory.total: weights + gradients + optimizer + activations
        self.total = np.broadcast_to(columns["weights"] + columns["grads"] + columns["optimizer"] + columns["act"],
                                     ok.shape)

    def valid(self, usable: float | None = None) -> np.ndarray:
        """Flat indices of the layouts (within ``usable`` bytes per GPU, unless it is None)."""
        keep = self.ok if usable is None else self.ok & (self.total <= usable)
        return np.flatnonzero(keep)

    def at(self, names: tuple[str, ...], flat: np.ndarray) -> list[np.ndarray]:
        """The named columns at these flat indices (each column indexed along the axes it varies on)."""
        axes = np.unravel_index(flat, self.ok.shape)
        first = np.zeros_like(flat)
        index: dict[tuple[int, ...], tuple] = {}  # by the column's shape: the columns have a handful
        out = []
        for name in names:
            column = self.columns[name]
            at = index.get(column.shape)
            if at is None:
                at = index[column.shape] = tuple(i if n > 1 else first
                                                 for i, n in zip(axes, column.shape, strict=True))
            out.append(column[at])
        return out

    def estimates(self, flat: np.ndarray) -> list[Estimate]:
        values = dict(zip(self.COLUMNS, (x.tolist() for x in self.at(self.COLUMNS, flat)), strict=True))
        out = []
        for i in range(len(flat)):
            v = {name: column[i] for name, column in values.items()}
            layout = Layout(dp=v["d"], tp=v["t"], pp=v["p"], micro_batch=v["b"], grad_accum=v["m"], zero=v["zero"],
                            recompute=RECOMPUTES[v["full"]], ep=v["e"])
            memory = Memory(v["weights"], v["grads"], v["optimizer"], activations=v["act"])
            out.append(Estimate(layout, memory, v["step"], v["compute"], v["bubble"], v["extra"], v["tp_s"],
                                v["dp_s"], v["ep_s"]))
        return out


# the grid's fixed axes, shaped to broadcast: ZeRO slot (stages 1, 2, 3 with data parallelism), micro-batch,
# recompute (selective, full)
ZERO_STAGES = np.array([1, 2, 3])
ZERO_SLOTS = ZERO_STAGES[None, :, None, None]
FIRST_SLOT = np.arange(3) == 0
MICRO_BATCHES = np.array(_powers_of_two(MAX_MICRO_BATCH))[None, None, :, None]
FULL = np.array([False, True])[None, None, None, :]
EXTRA = np.where(FULL, FULL_RECOMPUTE_OVERHEAD, 0.0)
PASSES = np.where(FULL, 6, 4)
"""All-reduces (and all-to-alls) per layer per micro-batch: forward and backward, and the recomputed forward."""


def _grid(dims: ModelDims, acc: Accelerator, gpus: int, batch_sequences: int, flops_per_token: float,
          mfu: float) -> _Grid | None:
    """Every candidate layout, fitting or not, with its memory and step time (the module docstring's model); None
    when there is none.

    The (t, p, e) degrees are enumerated in Python (at most a few hundred); the ZeRO stage, micro-batch and
    recompute axes are numpy broadcasts over them. Each float is computed by the same operations in the same
    order as a layout-at-a-time evaluation would (planner.memory's split_of and stage_bytes take the arrays), so
    the figures, and the layout chosen, do not depend on the vectorisation."""
    peak = acc.bf16_tflops * 1e12
    per_sequence = dims.seq_len * flops_per_token / (gpus * peak * mfu)
    intra = acc.intra_node_gbs * 1e9 / 2.0  # one direction
    dp_bandwidth = acc.inter_node_gbs * 1e9 if gpus > acc.node_size else intra
    s, h = dims.seq_len, dims.d_model
    logits1 = LOGIT_BYTES * s * dims.vocab_size
    rows = []  # one per (t, p, e): the degrees and what does not depend on ZeRO, micro-batch or recompute
    for t in tensor_parallel_options(dims, acc, gpus):
        selective1, full1 = (activation_bytes_per_layer(s, 1, h, dims.n_head, tp=t, recompute=rc,
                                                        kv_ratio=dims.kv_ratio, ffn_ratio=dims.ffn_ratio,
                                                        dropout=dims.dropout) for rc in RECOMPUTES)
        tp_volume1 = 2.0 * s * h * 2.0 * (t - 1) / t / intra if t > 1 else 0.0
        for p in _divisors(gpus // t):
            if p > dims.n_layer:
                break
            d = gpus // (t * p)
            per_rank = max(1, round(batch_sequences / d))
            if abs(per_rank * d - batch_sequences) > BATCH_SLACK * batch_sequences:
                continue
            if d > 1 and dp_bandwidth <= 0:
                continue
            layers = math.ceil(dims.n_layer / p)
            compute = per_rank * d * per_sequence
            for e in expert_parallel_options(dims, d):
                a2a_bandwidth = intra if t * e <= acc.node_size else acc.inter_node_gbs * 1e9
                a2a1 = (2.0 * s * h * dims.top_k * (e - 1) / (e * t) / max(a2a_bandwidth, 1.0)) if e > 1 else 0.0
                rows.append((t, p, d, e, per_rank, layers, compute, tp_volume1, a2a1, selective1, full1))
    if not rows:
        return None
    cols = list(zip(*rows, strict=True))
    t, p, d, e, per_rank, layers = (np.array(c) for c in cols[:6])
    compute, tp1, a2a1, selective1, full1 = (np.array(c, dtype=float) for c in cols[6:])

    # model states per (t, p, e) and ZeRO slot: stages 1, 2, 3 with data parallelism (ZeRO-1 shards the
    # optimizer at no extra communication, so it replaces 0), stage 0 alone without
    other, experts = split_of(dims, t, p, e)
    replicas = d // e
    # seconds of a ring all-reduce of the bf16 gradients: the experts' over their replicas only
    grads_s = (2.0 * (d - 1) / d * other * GRAD_BYTES
               + 2.0 * (replicas - 1) / replicas * experts * GRAD_BYTES) / max(dp_bandwidth, 1.0)
    many = d > 1
    staged = [stage_bytes(dims, other, experts, d, e, t, zero) for zero in (1, 2, 3)]
    if not many.all():  # a layout without data parallelism has ZeRO-0 in the first slot
        none = stage_bytes(dims, other, experts, d, e, t, 0)
        staged[0] = tuple(np.where(many, staged[0][i], none[i]) for i in range(3))
    # (t·p·e, ZeRO slot, 1, 1); slots 1 and 2 without data parallelism are not layouts (not in ``ok``)
    parts = [np.stack([stage[i] for stage in staged], axis=1)[:, :, None, None] for i in range(3)]
    zero = np.where(many[:, None], ZERO_STAGES, 0)[:, :, None, None]
    zero_ok = (many[:, None] | FIRST_SLOT)[:, :, None, None]

    # axes: (t, p, e) × ZeRO slot × micro-batch × recompute
    t, p, d, e, layers, rank, compute, tp1, a2a1, selective1, full1, grads_s, many = (
        x[:, None, None, None] for x in (t, p, d, e, layers, per_rank, compute, tp1, a2a1, selective1, full1,
                                          grads_s, many))
    b = MICRO_BATCHES
    b_ok = (b <= rank) & (rank % b == 0)
    m = np.where(b_ok, rank // b, 1)  # 1 where b does not divide: those layouts are not in ``ok``
    act = np.where(FULL, full1, selective1) * b * layers * np.minimum(p, m)
    act = np.where(FULL, act + selective1 * b, act)
    act = np.where(p == 1, act + logits1 * b / t, act)
    busy = compute * (1.0 + EXTRA)
    bubble = (p - 1) / m
    passes = layers * m * PASSES * b
    tp_s = passes * tp1
    ep_s = passes * a2a1
    # the slots' stages with data parallelism (without it there is no data-parallel time)
    volume = grads_s * np.where(ZERO_SLOTS >= 2, m, 1) * np.where(ZERO_SLOTS == 3, 1.5, 1.0)
    dp_s = np.where(many, np.maximum(0.0, volume - busy * np.where(ZERO_SLOTS == 3, 1.0, BACKWARD_SHARE)), 0.0)
    step = busy * (1.0 + bubble) + tp_s + dp_s + ep_s
    weights, grads, optimizer = parts
    return _Grid(np.broadcast_to(zero_ok & b_ok, step.shape), t=t, p=p, d=d, e=e, zero=zero, b=b, m=m, full=FULL,
                 weights=weights, grads=grads, optimizer=optimizer, act=act, compute=compute, bubble=bubble,
                 extra=EXTRA, tp_s=tp_s, dp_s=dp_s, ep_s=ep_s, step=step)


def _usable(acc: Accelerator, headroom: float) -> float:
    return acc.memory_gb * GB * (1.0 - headroom)


def estimates(dims: ModelDims, acc: Accelerator, gpus: int, batch_sequences: int, flops_per_token: float,
              mfu: float, *, headroom: float = DEFAULT_HEADROOM, fitting_only: bool = True) -> list[Estimate]:
    """Every layout the search considers (those that fit, unless ``fitting_only`` is False)."""
    grid = _grid(dims, acc, gpus, batch_sequences, flops_per_token, mfu)
    if grid is None:
        return []
    return grid.estimates(grid.valid(_usable(acc, headroom) if fitting_only else None))


def best_layout(dims: ModelDims, acc: Accelerator, gpus: int, batch_sequences: int, flops_per_token: float,
                mfu: float, *, headroom: float = DEFAULT_HEADROOM) -> Estimate | None:
    """The fastest layout that fits (the simplest among those within 1% of it), or None."""
    grid = _grid(dims, acc, gpus, batch_sequences, flops_per_token, mfu)
    fits = np.zeros(0, dtype=int) if grid is None else grid.valid(_usable(acc, headroom))
    if not len(fits):
        return None
    steps = grid.step.ravel()[fits]
    near = fits[steps <= steps.min() * 1.01]
    # simplest first: fewer stages, less tensor and expert parallelism, lower ZeRO stage, no full recompute,
    # larger micro-batches (each layout has its own key: no ties)
    p, t, e, zero, full, b = grid.at(("p", "t", "e", "zero", "full", "b"), near)
    return grid.estimates(near[np.lexsort((-b, full, zero, e, t, p))[:1]])[0]


def smallest_footprint(dims: ModelDims, acc: Accelerator, gpus: int, batch_sequences: int) -> Estimate | None:
    """The layout needing the least memory per GPU, fitting or not (for saying by how much nothing fits)."""
    grid = _grid(dims, acc, gpus, batch_sequences, 1.0, 1.0)
    if grid is None:
        return None
    every = grid.valid()
    return grid.estimates(every[np.argmin(grid.total.ravel()[every])][None])[0]  # the first of equals, as min()


def refuse(dims: ModelDims, acc: Accelerator, gpus: int, batch_sequences: int, headroom: float = DEFAULT_HEADROOM,
           field: str = "hardware.count") -> PlanError:
    """The one-line refusal for a model that fits on no layout of these GPUs."""
    usable = acc.memory_gb * (1.0 - headroom)
    least = smallest_footprint(dims, acc, gpus, batch_sequences)
    if least is None:
        return PlanError(field, f"no layout of {gpus} × {acc.name} divides the batch of {batch_sequences} sequences "
                                f"and the {dims.n_head} heads; give a GPU count that does")
    need = least.memory.total / GB
    more = math.ceil(gpus * need / usable)
    return PlanError(field, f"a {dims.params_total:.3g}-parameter model fits on no layout of {gpus} × {acc.name} "
                            f"({acc.memory_gb:g} GB, {usable:.0f} GB usable): the smallest, {least.layout.describe()}, "
                            f"needs {need:.0f} GB per GPU; give about {more}+ GPUs or a GPU with more memory")


def dims_of(shape: Shape, seq_len: int, vocab_size: int) -> ModelDims:
    """What memory needs of a dense plan's shape (the project's GPT trains without dropout)."""
    total = shape.params_total if shape.params_total is not None else accounting.total_params(
        shape.n_layer, shape.d_model, vocab_size, seq_len, n_head=shape.n_head, n_kv_head=shape.n_kv_head)
    return ModelDims(n_layer=shape.n_layer, d_model=shape.d_model, n_head=shape.n_head, seq_len=seq_len,
                     vocab_size=vocab_size, params_total=float(total), n_kv_head=shape.n_kv_head, d_ff=shape.d_ff,
                     dropout=False)


def describe_memory(memory: Memory, acc: Accelerator, headroom: float = DEFAULT_HEADROOM) -> MemoryBreakdown:
    return MemoryBreakdown(weights=memory.weights / GB, gradients=memory.gradients / GB,
                           optimizer=memory.optimizer / GB, activations=memory.activations / GB,
                           total=memory.total / GB, usable=acc.memory_gb * (1 - headroom), capacity=acc.memory_gb)


def parallel_layout(best: Estimate, acc: Accelerator, dims: ModelDims, gpus: int, steps: int, batch_sequences: int,
                    headroom: float = DEFAULT_HEADROOM) -> ParallelLayout:
    """The plan's record of a chosen layout, with the reasons for it."""
    lay, mem = best.layout, best.memory
    why = [
        f"{lay.describe()}: {mem.total / GB:.1f} GB per GPU of {acc.memory_gb:g} GB "
        f"({acc.memory_gb * (1 - headroom):.0f} usable with {100 * headroom:.0f}% headroom), the fastest estimated "
        "layout that fits",
        f"step {best.step_seconds:.3g} s = {best.compute_seconds:.3g} s of compute at the MFU"
        + (f" × {1 + best.recompute:.3g} (full recompute)" if best.recompute else "")
        + (f" × {1 + best.bubble:.3g} (pipeline bubble (p−1)/m = {lay.pp - 1}/{lay.grad_accum})" if best.bubble else "")
        + (f" + {best.tp_seconds:.3g} s tensor-parallel all-reduces" if best.tp_seconds else "")
        + (f" + {best.dp_seconds:.3g} s data-parallel communication not hidden by the backward pass"
           if best.dp_seconds else "")
        + (f" + {best.ep_seconds:.3g} s expert-parallel all-to-alls" if best.ep_seconds else ""),
    ]
    if lay.ep > 1:
        why.append(f"expert parallel {lay.ep}: each GPU holds {dims.experts // lay.ep} of the {dims.experts} experts "
                   f"of each layer, their optimizer states sharded over {lay.dp // lay.ep} replicas; every MoE layer "
                   f"sends each token to its top-{dims.top_k} experts and back (all-to-all, "
                   + ("inside the node)" if lay.tp * lay.ep <= acc.node_size else "across nodes)"))
    simple = Layout(dp=gpus, micro_batch=1, grad_accum=max(1, round(batch_sequences / gpus)), zero=1)
    if lay.tp > 1 or lay.pp > 1 or lay.zero >= 2 or lay.recompute == "full":
        plain = memory_per_gpu(dims, simple).total / GB
        if plain > acc.memory_gb * (1 - headroom):
            why.append(f"data parallel alone (ZeRO-1, micro-batch 1) would need {plain:.0f} GB per GPU")
        else:
            why.append("data parallel alone would fit but is estimated slower (communication, or a batch that "
                       "does not split over every GPU)")
    if batch_sequences < gpus:
        why.append(f"{gpus} GPUs for a batch of {batch_sequences} sequences: data parallelism alone cannot use them "
                   "all; fewer GPUs, or a larger batch, would waste less")
    layout_batch = lay.dp * lay.micro_batch * lay.grad_accum
    if layout_batch != batch_sequences:
        why.append(f"the batch is rounded from {batch_sequences} to {layout_batch} sequences "
                   f"({100 * (layout_batch / batch_sequences - 1):+.1f}%) to split over {lay.dp} data-parallel ranks")
    return ParallelLayout(
        gpu=acc.name, gpus=gpus, dp=lay.dp, tp=lay.tp, pp=lay.pp, ep=lay.ep,
        sequence_parallel=lay.sequence_parallel and lay.tp > 1,
        micro_batch=lay.micro_batch, grad_accum=lay.grad_accum, zero=lay.zero, recompute=lay.recompute,
        batch_sequences=layout_batch, memory=describe_memory(mem, acc, headroom), step_seconds=best.step_seconds,
        step_seconds_at_mfu=best.compute_seconds, bubble_fraction=best.bubble, recompute_overhead=best.recompute,
        tp_comm_seconds=best.tp_seconds, dp_comm_seconds=best.dp_seconds, ep_comm_seconds=best.ep_seconds,
        wall_clock_hours=steps * best.step_seconds / 3600.0, why=why,
    )


def plan_layout(ctx, params: float, shape: Shape, batch_sequences: int, steps: int, gpus: int, *,
                dims: ModelDims | None = None) -> ParallelLayout | None:
    """The layout of a plan with hardware (ctx: planner.context.PlanContext); a warning, or with require_fit a
    PlanError naming hardware.count, when none fits. ``params`` counts the FLOPs (a MoE's active parameters);
    ``dims`` what memory holds (default: the dense shape's, dims_of)."""
    from planner.deadline import flops_per_token
    from planner.hardware import accelerator

    r = ctx.request
    acc = accelerator(r.hardware)
    dims = dims or dims_of(shape, ctx.seq_len, ctx.vocab_size)
    per_token = flops_per_token(ctx, params, shape)
    best = best_layout(dims, acc, gpus, batch_sequences, per_token, r.hardware.mfu)
    if r.budget_usd is not None:
        ctx.assumptions.append(
            f"money budget: {r.budget_usd:,.0f} at {r.hardware.price_per_gpu_hour:g} per GPU-hour on "
            f"{r.hardware.count} GPU(s) = {r.hours:,.1f} hours"
        )
    ctx.assumptions.append(
        "layout: memory per GPU after Korthikanti et al. 2022 (activations) and ZeRO (16 bytes per parameter of "
        "mixed-precision AdamW, sharded by stage); the fastest layout within 90% of the GPU's memory, step time "
        "from the MFU plus the pipeline bubble, full recompute and exposed communication (planner/layout.py)"
    )
    if best is None:
        error = refuse(dims, acc, gpus, batch_sequences)
        if r.require_fit:
            raise error
        ctx.warnings.append(f"no parallel layout fits: {error.message}")
        return None
    return parallel_layout(best, acc, dims, gpus, steps, batch_sequences)
