"""The layout search against an exhaustive reference: every layout scored one at a time, memory from
planner.memory.memory_per_gpu and step time from the formulas in planner/layout.py's docstring, then the same
choice (the fastest that fits, the simplest within 1% of it). The search scores all layouts at once with numpy;
this says it finds the same layout with the same figures."""

from __future__ import annotations

import math

import pytest

from planner import layout
from planner.catalogue import custom_accelerator, lookup
from planner.memory import GB, Layout, ModelDims, memory_per_gpu, params_split

CASES = {
    "dense 7B, GQA": ModelDims(n_layer=32, d_model=4096, n_head=32, n_kv_head=8, seq_len=4096, vocab_size=32000,
                               params_total=7e9, dropout=False),
    "dense 70B": ModelDims(n_layer=80, d_model=8192, n_head=64, n_kv_head=8, seq_len=4096, vocab_size=128256,
                           params_total=70e9, dropout=False),
    "MoE 64 experts top-2": ModelDims(n_layer=32, d_model=4096, n_head=32, seq_len=4096, vocab_size=32000,
                                      params_total=30e9, expert_params=28e9, experts=64, top_k=2, d_ff=2 * 4096,
                                      dropout=False),
    "MoE 256 experts top-1": ModelDims(n_layer=48, d_model=6144, n_head=48, n_kv_head=8, seq_len=2048,
                                       vocab_size=50304, params_total=400e9, expert_params=390e9, experts=256,
                                       top_k=1, d_ff=6144, dropout=False),
}
# (GPUs, sequences per step): power-of-two batches, and ones that round onto the data-parallel ranks
RUNS = ((8, 256), (64, 1000), (512, 2048), (4096, 6000))
ACCELERATORS = ("H100", "TPU-v5p", "MI300X")


def _reference(dims: ModelDims, acc, gpus: int, batch: int, per_token: float, mfu: float) -> list[tuple]:
    """(layout, memory, step) of every layout of the search space, scored one at a time."""
    intra = acc.intra_node_gbs * 1e9 / 2
    inter = acc.inter_node_gbs * 1e9
    dp_bw = inter if gpus > acc.node_size else intra
    s, h = dims.seq_len, dims.d_model
    out = []
    for t in layout.tensor_parallel_options(dims, acc, gpus):
        for p in range(1, min(dims.n_layer, gpus // t) + 1):
            if (gpus // t) % p:
                continue
            d = gpus // (t * p)
            per_rank = max(1, round(batch / d))
            if abs(per_rank * d - batch) > 0.02 * batch or (d > 1 and dp_bw <= 0):
                continue
            compute = per_rank * d * s * per_token / (gpus * acc.bf16_tflops * 1e12 * mfu)
            for e in layout.expert_parallel_options(dims, d):
                other, experts = params_split(dims, Layout(tp=t, pp=p, ep=e))
                r = d // e
                grads = (2 * (d - 1) / d * other * 2 + 2 * (r - 1) / r * experts * 2) / max(dp_bw, 1)
                for zero in (1, 2, 3) if d > 1 else (0,):
                    for b in (1, 2, 4, 8, 16, 32, 64):
                        if b > per_rank or per_rank % b:
                            continue
                        m = per_rank // b
                        for recompute in ("selective", "full"):
                            lay = Layout(dp=d, tp=t, pp=p, micro_batch=b, grad_accum=m, zero=zero,
                                         recompute=recompute, ep=e)
                            passes = math.ceil(dims.n_layer / p) * m * (6 if recompute == "full" else 4)
                            busy = compute * (4 / 3 if recompute == "full" else 1)
                            tp_s = passes * 2 * s * b * h * 2 * (t - 1) / t / intra if t > 1 else 0
                            a2a_bw = intra if t * e <= acc.node_size else inter
                            ep_s = passes * 2 * s * b * h * dims.top_k * (e - 1) / (e * t) / a2a_bw if e > 1 else 0
                            dp_s = 0
                            if d > 1:
                                volume = grads * (m if zero >= 2 else 1) * (1.5 if zero == 3 else 1)
                                dp_s = max(0, volume - busy * (1 if zero == 3 else 2 / 3))
                            step = busy * (1 + (p - 1) / m) + tp_s + dp_s + ep_s
                            out.append((lay, memory_per_gpu(dims, lay), step))
    return out


def _pick(rows: list[tuple], usable: float):
    fitting = [row for row in rows if row[1].total <= usable]
    if not fitting:
        return None
    fastest = min(row[2] for row in fitting)
    near = [row for row in fitting if row[2] <= fastest * 1.01]
    return min(near, key=lambda row: (row[0].pp, row[0].tp, row[0].ep, row[0].zero, row[0].recompute == "full",
                                      -row[0].micro_batch))


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_search_finds_the_exhaustive_references_layout(name):
    dims = CASES[name]
    active = dims.params_total - dims.expert_params * (1 - dims.top_k / max(dims.experts, 1))
    per_token = 6 * active
    chosen = 0
    for acc_name in ACCELERATORS:
        acc = lookup(acc_name)
        usable = acc.memory_gb * GB * (1 - layout.DEFAULT_HEADROOM)
        for gpus, batch in RUNS:
            rows = _reference(dims, acc, gpus, batch, per_token, acc.default_mfu)
            every = {e.layout: e for e in layout.estimates(dims, acc, gpus, batch, per_token, acc.default_mfu,
                                                           fitting_only=False)}
            # the same search space, and every layout's memory and step time
            assert set(every) == {row[0] for row in rows}, (acc_name, gpus)
            for lay, memory, step in rows:
                got = every[lay]
                assert got.memory.total == pytest.approx(memory.total, rel=1e-12), lay
                assert got.memory.optimizer == pytest.approx(memory.optimizer, rel=1e-12), lay
                assert got.step_seconds == pytest.approx(step, rel=1e-12), lay
            want = _pick(rows, usable)
            best = layout.best_layout(dims, acc, gpus, batch, per_token, acc.default_mfu)
            assert (best is None) == (want is None), (acc_name, gpus)
            if want is not None:
                chosen += 1
                assert best.layout == want[0], (acc_name, gpus)
                assert best.memory.total <= usable
            least = layout.smallest_footprint(dims, acc, gpus, batch)
            assert least.memory.total == pytest.approx(min(row[1].total for row in rows), rel=1e-12)
    assert chosen, "no case in the sample had a fitting layout"


def test_fitting_estimates_are_the_layouts_within_the_memory():
    dims, acc = CASES["MoE 64 experts top-2"], lookup("H100")
    usable = acc.memory_gb * GB * (1 - layout.DEFAULT_HEADROOM)
    every = layout.estimates(dims, acc, 64, 1000, 6e9, 0.4, fitting_only=False)
    fitting = layout.estimates(dims, acc, 64, 1000, 6e9, 0.4)
    assert 0 < len(fitting) < len(every)
    assert [e for e in every if e.memory.total <= usable] == fitting  # same order, same figures


def test_no_layout_at_all_is_none_not_an_error():
    # 37 GPUs: no tensor parallelism (37 is odd), 37 stages for 32 layers is too many, and 37 data-parallel
    # ranks cannot split 10 sequences
    dims, acc = CASES["dense 7B, GQA"], lookup("H100")
    assert layout.estimates(dims, acc, 37, 10, 4.2e10, 0.4, fitting_only=False) == []
    assert layout.best_layout(dims, acc, 37, 10, 4.2e10, 0.4) is None
    assert layout.smallest_footprint(dims, acc, 37, 10) is None
    assert "divides the batch of 10 sequences" in layout.refuse(dims, acc, 37, 10).message


def test_a_device_without_interconnect_gets_neither_tensor_nor_data_parallelism():
    lone = custom_accelerator("lone", peak_tflops=100.0, memory_gb=400.0)
    dims = CASES["dense 7B, GQA"]
    rows = layout.estimates(dims, lone, 8, 64, 4.2e10, 0.4, fitting_only=False)
    # pipeline stages only (their point-to-point traffic is not modelled), so 8 GPUs run as 8 stages
    assert rows and {(e.layout.dp, e.layout.tp, e.layout.pp) for e in rows} == {(1, 1, 8)}
