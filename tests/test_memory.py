"""Memory per GPU against Korthikanti et al. 2022 and public runs' layouts that fit (or famously do not)."""

from __future__ import annotations

import pytest

from fits.errors import BadInput
from planner.memory import GB, Layout, ModelDims, activation_bytes_per_layer, memory_per_gpu

# Korthikanti et al. 2022, Table 3: the configurations they trained on A100 80GB (s = 2048, v = 51200).
KORTHIKANTI = {
    "22B": dict(n_head=64, d_model=6144, n_layer=48, tp=8, pp=1, params=22e9),
    "175B": dict(n_head=96, d_model=12288, n_layer=96, tp=8, pp=8, params=175e9),
    "530B": dict(n_head=128, d_model=20480, n_layer=105, tp=8, pp=35, params=530e9),
    "1T": dict(n_head=160, d_model=25600, n_layer=128, tp=8, pp=64, params=1e12),
}
S, V = 2048, 51200


def _per_layer(cfg, **kw):
    return activation_bytes_per_layer(S, 1, cfg["d_model"], cfg["n_head"], **kw) / (S * cfg["d_model"])


@pytest.mark.parametrize("name", sorted(KORTHIKANTI))
def test_per_layer_activations_are_table_2(name):
    """Table 2's six rows, in units of s·b·h bytes."""
    cfg = KORTHIKANTI[name]
    a, h, t = cfg["n_head"], cfg["d_model"], cfg["tp"]
    score = 5 * a * S / h
    assert _per_layer(cfg) == pytest.approx(34 + score)  # no parallelism
    assert _per_layer(cfg, tp=t, sequence_parallel=False) == pytest.approx(10 + 24 / t + score / t)
    assert _per_layer(cfg, tp=t) == pytest.approx((34 + score) / t)  # + sequence parallel
    assert _per_layer(cfg, tp=t, sequence_parallel=False, recompute="selective") == pytest.approx(10 + 24 / t)
    assert _per_layer(cfg, tp=t, recompute="selective") == pytest.approx(34 / t)
    assert _per_layer(cfg, recompute="full") == pytest.approx(2)


def test_worked_numbers_gpt3_175b():
    """GPT-3 175B, t = 8 (§4, §5): TP alone keeps 23·sbh per layer, SP + selective 4.25·sbh, the '5×' of the paper."""
    cfg = KORTHIKANTI["175B"]
    tp_only = _per_layer(cfg, tp=8, sequence_parallel=False)
    both = _per_layer(cfg, tp=8, recompute="selective")
    assert tp_only == pytest.approx(23.0) and both == pytest.approx(4.25)
    assert tp_only / both == pytest.approx(5.4, abs=0.05)
    # in bytes per layer: 2048 · 12288 · 23 = 579 MB, 107 MB
    tp_bytes = activation_bytes_per_layer(S, 1, 12288, 96, tp=8, sequence_parallel=False)
    assert tp_bytes == pytest.approx(578.8e6, rel=1e-3)
    assert activation_bytes_per_layer(S, 1, 12288, 96, tp=8, recompute="selective") == pytest.approx(106.95e6, rel=1e-3)


def _dims(cfg, **kw):
    return ModelDims(n_layer=cfg["n_layer"], d_model=cfg["d_model"], n_head=cfg["n_head"], seq_len=S, vocab_size=V,
                     params_total=cfg["params"], **kw)


@pytest.mark.parametrize("name", ["175B", "530B", "1T"])
def test_korthikanti_runs_fit_on_a100_80gb_with_sp_and_selective_recompute(name):
    """Their Table 3 layouts (micro-batch 1, 1F1B) with SP + selective recompute fit 80 GB; the tensor-parallel baseline
    without recompute does not (the reason Megatron ran these sizes with full recompute before)."""
    cfg = KORTHIKANTI[name]
    dp = 1
    m = 2 * cfg["pp"]
    fits = memory_per_gpu(_dims(cfg), Layout(dp=dp, tp=8, pp=cfg["pp"], grad_accum=m, zero=0, recompute="selective"))
    baseline = memory_per_gpu(_dims(cfg), Layout(dp=dp, tp=8, pp=cfg["pp"], grad_accum=m, zero=0, recompute="none",
                                                 sequence_parallel=False))
    assert fits.total < 80 * GB < baseline.total
    # activations alone: L layers of (10 + 24/t + 5as/(ht))·sbh against 34/t·sbh (23 vs 4.25 for 175B)
    ratio = (10 + 24 / 8 + 5 * cfg["n_head"] * S / (cfg["d_model"] * 8)) / (34 / 8)
    assert baseline.activations / fits.activations == pytest.approx(ratio, rel=0.05)


def test_llama3_405b_published_layout_fits_on_h100():
    """Llama 3 405B (Dubey et al. 2024, Table 4): TP 8, PP 16, DP 128 on 16,384 H100 80GB, sequence 8192, batch 16M
    tokens (micro-batch 1, 16 micro-batches per step), optimizer states sharded across data parallel; GQA with 8 KV
    heads, d_ff 53,248, no dropout."""
    dims = ModelDims(n_layer=126, d_model=16384, n_head=128, n_kv_head=8, d_ff=53248, seq_len=8192,
                     vocab_size=128256, params_total=405.9e9, dropout=False)
    layout = Layout(dp=128, tp=8, pp=16, micro_batch=1, grad_accum=16, zero=1, recompute="selective")
    mem = memory_per_gpu(dims, layout)
    assert layout.gpus == 16384
    assert 60 * GB < mem.total < 80 * GB
    # the same model without tensor parallelism (PP 16 only) is far too large for one H100
    alone = memory_per_gpu(dims, Layout(dp=1024, tp=1, pp=16, grad_accum=16, zero=1, recompute="selective"))
    assert alone.total > 80 * GB


def test_llama2_70b_full_finetune_on_one_node_does_not_fit():
    """Mixed-precision AdamW holds 16 bytes per parameter: Llama 2 70B's 1.1 TB of states does not fit 8 × A100 80GB
    even fully sharded (ZeRO-3), the well-known reason 70B full fine-tuning needs more than one node or offload."""
    dims = ModelDims(n_layer=80, d_model=8192, n_head=64, n_kv_head=8, d_ff=28672, seq_len=4096, vocab_size=32000,
                     params_total=68.98e9, dropout=False)
    mem = memory_per_gpu(dims, Layout(dp=8, tp=1, pp=1, zero=3, recompute="full"))
    assert mem.weights + mem.gradients + mem.optimizer > 130 * GB
    assert mem.total > 80 * GB
    # 64 GPUs (8 nodes) with ZeRO-3 fit
    assert memory_per_gpu(dims, Layout(dp=64, tp=1, pp=1, zero=3, recompute="full")).total < 80 * GB


def test_zero_stages_shard_what_they_should():
    dims = ModelDims(n_layer=32, d_model=4096, n_head=32, seq_len=2048, vocab_size=32000, params_total=6.7e9)
    z = [memory_per_gpu(dims, Layout(dp=8, zero=k)) for k in range(4)]
    assert z[0].optimizer == pytest.approx(12 * 6.7e9) and z[1].optimizer == pytest.approx(12 * 6.7e9 / 8)
    assert z[1].gradients == z[0].gradients and z[2].gradients == pytest.approx(2 * 6.7e9 / 8)
    assert z[2].weights == z[0].weights and z[3].weights < z[0].weights / 4
    assert z[0].total > z[1].total > z[2].total > z[3].total


def test_memory_takes_total_params_for_a_mixture_of_experts():
    """Memory follows the parameters held (all experts), whatever the active count is."""
    dense = ModelDims(n_layer=32, d_model=4096, n_head=32, seq_len=2048, vocab_size=32000, params_total=6.7e9)
    moe = ModelDims(n_layer=32, d_model=4096, n_head=32, seq_len=2048, vocab_size=32000, params_total=46.7e9)
    layout = Layout(dp=8, zero=1)
    assert memory_per_gpu(moe, layout).weights == pytest.approx(memory_per_gpu(dense, layout).weights * 46.7 / 6.7)
    assert memory_per_gpu(moe, layout).activations == memory_per_gpu(dense, layout).activations


@pytest.mark.parametrize(("layout", "field"), [
    (Layout(tp=3), "layout.tp"), (Layout(pp=0), "layout.pp"), (Layout(zero=4), "layout.zero"),
    (Layout(recompute="most"), "layout.recompute"),  # type: ignore[arg-type]
])
def test_impossible_layouts_name_the_field(layout, field):
    dims = ModelDims(n_layer=4, d_model=256, n_head=4, seq_len=128, vocab_size=1000, params_total=4e6)
    with pytest.raises(BadInput) as err:
        memory_per_gpu(dims, layout)
    assert err.value.field == field
