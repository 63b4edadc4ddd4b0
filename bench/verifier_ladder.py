"""Does a pool of single-threaded workers beat one process using every core? Times the same small ladder both
ways on the default corpus and prints wall time and throughput of each.

    python bench/verifier_ladder.py [--runs 4] [--steps 300]

Writes to a temporary database; nothing else is touched. Each configuration trains identical runs (same
sizes, steps and seeds), so the two results compare executors only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def ladder_specs(runs: int, steps: int):
    from verifier.check.ladder import size_ladder

    sizes = [6.6e3, 1.45e4, 2.55e4, 5.7e4, 1.0e5, 1.9e5][:runs]
    return size_ladder(sizes, [steps] * len(sizes), batch_size=16, lr=1e-2, schedule="cosine")


def timed(executor_name: str, specs, directory: Path) -> tuple[float, float]:
    from fits.store import open_db
    from verifier import runs
    from verifier.executors import make_executor

    db_path = directory / f"{executor_name}.db"
    db = open_db(db_path)
    ids = [runs.create_run(db, s.config(), scope="bench", n_params=s.params, role="bench").id for s in specs]
    executor = make_executor(executor_name, str(db_path), "cpu")
    t0 = time.perf_counter()
    with executor:
        outcomes = executor.run(ids)
    wall = time.perf_counter() - t0
    failed = [o for o in outcomes if o.status != "complete"]
    if failed:
        raise SystemExit(f"{executor_name}: {len(failed)} runs failed: {failed[0].error}")
    tokens = sum(s.tokens for s in specs)
    db.conn.close()
    return wall, tokens / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    specs = ladder_specs(args.runs, args.steps)
    cores = len(os.sched_getaffinity(0))
    print(f"{len(specs)} runs of {args.steps} steps (N {', '.join(f'{s.params:.3g}' for s in specs)}), "
          f"{cores} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, label in (("inline", f"sequential: 1 process x {cores} threads"),
                            ("local", f"local pool: {cores} workers x 1 thread")):
            wall, rate = timed(name, specs, Path(tmp))
            print(f"{label:<42} {wall:7.1f} s wall  {rate:9,.0f} tokens/s (startup included)")


if __name__ == "__main__":
    main()
