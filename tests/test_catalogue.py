"""The accelerator catalogue against the vendors' dense figures, and public runs' MFU below 100% with it."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from fits import accounting
from fits.errors import BadInput
from planner import catalogue
from planner.catalogue import Accelerator, custom_accelerator, lookup

# Dense bf16 / fp8 TFLOP/s, memory GB, bandwidth GB/s from each datasheet (the sparse figure is twice the dense one).
DATASHEET = {
    "A100-40GB": (312, None, 40, 1555),
    "A100-80GB": (312, None, 80, 2039),
    "H100-SXM": (989, 1979, 80, 3350),
    "H100-PCIe": (756, 1513, 80, 2000),
    "H100-NVL": (835, 1671, 94, 3900),
    "H200": (989, 1979, 141, 4800),
    "B200": (2250, 4500, 180, 8000),
    "GB200": (2500, 5000, 186, 8000),
    "L40S": (362, 733, 48, 864),
    "MI300X": (1307.4, 2614.9, 192, 5300),
    "MI325X": (1307.4, 2614.9, 256, 6000),
    "MI355X": (2516.6, 5033.2, 288, 8000),
    "TPU-v5e": (197, None, 16, 819),
    "TPU-v5p": (459, 459, 95, 2765),
    "TPU-v6e": (918, None, 32, 1638),
    "Gaudi3": (1835, 1835, 128, 3700),
}


def test_catalogue_holds_every_required_accelerator_with_a_source_per_figure():
    names = {acc.name for acc in catalogue.catalogue()}
    assert set(DATASHEET) <= names
    for acc in catalogue.catalogue():
        for figure in ("bf16_tflops", "memory_gb", "intra_node_gbs", "inter_node_gbs", "price_per_hour"):
            assert acc.sources.get(figure), (acc.name, figure)
        assert 0 < acc.default_mfu < 0.6
        assert acc.node_size >= 1 and acc.inter_node_gbs > 0 and acc.intra_node_gbs > 0


@pytest.mark.parametrize("name", sorted(DATASHEET))
def test_dense_figures_match_the_datasheet(name):
    bf16, fp8, memory, bandwidth = DATASHEET[name]
    acc = lookup(name)
    assert (acc.bf16_tflops, acc.fp8_tflops, acc.memory_gb, acc.memory_bandwidth_gbs) == (bf16, fp8, memory, bandwidth)
    if acc.sparse_bf16_tflops is not None:  # the 'with sparsity' figure is twice the dense one, never used
        assert acc.sparse_bf16_tflops == pytest.approx(2 * bf16, rel=0.02)


def test_the_sparse_figure_is_refused_as_a_dense_peak():
    h100 = lookup("H100")
    assert h100.bf16_tflops == 989 and h100.sparse_bf16_tflops == 1979
    with pytest.raises(BadInput, match="sparse") as err:
        Accelerator(**{**h100.to_dict(), "aliases": (), "bf16_tflops": 1979})
    assert err.value.field == "hardware.peak_tflops"


def test_names_aliases_and_unknown():
    assert lookup("h100").name == "H100-SXM" and lookup("H100 pcie").name == "H100-PCIe"
    assert lookup("a100").name == "A100-80GB" and lookup("tpu v5p").name == "TPU-v5p"
    assert lookup("gb200_nvl72").name == "GB200" and lookup("trillium").name == "TPU-v6e"
    with pytest.raises(BadInput, match="unknown accelerator 'V100'") as err:
        lookup("V100")
    assert err.value.field == "hardware.gpu"


@pytest.mark.parametrize(("figures", "field"), [
    ({"peak_tflops": -5.0, "memory_gb": 80.0}, "hardware.peak_tflops"),
    ({"peak_tflops": 500.0, "memory_gb": 0.0}, "hardware.memory_gb"),
    ({"peak_tflops": 500.0, "memory_gb": 80.0, "inter_node_gbs": -1.0}, "hardware.inter_node_gbs"),
    ({"peak_tflops": float("nan"), "memory_gb": 80.0}, "hardware.peak_tflops"),
])
def test_custom_accelerator_refuses_impossible_figures(figures, field):
    with pytest.raises(BadInput) as err:
        custom_accelerator("X1", **figures)
    assert err.value.field == field


def test_prices_are_overridable_by_the_environment(monkeypatch, tmp_path):
    assert lookup("H100").price_per_hour == 2.5
    monkeypatch.setenv(catalogue.PRICES_ENV, "H100=1.75, tpu-v5p=3")
    assert lookup("H100").price_per_hour == 1.75 and lookup("TPU-v5p").price_per_hour == 3.0
    assert "SCALEPLAN_GPU_PRICES" in lookup("H100").sources["price_per_hour"]
    path = tmp_path / "prices.json"
    path.write_text('{"B200": 4.0}')
    monkeypatch.setenv(catalogue.PRICES_ENV, str(path))
    assert lookup("B200").price_per_hour == 4.0
    monkeypatch.setenv(catalogue.PRICES_ENV, "H100=-1")
    with pytest.raises(BadInput) as err:
        lookup("H100")
    assert err.value.field == catalogue.PRICES_ENV


# Public runs, one per accelerator where a citable one exists: each records the model (parameters, sequence
# length), the measured throughput and where it is published, and the achieved model TFLOP/s per device, either
# as the source reports it (its own FLOP count, named) or from its tokens/s with fits.accounting (convention
# named). MFU = achieved / the catalogue's dense peak of that precision must be below 100% (a sparse peak taken
# for the dense one is the usual way trackers get MFU above it) and plausible (above 15%).
class PublicRun(NamedTuple):
    accelerator: str
    precision: str
    """The peak the MFU is taken against: "bf16" or "fp8" (an fp8 run checked against bf16 is stricter)."""
    model: str
    params: float
    seq_len: int
    measured: str
    """The published figure and its unit, as the source prints it."""
    source: str
    convention: str
    """How the achieved FLOPs are counted."""
    tflops: float
    """Achieved model TFLOP/s per device."""


def _tokens_to_tflops(params: float, n_layer: int, d_model: int, seq_len: int, tokens_per_s: float) -> float:
    # PaLM convention with the causal halving MaxText uses: 6·N + 6·n_layer·seq_len·d_model per token
    return accounting.flops_per_token(params, n_layer, d_model, seq_len, "kaplan") * tokens_per_s / 1e12


def _lora_tflops(params: float, n_layer: int, d_model: int, seq_len: int, tokens_per_s: float) -> float:
    # LoRA freezes the base weights: no weight-gradient matmuls, so 2·N FLOPs per token fewer than training
    # (forward 2N + input gradients 2N); the attention scores and mix have no weights and keep their full cost
    per_token = accounting.flops_per_token(params, n_layer, d_model, seq_len, "kaplan") - 2 * params
    return per_token * tokens_per_s / 1e12


_KAPLAN = "kaplan (6N + 6·n_layer·seq_len·d_model, N = all parameters) from tokens/s"
_LORA = "kaplan minus the 2N weight-gradient FLOPs LoRA skips (4N + 6·n_layer·seq_len·d_model) from tokens/s"
# MLPerf Training logs 'tracked_stats' throughput in samples/s for the whole system; a sample is one
# max_sequence_length (8192-token) packed sequence, so tokens/s/device = samples/s × 8192 / devices.
_MLPERF = "https://github.com/mlcommons/training_results_v5.1/tree/main/AMD/results/"

PUBLIC_RUNS = [
    PublicRun("A100-40GB", "bf16", "GPT-NeoX-20B", 20.6e9, 2048, "117 TFLOP/s per GPU on 96 A100-SXM4-40GB",
              "Black et al. 2022, GPT-NeoX-20B, Sec. 3", "as reported (Megatron's count)", 117.0),
    PublicRun("A100-80GB", "bf16", "Megatron-LM GPT 1T", 1.008e12, 2048, "163 TFLOP/s per GPU on 3072 A100",
              "Narayanan et al. 2021, Table 1", "as reported (their eq. 3: 96·B·s·l·h²·(1 + s/6h + V/16lh))",
              163.0),
    PublicRun("H100-SXM", "bf16", "Llama 3 405B", 405e9, 8192, "400 TFLOP/s per GPU on 16,384 H100",
              "Dubey et al. 2024, The Llama 3 Herd of Models, Table 4", "as reported", 400.0),
    PublicRun("H100-SXM", "fp8", "Llama 3 70B", 70.6e9, 8192, "734 model TFLOP/s per GPU on 64 H100, FP8",
              "NeMo 24.12 performance summary (docs.nvidia.com/nemo-framework/user-guide/24.12, Pretraining table)",
              "as reported (Megatron's model FLOPs)", 734.0),
    PublicRun("H200", "bf16", "Llama 3.1 70B", 70.55e9, 8192,
              "1055.949 tokens/s/device (15.516 s/step, 4,194,304 tokens a step, 256 H200, bf16)",
              "github.com/AI-Hypercomputer/gpu-recipes training/a3ultra/llama-3.1-70b/maxtext-pretraining-gke "
              "README, 'Analyze results' log line (MaxText itself prints 508.371 TFLOP/s/device, MFU 51.4%)",
              _KAPLAN, _tokens_to_tflops(70.55e9, 80, 8192, 8192, 1055.949)),
    PublicRun("B200", "fp8", "Llama 3.1 405B", 405.85e9, 8192,
              "661 tokens/s/GPU on 128 B200, FP8-CS (Megatron-Bridge reports 1667 model TFLOP/s/GPU)",
              "github.com/NVIDIA-NeMo/Megatron-Bridge docs/performance-summary.md, 25.11 container, DGX-B200 table",
              _KAPLAN, _tokens_to_tflops(405.85e9, 126, 16384, 8192, 661)),
    PublicRun("GB200", "bf16", "Llama 3 70B", 70.6e9, 8192, "1791 model TFLOP/s per GPU on 64 GB200 (FP8)",
              "Megatron-Bridge docs/performance-summary-archive.md, 25.09 container, DGX-GB200 table",
              "as reported; an fp8 run checked against the bf16 peak, the stricter test", 1791.0),
    PublicRun("MI300X", "bf16", "Llama 2 70B LoRA fine-tuning", 68.98e9, 8192,
              "2.1156 samples/s on 8 MI300X (33.9 min to target), MLPerf Training v5.1, AMD",
              _MLPERF + "MI300X_EPYC_9575F_pytorch_llama2_70b/llama2_70b_lora/result_0.txt ('tracked_stats'); "
              "precision not stated in the log, so checked against the bf16 peak, the stricter test",
              _LORA, _lora_tflops(68.98e9, 80, 8192, 8192, 2.1156 * 8192 / 8)),
    PublicRun("MI325X", "bf16", "Llama 2 70B LoRA fine-tuning", 68.98e9, 8192,
              "2.8361 samples/s on 8 MI325X (20.3 min to target), MLPerf Training v5.1, AMD",
              _MLPERF + "MI325X_EPYC_9575F_pytorch_llama2_70b/llama2_70b_lora/result_0.txt ('tracked_stats'); "
              "checked against the bf16 peak, the stricter test",
              _LORA, _lora_tflops(68.98e9, 80, 8192, 8192, 2.8361 * 8192 / 8)),
    PublicRun("MI355X", "fp8", "Llama 3.1 8B pretraining", 8.03e9, 8192,
              "30.63 samples/s on 8 MI355X, FP8 (system description: 'FP8 Training'), MLPerf Training v5.1, AMD",
              _MLPERF + "MI355X_EPYC_9575F_pytorch/llama31_8b/result_0.txt ('tracked_stats')",
              _KAPLAN, _tokens_to_tflops(8.03e9, 32, 4096, 8192, 30.63 * 8192 / 8)),
    PublicRun("TPU-v5e", "bf16", "MaxText 16B (global_parameter_scale=16)", 16e9, 2048,
              "120 TFLOP/s/chip on one v5e-256 slice (reported MFU 61.10%)",
              "github.com/AI-Hypercomputer/maxtext MaxText/configs/v5e/README.md, 16B column, 1x v5e-256 row",
              "as reported (MaxText's count)", 120.0),
    PublicRun("TPU-v5p", "bf16", "Llama 2 70B", 68.98e9, 4096,
              "692 tokens/s/device on 512 v5p chips (reported MFU 65.4%)", "MaxText tiering benchmarks",
              _KAPLAN, _tokens_to_tflops(68.98e9, 80, 8192, 4096, 692)),
    PublicRun("TPU-v6e", "bf16", "Llama 3.1 70B", 70.55e9, 8192,
              "960 tokens/s/device on 256 v6e chips (reported MFU 50.3%)", "MaxText tiering benchmarks",
              _KAPLAN, _tokens_to_tflops(70.55e9, 80, 8192, 8192, 960)),
]

# Accelerators with no citable public training run after a search of MLPerf Training v4.x-v6.0 results, vendor
# performance pages (NVIDIA NeMo / Megatron-Bridge, Intel Gaudi model-performance, AMD ROCm), MaxText and
# gpu-recipes, and issue trackers: their default MFU is an assumption, as the catalogue's sources say.
NO_PUBLIC_RUN = {
    "H100-PCIe": "no published multi-GPU training throughput found (MLPerf, NeMo and Megatron-Bridge list SXM parts)",
    "H100-NVL": "no published training throughput found",
    "L40S": "no published LLM pre-training throughput found (MLPerf Training, NVIDIA's NeMo tables)",
    "Gaudi3": "Intel's Gaudi 3 model-performance page lists inference only; its training tables are Gaudi 2's",
}


def test_every_accelerator_has_a_public_run_or_a_stated_reason():
    names = {acc.name for acc in catalogue.catalogue()}
    with_run = {run.accelerator for run in PUBLIC_RUNS}
    assert with_run.isdisjoint(NO_PUBLIC_RUN)
    assert names == with_run | set(NO_PUBLIC_RUN)


@pytest.mark.parametrize("run", PUBLIC_RUNS, ids=[r.accelerator + "-" + r.precision for r in PUBLIC_RUNS])
def test_public_run_mfu_with_the_catalogue_is_below_100_percent(run):
    acc = lookup(run.accelerator)
    peak = acc.fp8_tflops if run.precision == "fp8" else acc.bf16_tflops
    mfu = run.tflops / peak
    assert 0.15 < mfu < 1.0, (run.model, run.source)
    if acc.sparse_bf16_tflops and run.precision == "bf16":
        # against the sparse figure the same run would look half as good: the dense one is what the catalogue holds
        assert run.tflops / acc.sparse_bf16_tflops < mfu


def test_maxtext_reported_mfu_is_reproduced_by_the_catalogue_peak():
    # MaxText's own MFU for the v5p run is 65.4%: the catalogue peak and the kaplan count give it within 2 points
    v5p = _tokens_to_tflops(68.98e9, 80, 8192, 4096, 692) / lookup("TPU-v5p").bf16_tflops
    assert v5p == pytest.approx(0.654, abs=0.02)
    # and its v5e table's 61.10% is 120 TFLOP/s over the catalogue's 197
    assert 120.0 / lookup("TPU-v5e").bf16_tflops == pytest.approx(0.611, abs=0.005)


def test_megatron_reported_model_tflops_are_the_accounting_count():
    # Megatron-Bridge's 1667 model TFLOP/s for the B200 405B run is its 661 tokens/s under kaplan within 1%
    b200 = next(run for run in PUBLIC_RUNS if run.accelerator == "B200")
    assert b200.tflops == pytest.approx(1667, rel=0.01)
