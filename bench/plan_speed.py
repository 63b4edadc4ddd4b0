"""In-process planning speed: median and p95 time of solve_plan over many random budgets.

    python bench/plan_speed.py [--n 10000] [--fit besiroglu2024] [--scenario all]

Scenarios (budgets log-uniform over 1e17–1e25 FLOPs, one random budget per plan):
    closed-form   no constraints: the family's closed-form optimum (Table 6 for kaplan2020)
    max-params    max_params at 0.3× the unconstrained N (clamped optimum)
    repeated      unique_tokens at 0.2× the unconstrained D (1-D search under the repeated-data law)
    combined      max_params 0.5× N, unique_tokens 0.3× D with max_epochs 8, inference_tokens 1× D
    target-loss   a target loss with unique_tokens binding (a search over budgets, each a 1-D search)
    hardware      closed-form on 64 H100s: adds the time estimate and the layout search (planner/layout.py)
Targets: ≤ 1 ms median for closed-form plans, ≤ 20 ms with binding constraints; the layout search ≤ 20 ms
(bench/layout_speed.py times it alone over dense and MoE plans on 8 to 4,096 GPUs).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from fits.laws.published import published_fits
from planner import Hardware, PlanRequest, solve_plan

SCENARIOS = ("closed-form", "max-params", "repeated", "combined", "target-loss", "hardware")


def requests(scenario: str, n: int, fit, rng: np.random.Generator) -> list[PlanRequest]:
    out = []
    for log_c in rng.uniform(17, 25, n):
        c = float(10**log_c)
        free = solve_plan(PlanRequest(compute_flops=c), fit) if scenario not in ("closed-form", "hardware") else None
        if scenario == "closed-form":
            out.append(PlanRequest(compute_flops=c))
        elif scenario == "hardware":
            out.append(PlanRequest(compute_flops=c, hardware=Hardware(gpu="H100", count=64)))
        elif scenario == "max-params":
            out.append(PlanRequest(compute_flops=c, max_params=0.3 * free.params))
        elif scenario == "repeated":
            out.append(PlanRequest(compute_flops=c, unique_tokens=0.2 * free.tokens))
        elif scenario == "combined":
            out.append(
                PlanRequest(
                    compute_flops=c,
                    max_params=0.5 * free.params,
                    unique_tokens=0.3 * free.tokens,
                    max_epochs=8.0,
                    inference_tokens=free.tokens,
                )
            )
        else:
            out.append(PlanRequest(target_loss=free.predicted_loss.mean, unique_tokens=0.3 * free.tokens))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="plans per scenario")
    parser.add_argument("--fit", default="besiroglu2024", choices=("besiroglu2024", "hoffmann2022", "kaplan2020"))
    parser.add_argument("--scenario", default="all", choices=("all", *SCENARIOS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    fits = {f.name: f for f in published_fits()}
    fit = fits[args.fit]
    fit.id = 1
    solve_plan(PlanRequest(compute_flops=1e21), fit)  # warm caches (coefficient draws for the loss band)
    rng = np.random.default_rng(args.seed)
    print(f"fit {args.fit}, {args.n} plans per scenario, seed {args.seed}")
    print("wall = perf_counter; cpu = this thread's CPU time (less sensitive to other load on the machine)")
    print(f"{'scenario':<13} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'cpu median':>11} {'binding':>8}")
    for scenario in SCENARIOS if args.scenario == "all" else (args.scenario,):
        batch = requests(scenario, args.n, fit, rng)
        wall, cpu, bound = [], [], 0
        for request in batch:
            start, start_cpu = time.perf_counter(), time.thread_time()
            plan = solve_plan(request, fit)
            cpu.append(time.thread_time() - start_cpu)
            wall.append(time.perf_counter() - start)
            bound += bool(plan.binding)
        wall.sort()
        p95 = wall[int(0.95 * (len(wall) - 1))]
        print(
            f"{scenario:<13} {1e3 * statistics.median(wall):10.3f} {1e3 * p95:8.3f} {1e3 * wall[-1]:8.2f} "
            f"{1e3 * statistics.median(cpu):11.3f} {bound / len(batch):8.2f}"
        )


if __name__ == "__main__":
    main()
