"""Layout search speed over a grid of plans, against a baseline search in the same process.

    python bench/layout_speed.py [--baseline 6575db3] [--gpus 8,64,512,4096] [--repeat 3] [--quick]

Grid: budgets 1e19 … 1e25 FLOPs (one per decade) × GPU counts × accelerators (H100, TPU-v5p, MI300X) × models:
a dense plan (besiroglu2024) and mixture-of-experts plans (krajewski2024) with 8, 64 and 256 experts, top-1 and
top-2. Each plan is solved with its hardware (``solve_plan``, timed whole, best of ``--repeat``, with this tree's
layout steps and with the baseline's best_layout and refuse standing in); the layout search it ran
(planner.layout.best_layout, with the plan's own arguments) is then timed alone, best of ``--repeat`` runs, for
this tree's search and for the baseline's: planner/layout.py as it was at the ``--baseline`` revision (read with
``git show``, run against this tree's planner.memory). The two searches must return the same estimate (layout,
memory by part, step time and its parts, compared exactly; a difference is printed). Per scenario (model × GPU
count): median, p99 and max wall-clock milliseconds, the ratio of the medians, and the most thread CPU time one
search took (which leaves out the waits of a shared machine). The load average is printed. A baseline whose
estimate has other fields (3acbdf6, before expert parallelism) gets no whole-plan column (nan) and differs in
every estimate it returns.

Target: the layout search ≤ 20 ms for every plan.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

from fits.laws.published import published_fits
from planner import Hardware, PlanRequest, solve_plan
from planner import layout as layout_mod

GPUS = ("H100", "TPU-v5p", "MI300X")
MODELS = (("dense", None, None), ("moe-8 top-1", 8, 1), ("moe-8 top-2", 8, 2), ("moe-64 top-1", 64, 1),
          ("moe-64 top-2", 64, 2), ("moe-256 top-1", 256, 1), ("moe-256 top-2", 256, 2))
ROOT = Path(__file__).resolve().parent.parent


def baseline_search(revision: str) -> types.ModuleType:
    """planner/layout.py at ``revision`` as a module of its own (it imports this tree's planner.memory)."""
    source = subprocess.run(["git", "show", f"{revision}:planner/layout.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(f"layout_{revision}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{revision}:planner/layout.py", "exec"), module.__dict__)
    return module


def recorded_searches(request: PlanRequest, fit) -> tuple[float, list[tuple]]:
    """Whole-plan seconds, and the (args, kwargs) of every best_layout call the plan made."""
    calls, original = [], layout_mod.best_layout

    def recording(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    layout_mod.best_layout = recording
    try:
        start = time.perf_counter()
        solve_plan(request, fit)
        return time.perf_counter() - start, calls
    finally:
        layout_mod.best_layout = original


def figures_of(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def figures(estimate) -> tuple | None:
    """An estimate's fields (the baseline's Estimate is another class, so compare the values)."""
    return None if estimate is None else tuple(getattr(estimate, f.name) for f in dataclasses.fields(estimate))


def solved_with(search: types.ModuleType, request: PlanRequest, fit, repeat: int) -> float:
    """Best seconds of ``repeat`` whole plans with ``search``'s best_layout and refuse (the layout steps a plan
    takes) standing in for this tree's."""
    saved = layout_mod.best_layout, layout_mod.refuse
    layout_mod.best_layout, layout_mod.refuse = search.best_layout, search.refuse
    try:
        return best_of(solve_plan, (request, fit), {}, repeat)[0]
    finally:
        layout_mod.best_layout, layout_mod.refuse = saved


def best_of(fn, args, kwargs, repeat: int) -> tuple[float, float, object]:
    """Best wall-clock and best thread CPU seconds of ``repeat`` runs (CPU time leaves out the waits of a shared
    machine), and the result."""
    wall, cpu, result = [math.inf], [math.inf], None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.thread_time()
        result = fn(*args, **kwargs)
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return min(wall), min(cpu), result


def summary(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return (1e3 * statistics.median(ordered), 1e3 * ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
            1e3 * ordered[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="6575db3", help="git revision of the baseline planner/layout.py")
    parser.add_argument("--gpus", default="8,64,512,4096", help="GPU counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per search (the best is kept)")
    parser.add_argument("--quick", action="store_true", help="budgets 1e19, 1e22, 1e25 only")
    args = parser.parse_args()
    counts = [int(c) for c in args.gpus.split(",")]
    exponents = (19, 22, 25) if args.quick else range(19, 26)
    base = baseline_search(args.baseline)
    same_estimate = figures_of(base.Estimate) == figures_of(layout_mod.Estimate)
    fits = {f.name: f for f in published_fits()}
    for fit in fits.values():
        fit.id = 1
    for name in ("besiroglu2024", "krajewski2024"):  # warm the caches a first plan fills (loss-band draws)
        solve_plan(PlanRequest(compute_flops=1e21, hardware=Hardware(gpu="H100", count=8)), fits[name])
    print(f"layout search: this tree vs planner/layout.py at {args.baseline}; best of {args.repeat} per plan; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"{'scenario':<14} {'gpus':>5} {'plans':>5} | {'base med':>8} {'p99':>7} {'max':>7} | {'new med':>8} "
          f"{'p99':>7} {'max':>7} | {'ratio':>6} | {'cpu base':>8} {'new':>6} | plan: base med/max, new med/max")
    all_new, all_base, all_plan, all_new_c, all_base_c, all_plan_b, mismatches = [], [], [], [], [], [], 0
    for name, experts, top_k in MODELS:
        fit = fits["besiroglu2024" if experts is None else "krajewski2024"]
        for gpus in counts:
            new_t, base_t, plan_t, new_c, base_c, plan_b = [], [], [], [], [], []
            for exponent in exponents:
                for gpu in GPUS:
                    request = PlanRequest(compute_flops=10.0**exponent, hardware=Hardware(gpu=gpu, count=gpus),
                                          moe_experts=experts, moe_top_k=top_k)
                    try:
                        whole, calls = recorded_searches(request, fit)
                    except Exception as exc:  # a plan the planner refuses is not a layout search
                        print(f"  skipped {name} {exponent} {gpu}×{gpus}: {exc}", file=sys.stderr)
                        continue
                    plan_t.append(min(whole, best_of(solve_plan, (request, fit), {}, args.repeat - 1)[0]))
                    if same_estimate:  # a plan reads the estimate's fields: only a baseline with the same ones
                        plan_b.append(solved_with(base, request, fit, args.repeat))
                    for call_args, call_kwargs in calls:
                        t_new, c_new, r_new = best_of(layout_mod.best_layout, call_args, call_kwargs, args.repeat)
                        t_base, c_base, r_base = best_of(base.best_layout, call_args, call_kwargs, args.repeat)
                        new_t.append(t_new)
                        base_t.append(t_base)
                        new_c.append(c_new)
                        base_c.append(c_base)
                        # the whole estimate: layout, memory by part, step time and its parts, to the last bit
                        if figures(r_new) != figures(r_base):
                            mismatches += 1
                            if mismatches <= 5:  # an older baseline may search another space: say a few
                                    print(f"  different: {name} 1e{exponent} {gpu}×{gpus}: "
                                      f"{r_new and r_new.layout} vs {r_base and r_base.layout}")
            if not new_t:
                continue
            row(name, gpus, base_t, new_t, base_c, new_c, plan_b, plan_t)
            all_new += new_t
            all_base += base_t
            all_plan += plan_t
            all_plan_b += plan_b
            all_new_c += new_c
            all_base_c += base_c
    row("all", None, all_base, all_new, all_base_c, all_new_c, all_plan_b, all_plan)
    print(f"ms per layout search, best of {args.repeat} (base = {args.baseline}, new = this tree; ratio = base "
          "median / new median; cpu = max thread CPU ms); plan = the whole solve_plan with hardware (best of "
          f"{args.repeat}; base: the baseline's best_layout and refuse in it); target: every search ≤ 20 ms; "
          f"{mismatches} estimates differ from the baseline's; load average now {os.getloadavg()[0]:.2f}")


def row(name: str, gpus: int | None, base_t, new_t, base_c, new_c, plan_b, plan_t) -> None:
    b, n, p = summary(base_t), summary(new_t), summary(plan_t)
    q = summary(plan_b) if plan_b else (math.nan,) * 3  # a baseline whose estimate a plan cannot read
    print(f"{name:<14} {gpus or '':>5} {len(new_t):5d} | {b[0]:8.2f} {b[1]:7.2f} {b[2]:7.2f} | {n[0]:8.2f} "
          f"{n[1]:7.2f} {n[2]:7.2f} | {b[0] / n[0]:6.1f} | {1e3 * max(base_c):8.2f} {1e3 * max(new_c):6.2f} | "
          f"{q[0]:6.2f} {q[2]:6.2f} {p[0]:6.2f} {p[2]:6.2f}")


if __name__ == "__main__":
    main()
