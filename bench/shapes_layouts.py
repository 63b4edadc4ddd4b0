"""Shapes and layouts across budgets: for 1e19 … 1e25 FLOPs, each plan's shape (heads, d_model, KV heads, layers,
total parameters vs N) and its layout on 8, 64 and 512 H100s, with the layout search's time per plan.

    python bench/shapes_layouts.py [--fit besiroglu2024] [--gpu H100] [--kv-heads 8]

Target: layout search ≤ 20 ms per plan (the search alone, timed around planner.layout.best_layout, best of 3).
"""

from __future__ import annotations

import argparse
import statistics
import time

from fits.laws.published import published_fits
from planner import Hardware, PlanRequest, solve_plan
from planner.catalogue import lookup
from planner.deadline import flops_per_token
from planner.layout import best_layout, dims_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", default="besiroglu2024")
    parser.add_argument("--gpu", default="H100")
    parser.add_argument("--kv-heads", type=int, default=None)
    args = parser.parse_args()
    fit = next(f for f in published_fits() if f.name == args.fit)
    acc = lookup(args.gpu)
    print(f"fit {fit.name}; {acc.name} ({acc.memory_gb:g} GB, MFU {acc.default_mfu}); kv_heads {args.kv_heads}")
    print(f"{'budget':>7} {'N':>9} {'total':>9} {'err':>6} {'layers':>6} {'d_model':>7} {'heads':>5} {'kv':>4} "
          f"{'hd':>4} {'aspect':>6}  layout on 8 / 64 / 512 GPUs (DP×TP×PP mb ZeRO recompute, GB per GPU)")
    timings = []
    for exponent in range(19, 26):
        budget = 10.0**exponent
        plan = solve_plan(PlanRequest(compute_flops=budget, kv_heads=args.kv_heads), fit)
        s = plan.shape
        cells = []
        for gpus in (8, 64, 512):
            hw = Hardware(gpu=args.gpu, count=gpus)
            with_hw = solve_plan(PlanRequest(compute_flops=budget, kv_heads=args.kv_heads, hardware=hw), fit)
            lay = with_hw.layout
            # time the search alone, as the plan runs it
            from planner.context import PlanContext
            from planner.hardware import resolved

            ctx = PlanContext(request=PlanRequest(compute_flops=budget, hardware=resolved(hw)), fit=fit, law=None,
                              seq_len=with_hw.seq_len, vocab_size=with_hw.vocab_size, rule="",
                              peak=acc.bf16_tflops * 1e12, params_count=with_hw.params_counted,
                              convention=with_hw.flops_convention)
            per_token = flops_per_token(ctx, with_hw.params, with_hw.shape)
            dims = dims_of(with_hw.shape, with_hw.seq_len, with_hw.vocab_size)
            runs = []
            for _ in range(3):  # best of three: the machine is shared
                start = time.perf_counter()
                best_layout(dims, acc, gpus, with_hw.batch_sequences, per_token, acc.default_mfu)
                runs.append(time.perf_counter() - start)
            timings.append(min(runs))
            if lay is None:
                cells.append("does not fit")
            else:
                cells.append(f"{lay.dp}×{lay.tp}×{lay.pp} mb{lay.micro_batch} Z{lay.zero} {lay.recompute[:3]} "
                             f"{lay.memory.total:.0f}GB")
        total = s.params_total
        print(f"{budget:7.0e} {plan.params:9.3g} {total:9.3g} {100 * (total / plan.params - 1):+5.1f}% {s.n_layer:6d} "
              f"{s.d_model:7d} {s.n_head:5d} {s.n_kv_head:4d} {s.head_dim:4d} {s.aspect_ratio:6.0f}  "
              + " | ".join(cells))
    print(f"layout search: median {1e3 * statistics.median(timings):.2f} ms, max {1e3 * max(timings):.2f} ms per plan "
          f"({len(timings)} plans; target ≤ 20 ms)")


if __name__ == "__main__":
    main()
