"""Training speed of the verifier's loop, against this machine's own matmul peak.

    python bench/train_speed.py                 # CPU section (+ GPU section when CUDA is present)
    python bench/train_speed.py --section gpu --steps 30
    python bench/train_speed.py --section bf16 --repeats 3   # fp32 vs bf16 autocast at three widths
    python bench/train_speed.py --section bf16 --variants eager,sdpa,compile   # a row per way of training

CPU: a GPT with d_model 128, 4 layers, context 256, batch 16 sequences, vocab 256 (N ≈ 0.8M) is trained by
``verifier.train.train`` (the real loop: data, forward, backward, clipping, AdamW, store writes) and its
throughput is counted as 6N + attention FLOPs per token (fits.accounting, the "kaplan" convention). The peak
is a 2048×2048 fp32 matmul timed in the same process before and after each training run (the larger
of the two is used, so a busy machine during one measurement does not flatter the ratio); the verdict
uses the median over ``--repeats`` runs. Target: at least 50% of peak, counted as above (Kaplan's causal
attention term); the figure under PaLM's MFU convention (the full attention square) is printed beside it.
Two ways of using the cores are timed: one process with a thread per core, and DDP with one single-threaded
process per core (torchrun, gloo; the same loop and global batch), which avoids per-op thread synchronisation
in these small ops. A third line times a step cut down to its matrix multiplications and SDPA calls (same
shapes, same sharding): the ceiling any loop built on these kernels can reach here.

bf16 (CPU): tokens/s of the same loop in fp32 and in bf16 (``RunConfig.precision``: autocast, fp32 master
weights and optimizer) at d_model 128 (4 layers), 256 (4 layers) and 384 (6 layers), context 256, batch 16.
Each repeat measures the 2048² matmul peak in fp32 and in bf16, then trains fp32 and bf16 back to back (the
order alternating between repeats), so a change in the machine's load hits both columns alike; the table gives
medians over repeats and the load average around each configuration. Targets: bf16 at least 2× fp32's
tokens/s at d_model 256 and 3× at 384. ``--variants`` adds rows, each timing both columns the same way:
"eager" (the default loop), "sdpa" (attention forced through SDPA, whose flash CPU kernel in bf16 is the
path before the CPU bf16 attention materialised its scores) and "compile" (torch.compile; the first 2-step
run of each precision, compilation included, is timed apart). The tokens/s ratio cannot much exceed the
matmul peak ratio beside it: on AVX512-BF16 without AMX that is about 2-2.5×, with AMX 6-8×.

GPU (when CUDA is available): a ~57M non-embedding model (8 layers, d_model 768, context 1024, batch 32,
bf16 autocast) with each attention path (xformers, then SDPA), reporting tokens/s and MFU against the
data-sheet bf16 peak and against a measured 8192² bf16 matmul.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from fits.accounting import kaplan_params, non_embedding_params, shape_flops_per_token
from fits.store import open_db
from verifier import device as device_mod
from verifier.model import xformers_available
from verifier.train import make_config, train

REPO = Path(__file__).resolve().parents[1]


class Result(NamedTuple):
    tokens_per_second: float
    flops_per_second: float
    final_train_loss: float


CPU_SHAPE = dict(n_layer=4, d_model=128, seq_len=256, batch_size=16)
GPU_SHAPE = dict(n_layer=8, d_model=768, seq_len=1024, batch_size=32, precision="bf16")
TARGET = 0.5


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def _run(db, shape: dict, steps: int, *, device: str, attention: str = "auto", compile: bool = False,
         threads: int | None = None) -> Result:
    cfg = make_config(**shape, steps=steps, lr=1e-3, warmup_steps=1, eval_every=steps, eval_sequences=8)
    r = train(cfg, db=db, device=device, progress=False, resume=False, attention=attention,
              compile=compile, threads=threads)
    return Result(r.tokens_per_second, r.flops_per_second, r.final_train_loss)


def _run_ddp(db_path: Path, shape: dict, steps: int, nproc: int) -> Result:
    """The same run as one process per core (gloo, one thread each) under torchrun."""
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in shape.items()]
    argv += [f"--steps={steps}", "--lr=1e-3", "--warmup=1", f"--eval-every={steps}", "--eval-sequences=8",
             "--device=cpu", "--no-resume", "--json", "--quiet", f"--db={db_path}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "verifier.ddp", *argv]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=True)
    r = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    return Result(r["tokens_per_second"], r["flops_per_second"], r["final_train_loss"])


def _kernels_only(shape: dict, workers: int, steps: int) -> float:
    """FLOP/s (6N + attention counting) of a step reduced to its matrix multiplications and SDPA calls: the
    same shapes as training (each worker a 1/workers share of the batch on one thread, as the training loop
    shards it), with no LayerNorm, GELU, softmax over the vocabulary, optimizer or data. An upper bound for
    the real step on this machine."""
    from concurrent.futures import ThreadPoolExecutor

    import torch.nn.functional as F

    from verifier.train import default_n_head

    L, d, t = shape["n_layer"], shape["d_model"], shape["seq_len"]
    b = shape["batch_size"] // workers
    h = default_n_head(d)
    m = b * t

    def make():
        g = torch.Generator().manual_seed(0)
        def r(*size, grad=False):
            return torch.randn(*size, generator=g).requires_grad_(grad)
        linears = [(r(m, i), r(o, i), r(m, o)) for i, o in ((d, 3 * d), (d, d), (d, 4 * d), (4 * d, d))]
        qkv = [r(b, h, t, d // h, grad=True) for _ in range(3)]
        return linears, qkv, r(b, h, t, d // h), (r(m, d), r(256, d), r(m, 256))

    def step(tensors) -> None:
        linears, qkv, grad_out, head = tensors
        for _ in range(L):
            for x, w, g in linears:
                x @ w.t()  # forward
                g @ w  # input gradient
                g.t() @ x  # weight gradient
            F.scaled_dot_product_attention(*qkv, is_causal=True).backward(grad_out)
        x, w, g = head
        x @ w.t(), g @ w, g.t() @ x

    per_worker = [make() for _ in range(workers)]
    with ThreadPoolExecutor(workers, initializer=torch.set_flush_denormal, initargs=(True,)) as pool:
        list(pool.map(step, per_worker))  # warm-up
        t0 = time.perf_counter()
        for _ in range(steps):
            list(pool.map(step, per_worker))
        seconds = time.perf_counter() - t0
    return steps * workers * m * shape_flops_per_token(L, d, t, "kaplan") / seconds


def cpu_section(db, db_path: Path, steps: int, repeats: int, compile_mode: str, ddp: bool) -> dict:
    """Alternate peak measurements and training runs, so each run is compared with the peak measured
    right around it (on a shared machine the achievable peak drifts from minute to minute)."""
    dev = torch.device("cpu")
    threads = device_mod.cpu_count()
    device_mod.configure(dev, threads=threads)
    shape = CPU_SHAPE
    n = non_embedding_params(shape["n_layer"], shape["d_model"])
    fpt = shape_flops_per_token(shape["n_layer"], shape["d_model"], shape["seq_len"], "kaplan")
    kaplan = kaplan_params(shape["n_layer"], shape["d_model"])
    print(f"CPU: {_cpu_name()}, {threads} threads, torch {torch.__version__}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"model: n_layer {shape['n_layer']}, d_model {shape['d_model']}, context {shape['seq_len']}, "
          f"batch {shape['batch_size']}, vocab 256; N = {n:,} (12·L·d² = {kaplan:,}); "
          f"FLOPs/token (6N + attention) = {fpt:.4g}")
    variants = {f"1 process, {threads} threads": lambda: _run(db, shape, steps, device="cpu", threads=threads)}
    if compile_mode == "on":
        variants["torch.compile"] = lambda: _run(db, shape, steps, device="cpu", compile=True, threads=threads)
    if ddp and threads > 1:
        variants[f"DDP, {threads} x 1 thread"] = lambda: _run_ddp(db_path, shape, steps, threads)

    def kernels() -> Result:
        device_mod.configure(dev, threads=1)
        return Result(float("nan"), _kernels_only(shape, threads, steps), float("nan"))

    variants["ceiling: matmuls + SDPA only"] = kernels
    _run(db, shape, 2, device="cpu", threads=threads)  # warm-up: imports, first allocations
    rows: dict[str, list[dict]] = {name: [] for name in variants}
    peak = device_mod.measure_matmul_flops(dev)
    for _ in range(repeats):
        for name, variant in variants.items():
            before = peak
            r = variant()
            device_mod.configure(dev, threads=threads)
            peak = device_mod.measure_matmul_flops(dev)
            ref = max(before, peak)
            rows[name].append({"tokens_per_second": r.tokens_per_second, "flops_per_second": r.flops_per_second,
                               "peak_flops": ref, "ratio": r.flops_per_second / ref})
            print(f"  {name:22s} {r.tokens_per_second:10,.0f} tokens/s  {r.flops_per_second / 1e9:7.1f} GFLOP/s  "
                  f"peak (2048² fp32 matmul, before/after) {ref / 1e9:6.1f} GFLOP/s  "
                  f"{100 * r.flops_per_second / ref:5.1f}%", flush=True)
    summary = {}
    # PaLM's MFU convention counts the full attention square (12·L·T·d per token, as nanoGPT's estimate_mfu
    # does); Kaplan's Table 1 counts the causal half. The verdict uses Kaplan's; the other is printed beside it.
    palm = shape_flops_per_token(shape["n_layer"], shape["d_model"], shape["seq_len"], "palm") / fpt
    for name, rs in rows.items():
        ratios = sorted(x["ratio"] for x in rs)
        summary[name] = {"median_ratio": statistics.median(ratios), "best_ratio": ratios[-1],
                         "median_ratio_palm_convention": palm * statistics.median(ratios), "runs": rs}
        verdict = "" if name.startswith("ceiling") else (
            f" (target {100 * TARGET:.0f}%): {'PASS' if summary[name]['median_ratio'] >= TARGET else 'FAIL'}")
        print(f"{name}: median {100 * summary[name]['median_ratio']:.1f}% of peak, best "
              f"{100 * ratios[-1]:.1f}%{verdict}; counting the full attention square (PaLM MFU convention) "
              f"median {100 * palm * summary[name]['median_ratio']:.1f}%")
    return {"device": _cpu_name(), "threads": threads, "n_params": n, "flops_per_token": fpt,
            "load_average": os.getloadavg(), "variants": summary}


BF16_SHAPES = (dict(n_layer=4, d_model=128, seq_len=256, batch_size=16),
               dict(n_layer=4, d_model=256, seq_len=256, batch_size=16),
               dict(n_layer=6, d_model=384, seq_len=256, batch_size=16))
BF16_TARGETS = {256: 2.0, 384: 3.0}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


BF16_VARIANTS = {
    "eager": {},
    "sdpa": {"attention": "sdpa"},
    "compile": {"compile": True},
}
"""How both columns train: the loop as it runs by default; with attention forced through SDPA (in bf16 its
flash CPU kernel, the path before bf16 attention materialised its scores); torch.compile'd."""


def bf16_section(db, steps: int, repeats: int, variants: list[str], widths: set[int] | None = None) -> dict:
    """fp32 against bf16 autocast per shape and variant: peaks and runs interleaved, medians over ``repeats``."""
    dev = torch.device("cpu")
    threads = device_mod.cpu_count()
    device_mod.configure(dev, threads=threads)
    print(f"CPU: {_cpu_name()}, {threads} threads, torch {torch.__version__}; bf16 flags: "
          f"{' '.join(sorted(device_mod.cpu_bf16_flags(Path('/proc/cpuinfo').read_text()))) or 'none'}; "
          f"auto precision: {device_mod.resolve_precision('auto', dev)}; load average {_load()}")
    out: dict[str, dict] = {}
    for shape in [s for s in BF16_SHAPES if widths is None or s["d_model"] in widths]:
        for variant in variants:
            options = BF16_VARIANTS[variant]
            # warm-up in both precisions: imports, first allocations, and for "compile" the compilation (timed
            # here, apart from the runs: the trained model is compiled again per run, from inductor's cache)
            first = {}
            for precision in ("fp32", "bf16"):
                t0 = time.perf_counter()
                _run(db, {**shape, "precision": precision}, 2, device="cpu", threads=threads, **options)
                first[precision] = time.perf_counter() - t0
            load_before = _load()
            rows: dict[str, list[float]] = {"fp32": [], "bf16": [], "peak_fp32": [], "peak_bf16": [], "ratio": []}
            for i in range(repeats):
                device_mod.configure(dev, threads=threads)
                rows["peak_fp32"].append(device_mod.measure_matmul_flops(dev))
                rows["peak_bf16"].append(device_mod.measure_matmul_flops(dev, dtype=torch.bfloat16))
                tok = {}
                for precision in (("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32")):
                    r = _run(db, {**shape, "precision": precision}, steps, device="cpu", threads=threads, **options)
                    tok[precision] = r.tokens_per_second
                    rows[precision].append(r.tokens_per_second)
                rows["ratio"].append(tok["bf16"] / tok["fp32"])
                print(f"  d_model {shape['d_model']} {variant} repeat {i + 1}: fp32 {tok['fp32']:9,.0f} tokens/s, "
                      f"bf16 {tok['bf16']:9,.0f} tokens/s ({tok['bf16'] / tok['fp32']:.2f}×); 2048² matmul fp32 "
                      f"{rows['peak_fp32'][-1] / 1e9:6.0f}, bf16 {rows['peak_bf16'][-1] / 1e9:6.0f} GFLOP/s",
                      flush=True)
            med = {k: statistics.median(v) for k, v in rows.items()}
            out[f"{shape['d_model']} {variant}"] = {
                "shape": shape, "variant": variant, "median": med, "runs": rows, "load_before": load_before,
                "load_after": _load(), "first_run_seconds": first}
    print(f"\n{'d_model':>7} {'layers':>6} {'variant':>8} {'fp32 tok/s':>11} {'bf16 tok/s':>11} {'bf16/fp32':>9} "
          f"{'fp32 peak':>10} {'bf16 peak':>10} {'peak ratio':>10} {'first run fp32/bf16':>19}  "
          "load (1/5/15 min) before → after  target")
    for row in out.values():
        m, d = row["median"], row["shape"]["d_model"]
        target = BF16_TARGETS.get(d)
        verdict = f"≥{target:g}×: {'PASS' if m['ratio'] >= target else 'FAIL'}" if target else ""
        first = f"{row['first_run_seconds']['fp32']:.0f} s/{row['first_run_seconds']['bf16']:.0f} s"
        print(f"{d:7d} {row['shape']['n_layer']:6d} {row['variant']:>8} {m['fp32']:11,.0f} {m['bf16']:11,.0f} "
              f"{m['ratio']:8.2f}× {m['peak_fp32'] / 1e9:7.0f} GF {m['peak_bf16'] / 1e9:7.0f} GF "
              f"{m['peak_bf16'] / m['peak_fp32']:9.2f}× {first:>19}  {row['load_before']} → {row['load_after']}  "
              f"{verdict}")
    print(f"(medians over {repeats} repeats of {steps} steps; peaks: 2048² matmul, best of 3 trials, measured "
          "before each repeat's runs; first run: a 2-step warm-up, with compilation for 'compile'; 2 cores "
          "shared with other work, hence the load averages)")
    return {"device": _cpu_name(), "threads": threads, "steps": steps, "repeats": repeats, "rows": out}


def gpu_section(db, steps: int) -> dict:
    dev = device_mod.resolve_device("cuda")
    device_mod.configure(dev)
    name = torch.cuda.get_device_name(dev)
    sheet = device_mod.gpu_peak_flops(dev)
    measured = device_mod.measure_matmul_flops(dev, n=8192, dtype=torch.bfloat16, repeats=20)
    shape = GPU_SHAPE
    n = non_embedding_params(shape["n_layer"], shape["d_model"])
    fpt = shape_flops_per_token(shape["n_layer"], shape["d_model"], shape["seq_len"], "kaplan")
    print(f"GPU: {name}; bf16 peak: data sheet {sheet / 1e12 if sheet else float('nan'):.0f} TFLOP/s, "
          f"measured 8192² matmul {measured / 1e12:.0f} TFLOP/s")
    print(f"model: n_layer {shape['n_layer']}, d_model {shape['d_model']}, context {shape['seq_len']}, "
          f"batch {shape['batch_size']}, vocab 256, bf16 autocast; N = {n / 1e6:.1f}M; FLOPs/token = {fpt:.4g}")
    paths = ["xformers", "sdpa"] if xformers_available() else ["sdpa"]
    if not xformers_available():
        print("  xformers: not importable, path skipped")
    rows = {}
    for attention in paths:
        _run(db, shape, 3, device="cuda", attention=attention)  # warm-up: kernels, allocator, autotuning
        r = _run(db, shape, steps, device="cuda", attention=attention)
        rows[attention] = {"tokens_per_second": r.tokens_per_second, "flops_per_second": r.flops_per_second,
                           "mfu_datasheet": r.flops_per_second / sheet if sheet else None,
                           "mfu_measured": r.flops_per_second / measured, "final_train_loss": r.final_train_loss}
        mfu = f"{100 * r.flops_per_second / sheet:5.1f}%" if sheet else "  n/a"
        print(f"  {attention:9s} {r.tokens_per_second:12,.0f} tokens/s  {r.flops_per_second / 1e12:7.1f} TFLOP/s  "
              f"MFU {mfu} of data sheet, {100 * r.flops_per_second / measured:5.1f}% of measured matmul")
    return {"device": name, "peak_datasheet": sheet, "peak_measured": measured, "n_params": n,
            "flops_per_token": fpt, "paths": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", choices=("cpu", "bf16", "gpu", "all"), default="all")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per run (30)")
    parser.add_argument("--repeats", type=int, default=3, help="CPU runs, each between two peak measurements (3)")
    parser.add_argument("--compile", choices=("on", "off"), default="off",
                        help="also time the torch.compile'd model on CPU")
    parser.add_argument("--no-ddp", action="store_true",
                        help="skip the one-process-per-core (torchrun, gloo) variant on CPU")
    parser.add_argument("--d-models", help="bf16 section: only these of 128,256,384 (comma-separated)")
    parser.add_argument("--variants", default="eager",
                        help=f"bf16 section: comma-separated, of {','.join(BF16_VARIANTS)} (eager; --compile on "
                             "adds compile)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("SCALEPLAN_CACHE", str(Path(tmp) / "cache"))
        db_path = Path(tmp) / "bench.db"
        db = open_db(db_path)
        if args.section in ("cpu", "all"):
            out["cpu"] = cpu_section(db, db_path, args.steps, args.repeats, args.compile, not args.no_ddp)
        if args.section in ("bf16", "all"):
            widths = {int(w) for w in args.d_models.split(",")} if args.d_models else None
            variants = [v for v in args.variants.split(",") if v]
            if args.compile == "on" and "compile" not in variants:
                variants.append("compile")
            if unknown := set(variants) - set(BF16_VARIANTS):
                parser.error(f"--variants: unknown {', '.join(sorted(unknown))} (use {', '.join(BF16_VARIANTS)})")
            out["bf16"] = bf16_section(db, args.steps, args.repeats, variants, widths)
        if args.section in ("gpu", "all"):
            if torch.cuda.is_available():
                out["gpu"] = gpu_section(db, args.steps)
            else:
                print("GPU: CUDA is not available here; GPU section skipped")
        db.conn.close()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
