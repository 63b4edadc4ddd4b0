"""Training precision: auto's choice from /proc/cpuinfo, precision as part of a run's identity, and bf16 curves
that match fp32 within the seed noise."""

from __future__ import annotations

import statistics
from pathlib import Path

import msgspec
import pytest
import torch

from fits.errors import BadInput
from verifier import cli, device, runs
from verifier.check import ladder
from verifier.runs import ConfigError, RunConfig
from verifier.train import make_config, train
from verifier.training import checkpoints

# First lines of /proc/cpuinfo on four kinds of machine (flags shortened to the interesting ones).
SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
bogomips\t: 4000.00
"""
ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9654
flags\t\t: fpu sse2 avx2 avx512f avx512dq avx512_bf16 avx512vbmi avx512_vnni
"""
SKYLAKE = """processor\t: 0
model name\t: Intel(R) Xeon(R) Gold 6148
flags\t\t: fpu sse2 avx2 avx512f avx512dq avx512bw avx512_vnni
"""
GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid bf16 i8mm
"""


@pytest.fixture(autouse=True)
def _private_cache(cache: Path) -> Path:
    return cache



def test_auto_reads_the_bf16_flags_from_cpuinfo():
    assert device.cpu_bf16_flags(SAPPHIRE_RAPIDS) == {"amx_bf16", "avx512_bf16"}
    assert device.cpu_bf16_flags(ZEN4) == {"avx512_bf16"}
    assert device.cpu_bf16_flags(SKYLAKE) == set()  # AVX-512 without its bf16 extension
    assert device.cpu_bf16_flags(GRAVITON) == set()  # no x86 flags line: fp32, the safe choice
    assert device.cpu_bf16_flags("") == set()
    amx_only = SKYLAKE.replace("avx512_vnni", "avx512_vnni amx_bf16")
    cpu = torch.device("cpu")
    for cpuinfo, expected in ((SAPPHIRE_RAPIDS, "bf16"), (ZEN4, "bf16"), (amx_only, "bf16"), (SKYLAKE, "fp32"),
                              (GRAVITON, "fp32"), ("", "fp32")):
        assert device.resolve_precision("auto", cpu, cpuinfo=cpuinfo) == expected
    # explicit choices are kept whatever the CPU; anything else is bad input naming the field
    assert device.resolve_precision("bf16", cpu, cpuinfo=SKYLAKE) == "bf16"
    assert device.resolve_precision("fp32", cpu, cpuinfo=SAPPHIRE_RAPIDS) == "fp32"
    with pytest.raises(BadInput) as err:
        device.resolve_precision("fp16", cpu)
    assert err.value.field == "precision"
    # this machine: what its own /proc/cpuinfo says
    here = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    assert device.resolve_precision("auto", cpu) == ("bf16" if device.cpu_bf16_flags(here) else "fp32")


def test_precision_is_part_of_a_runs_identity(db, db_file: Path, text: Path, tmp_path: Path, capsys):
    fp32 = make_config(**TINY, steps=4, eval_every=2, corpus=text)
    bf16 = msgspec.structs.replace(fp32, precision="bf16")
    assert fp32.precision == "fp32"  # the library's default; the command line resolves "auto"
    with pytest.raises(ConfigError) as err:
        msgspec.structs.replace(fp32, precision="auto")
    assert err.value.field == "precision"
    assert runs.config_json(fp32) != runs.config_json(bf16)
    # an unfinished fp32 run is not resumed by the bf16 config, only by its own
    pending = runs.create_run(db, fp32, scope="s")
    assert [r.id for r in runs.find_resumable(db, bf16, "s")] == []
    assert [r.id for r in runs.find_resumable(db, fp32, "s")] == [pending.id]
    # a checkpoint written in one precision is refused by the other, naming the field
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    path = tmp_path / "checkpoint.pt"
    checkpoints.save_checkpoint(path, model=model, optimizer=opt, step=2, seconds=1.0, config=fp32, run_id=1,
                                dev=torch.device("cpu"))
    with pytest.raises(ConfigError, match="precision"):
        checkpoints.restore_checkpoint(path, model=model, optimizer=opt, config=bf16, dev=torch.device("cpu"))
    assert checkpoints.restore_checkpoint(path, model=model, optimizer=opt, config=fp32,
                                          dev=torch.device("cpu")) == (2, 1.0)
    # a config stored before the field existed reads as fp32 (what CPU runs trained in then)
    legacy = msgspec.json.decode(runs.config_json(fp32))
    del legacy["precision"]
    assert msgspec.convert(legacy, RunConfig) == fp32
    # the command line keeps a stored run's precision and refuses to change it
    assert cli.main(["run", "--run-id", str(pending.id), "--precision", "bf16", "--db", str(db_file)]) == 2
    assert f"run {pending.id} trains in fp32, not bf16" in capsys.readouterr().err
    # the ladder's proxies carry the session's precision
    spec = ladder.make_spec("proxy", 2e4, 1e12, ladder.Rules(precision="bf16"))
    assert spec.precision == spec.config().precision == "bf16"


TINY = dict(n_layer=1, d_model=32, seq_len=32, batch_size=4, lr=3e-3, eval_sequences=8)
CURVE = dict(n_layer=2, d_model=64, seq_len=64, batch_size=8, lr=3e-3, eval_sequences=32, steps=100, eval_every=25)
SEEDS = (0, 1, 2)
K = 2.0
"""|bf16 − fp32| at each evaluation, same seed (same initial weights, same batches), must stay within K pooled
seed σ, and the mean signed difference within one σ. The two curves start identical and drift apart as rounding
differences compound: measured here (AVX512-BF16 CPU, attention through the materialised bf16 scores, fused AdamW),
up to 1.22σ (mean −0.65σ; with SDPA's flash kernel instead 1.05σ, mean −0.46σ: the same within this statistic's
noise), against √2·σ ≈ 1.4σ expected between two fp32 seeds. K = 2 fails a bf16 loop that shifts the curve by more
than the spread of two seeds (about 0.08 nats on this model), and leaves a factor 1.6 over the measured drift for
CPUs whose bf16 kernels round differently. σ is pooled over the evaluations after step 0 (3 seeds give only 2
degrees of freedom per step)."""


def test_bf16_curves_match_fp32_within_the_seed_noise(db, text: Path):
    curves: dict[tuple[str, int], list[float]] = {}
    for precision, seed in [("fp32", s) for s in SEEDS] + [("bf16", 0), ("bf16", 1)]:
        result = train(make_config(**CURVE, seed=seed, precision=precision, corpus=text), db=db, progress=False,
                       resume=False)
        assert result.precision == precision
        assert result.run.config["precision"] == precision  # recorded with the run
        curves[precision, seed] = [p.val_loss for p in runs.get_points(db, result.run.id) if p.val_loss is not None]
    steps = range(1, len(curves["fp32", 0]))  # evaluations after step 0 (at step 0 only the init differs)
    sigma = [statistics.stdev(curves["fp32", s][i] for s in SEEDS) for i in steps]
    pooled = statistics.fmean(x * x for x in sigma) ** 0.5
    assert pooled > 0.005  # the seeds really differ: σ is a noise floor, not zero
    deltas = [curves["bf16", seed][i] - curves["fp32", seed][i] for seed in (0, 1) for i in steps]
    assert max(map(abs, deltas)) <= K * pooled, (deltas, pooled)
    assert abs(statistics.fmean(deltas)) <= pooled, (deltas, pooled)  # no systematic shift either
    assert max(map(abs, deltas)) > 0  # and bf16 really ran: rounding moves the curve a little


def test_a_bf16_run_checkpoints_fp32_masters_and_fp32_adamw_state(db, text: Path, tmp_path: Path):
    config = make_config(**TINY, steps=4, eval_every=2, corpus=text, precision="bf16")
    result = train(config, db=db, progress=False, resume=False, keep_checkpoint=True)
    state = torch.load(checkpoints.checkpoint_dir(db, result.run.id) / checkpoints.CHECKPOINT_FILE, weights_only=True)
    assert {t.dtype for t in state["model"].values()} == {torch.float32}
    moments = [t for s in state["optimizer"]["state"].values() for k, t in s.items() if k != "step"]
    assert moments and {t.dtype for t in moments} == {torch.float32}
    assert all(g["fused"] for g in state["optimizer"]["param_groups"])  # the same AdamW kernel as fp32 runs
    # a checkpoint from a foreach optimizer restores its state into the fused one, which stays fused
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    old = torch.optim.AdamW(model.parameters(), foreach=True)
    model(torch.randn(4, 3)).sum().backward()
    old.step()
    path = tmp_path / "checkpoint.pt"
    fp32 = make_config(**TINY, steps=4, eval_every=2, corpus=text)
    checkpoints.save_checkpoint(path, model=model, optimizer=old, step=1, seconds=0.5, config=fp32, run_id=1,
                                dev=torch.device("cpu"))
    new = torch.optim.AdamW(model.parameters(), fused=True)
    assert checkpoints.restore_checkpoint(path, model=model, optimizer=new, config=fp32,
                                          dev=torch.device("cpu")) == (1, 0.5)
    # (loading alone would hand back the saved groups' fused=None, foreach=True: the slow kernel, silently)
    assert all(g["fused"] and not g["foreach"] for g in new.param_groups)
    assert torch.equal(new.state[model.weight]["exp_avg"], old.state[model.weight]["exp_avg"])
