"""Expert parallelism in memory per GPU and the layout search: routed experts split ep ways across the
data-parallel ranks, their states sharded over the d/ep replicas, and the all-to-all it costs."""

from __future__ import annotations

import pytest

from fits.errors import BadInput
from planner import layout, memory
from planner.catalogue import lookup
from planner.memory import GB, Layout, ModelDims

# A toy MoE: 10e9 parameters held, 8e9 of them routed experts (64 per layer), a small embedding table.
MOE = ModelDims(n_layer=32, d_model=4096, n_head=32, seq_len=4096, vocab_size=32000, params_total=10e9,
                expert_params=8e9, experts=64, top_k=2, dropout=False)
DENSE = ModelDims(n_layer=32, d_model=4096, n_head=32, seq_len=4096, vocab_size=32000, params_total=10e9,
                  dropout=False)


def test_expert_parallel_one_is_the_dense_split():
    for lay in (Layout(dp=8, zero=1), Layout(dp=8, tp=2, pp=4, zero=2), Layout(dp=4, zero=3)):
        assert memory.state_bytes(MOE, lay) == pytest.approx(memory.state_bytes(DENSE, lay), rel=1e-12)


def test_experts_split_ep_ways_and_their_states_shard_over_the_replicas():
    # dp 8, ep 8: each GPU holds 1/8 of the experts and all of the rest; each expert has one replica
    weights, grads, optimizer = memory.state_bytes(MOE, Layout(dp=8, ep=8, zero=1))
    assert weights == pytest.approx((2e9 + 8e9 / 8) * 2)
    assert grads == pytest.approx((2e9 + 8e9 / 8) * 2)
    # ZeRO-1: the 2e9 others' optimizer states over 8 ranks, the experts' over 8/8 = 1 replica
    assert optimizer == pytest.approx((2e9 / 8 + 1e9 / 1) * 12)
    # dp 16, ep 4: experts/4 per GPU, 4 replicas each
    _, grads2, optimizer2 = memory.state_bytes(MOE, Layout(dp=16, ep=4, zero=2))
    assert optimizer2 == pytest.approx((2e9 / 16 + 2e9 / 4) * 12)
    assert grads2 == pytest.approx((2e9 / 16 + 2e9 / 4) * 2)
    # ZeRO-3: the weights shard the same way, plus two layers gathered (each with its 1/ep of the experts)
    weights3, _, _ = memory.state_bytes(MOE, Layout(dp=16, ep=4, zero=3))
    layer = ((10e9 - 8e9 - 32000 * 4096) + 8e9 / 4) / 32
    assert weights3 == pytest.approx((2e9 / 16 + 2e9 / 4) * 2 + 2 * layer * 2)


def test_expert_parallelism_that_does_not_divide_is_refused():
    with pytest.raises(BadInput, match="does not divide the 12 data-parallel") as err:
        memory.memory_per_gpu(MOE, Layout(dp=12, ep=8))
    assert err.value.field == "layout.ep"
    with pytest.raises(BadInput, match="does not divide the 64 experts"):
        memory.memory_per_gpu(MOE, Layout(dp=96, ep=96))
    with pytest.raises(BadInput, match="does not divide the 0 experts"):
        memory.memory_per_gpu(DENSE, Layout(dp=8, ep=8))


def test_a_dense_model_gets_no_expert_parallelism():
    assert layout.expert_parallel_options(DENSE, 64) == [1]
    assert layout.expert_parallel_options(MOE, 48) == [1, 2, 4, 8, 16]
    rows = layout.estimates(DENSE, lookup("H100"), 64, 512, 6 * 2e9, 0.4)
    assert rows and {e.layout.ep for e in rows} == {1} and not any(e.ep_seconds for e in rows)


def test_expert_parallelism_lets_a_moe_fit_without_model_parallelism_and_costs_its_all_to_all():
    # 30e9 held, 28e9 of it in 64 experts: data parallelism alone needs 4 bytes × 30e9 of weights and
    # gradients per GPU without expert parallelism, which 80 GB cannot hold
    mid = ModelDims(n_layer=32, d_model=4096, n_head=32, seq_len=4096, vocab_size=32000, params_total=30e9,
                    expert_params=28e9, experts=64, top_k=2, dropout=False)
    h100 = lookup("H100")
    fitting = layout.estimates(mid, h100, 64, 512, 6 * 4e9, 0.4)
    plain = {e.layout.ep for e in fitting if e.layout.tp == 1 and e.layout.pp == 1 and e.layout.zero == 1}
    assert 1 not in plain and plain == {2, 4, 8, 16, 32, 64}
    best = layout.best_layout(mid, h100, 64, 512, 6 * 4e9, 0.4)
    assert best is not None and best.layout.ep > 1 and best.layout.pp == 1
    assert best.memory.total <= 0.9 * h100.memory_gb * GB
    assert best.ep_seconds > 0 and best.step_seconds >= best.compute_seconds + best.ep_seconds
    # faster than the best layout without it (which needs pipeline stages and pays their bubble)
    without = min((e for e in fitting if e.layout.ep == 1), key=lambda e: e.step_seconds)
    assert without.layout.pp > 1 and best.step_seconds < without.step_seconds


def test_the_all_to_all_leaves_the_node_once_tp_times_ep_outgrows_it():
    h100 = lookup("H100")  # 8 GPUs a node: 900 GB/s NVLink bidirectional, 50 GB/s scale-out per GPU
    rows = {(e.layout.ep, e.layout.tp, e.layout.pp, e.layout.dp, e.layout.zero, e.layout.micro_batch,
             e.layout.recompute): e for e in layout.estimates(MOE, h100, 64, 512, 6 * 3e9, 0.4, fitting_only=False)}
    inside = rows[(8, 1, 1, 64, 1, 1, "selective")]
    outside = rows[(16, 1, 1, 64, 1, 1, "selective")]
    # same tokens; the (e−1)/e share sent changes 7/8 → 15/16, the bandwidth 450 → 50 GB/s
    ratio = (15 / 16) / (7 / 8) * (h100.intra_node_gbs / 2) / h100.inter_node_gbs
    assert outside.ep_seconds / inside.ep_seconds == pytest.approx(ratio, rel=1e-9)
    # 4 all-to-alls per layer per micro-batch of s·b·h bf16 to top_k experts, the (e−1)/e of them off the GPU
    volume = 4 * 32 * 8 * (2 * 4096 * 1 * 4096 * 2 * 7 / 8)
    assert inside.ep_seconds == pytest.approx(volume / (h100.intra_node_gbs * 1e9 / 2), rel=1e-9)


def test_a_moe_plan_reports_its_expert_parallelism():
    from fits.laws.published import published_fits
    from planner import PlanRequest, solve_plan
    from planner.request import Hardware

    fits = {f.name: f for f in published_fits()}
    hw = Hardware(gpu="H100", count=512)
    plan = solve_plan(PlanRequest(compute_flops=1e22, moe_experts=64, hardware=hw), fits["krajewski2024"])
    lay = plan.layout
    assert lay is not None and lay.ep > 1 and lay.dp % lay.ep == 0 and 64 % lay.ep == 0
    assert lay.ep_comm_seconds > 0
    assert any(f"expert parallel {lay.ep}" in line and "all-to-all" in line for line in lay.why)
    dense = solve_plan(PlanRequest(compute_flops=1e22, hardware=hw), fits["krajewski2024-dense"])
    assert dense.layout is not None and dense.layout.ep == 1 and dense.layout.ep_comm_seconds == 0
