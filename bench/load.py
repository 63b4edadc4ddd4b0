"""Load test: POST /v1/plans against GET /healthz on the same server, same workers, same concurrency.

    python bench/load.py [--workers 2] [--concurrency 32] [--duration 10] [--url URL --db PATH]

Starts ``python -m api`` on a free port with a fresh database (unless --url is given), drives each endpoint
for --duration seconds with --concurrency connections from one httpx.AsyncClient, and prints requests/s,
p50/p99 latency and errors for both, their ratio, and whether every plan that got a 201 is in the
database afterwards. Rate limiting is turned off on the started server (the loader is one client).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field

import httpx

from api.testing import ServerProcess


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    plan_ids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return len(self.latencies)

    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def plan_body(rng: random.Random) -> dict:
    """A spread of realistic requests: FLOP, PF-day and hardware-time budgets, with and without constraints."""
    kind = rng.random()
    if kind < 0.5:
        return {"compute_flops": 10 ** rng.uniform(18, 25)}
    if kind < 0.7:
        return {"pf_days": 10 ** rng.uniform(-1, 4), "max_params": 10 ** rng.uniform(8, 11)}
    if kind < 0.85:
        return {"hours": rng.uniform(1, 500), "hardware": {"gpu": "H100", "count": rng.choice([8, 64, 256])}}
    return {"compute_flops": 10 ** rng.uniform(19, 23), "unique_tokens": 10 ** rng.uniform(9, 12)}


async def drive(client: httpx.AsyncClient, name: str, concurrency: int, duration: float, seed: int) -> Result:
    result = Result(name)
    deadline = time.perf_counter() + duration

    async def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                if name == "healthz":
                    response = await client.get("/healthz")
                    expected = 200
                else:
                    response = await client.post("/v1/plans", json=plan_body(rng))
                    expected = 201
            except httpx.HTTPError as exc:
                key = type(exc).__name__
                result.errors[key] = result.errors.get(key, 0) + 1
                continue
            elapsed = time.perf_counter() - start
            if response.status_code != expected:
                key = str(response.status_code)
                result.errors[key] = result.errors.get(key, 0) + 1
                if len(result.errors) == 1 and result.errors[key] == 1:
                    print(f"  first error on {name}: {response.status_code} {response.text[:300]}", file=sys.stderr)
                continue
            result.latencies.append(elapsed)
            if name == "plans":
                result.plan_ids.append(response.json()["id"])

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    result.seconds = time.perf_counter() - began
    return result


async def run(url: str, concurrency: int, duration: float, warmup: float) -> tuple[Result, Result]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        await drive(client, "healthz", concurrency, warmup, seed=0)
        await drive(client, "plans", concurrency, warmup, seed=1)
        health = await drive(client, "healthz", concurrency, duration, seed=2)
        plans = await drive(client, "plans", concurrency, duration, seed=3)
    return health, plans


def missing_plans(db: str, ids: list[int]) -> int:
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM plans")}
    return len(set(ids) - stored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per endpoint before measuring")
    parser.add_argument("--url", help="an already running server (then --db names its database)")
    parser.add_argument("--db", help="database file (default: a fresh temporary one)")
    args = parser.parse_args()

    server = None
    if args.url:
        url, db = args.url, args.db
    else:
        db = args.db or os.path.join(tempfile.mkdtemp(prefix="scaleplan-load-"), "load.db")
        server = ServerProcess(db, workers=args.workers, env={"SCALEPLAN_RATE_LIMIT": "0"}).start()
        url = server.url
    try:
        health, plans = asyncio.run(run(url, args.concurrency, args.duration, args.warmup))
    finally:
        if server is not None:
            server.stop()

    print(f"server {url}, workers {args.workers if server else '?'}, concurrency {args.concurrency}, "
          f"{args.duration:g} s per endpoint, {os.cpu_count()} CPUs shared by server and loader")
    print(f"{'endpoint':<16}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>10}")
    for r, label in ((health, "GET /healthz"), (plans, "POST /v1/plans")):
        print(f"{label:<16}{r.ok:>10}{r.rate():>10.0f}{r.quantile(0.5) * 1e3:>10.1f}"
              f"{r.quantile(0.99) * 1e3:>10.1f}{sum(r.errors.values()):>10}")
    ratio = plans.rate() / health.rate() if health.rate() else 0.0
    print(f"plans/healthz throughput: {ratio:.2f}")
    if db:
        missing = missing_plans(db, plans.plan_ids)
        print(f"plans answered 201: {len(plans.plan_ids)}, missing from the database: {missing}")
    if plans.latencies:
        print(f"plan latency mean {statistics.mean(plans.latencies) * 1e3:.1f} ms")
    errors = sum(health.errors.values()) + sum(plans.errors.values())
    if errors:
        print(f"errors: healthz {health.errors}, plans {plans.errors}")
    sys.exit(1 if errors or (db and missing_plans(db, plans.plan_ids)) else 0)


if __name__ == "__main__":
    main()
