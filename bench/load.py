"""Load test: POST /v1/plans and GET /v1/plans/{id} against GET /healthz on the same server, same run.

    python bench/load.py [--workers 1] [--concurrency 16] [--duration 10] [--url URL --db PATH] [--httpx]
                         [--only health,get,post,varied]

Starts ``python -m api`` on a free port with a fresh database (unless --url is given) and drives, one after
the other, ``GET /healthz``, ``GET /v1/plans/5``, ``POST /v1/plans {"compute_flops": 1e21}`` and POSTs with a
different budget each time ("POST varied": nothing solved twice) for --duration seconds each with --concurrency
connections. It prints requests/s, p50/p99 latency and errors per endpoint,
each endpoint's throughput as a fraction of /healthz's, the CPU that wrk and each server process used (in
cores: 1.00 is one core busy for the whole run, so on a 2-core machine wrk's share is what the server could
not have), and whether every plan that got a 201 is in the database afterwards. Rate limiting is turned off
on the started server (the loader is one client).

The loader is ``wrk`` (one thread, ``wrk -t1 -c<concurrency> -d<duration>s --latency``) when it is on PATH
(Debian/Ubuntu: ``apt-get install wrk``; macOS: ``brew install wrk``): a Python loader on the same cores
measures itself as much as the server. Without wrk, or with --httpx, one httpx.AsyncClient drives POSTs with
a spread of realistic plan requests instead.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
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



# ---------------------------------------------------------------------------------------------- wrk

POST_SCRIPT = """wrk.method = "POST"
wrk.body = '{"compute_flops": 1e21}'
wrk.headers["Content-Type"] = "application/json"
"""
VARIED_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
math.randomseed(7)
request = function()
  return wrk.format(nil, nil, nil, string.format('{"compute_flops": %.6e}', 10 ^ (18 + 7 * math.random())))
end
"""
"""A different budget on every request, so no plan is solved twice (the service remembers solved plans)."""
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else math.nan


@dataclass
class WrkResult:
    name: str
    requests: int
    rate: float
    p50: float
    p99: float
    errors: int
    wrk_cpu: float = math.nan
    """CPU seconds wrk itself used per second of the run (1.0 = one core)."""
    server_cpu: list[float] = field(default_factory=list)
    """The same for each server process (the supervisor or the single worker first, then the workers)."""


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process so far (Linux /proc; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime: fields 14 and 15 of stat


def wrk(url: str, path: str, name: str, concurrency: int, duration: float, script: str | None = None,
        server_pids: tuple[int, ...] = ()) -> WrkResult:
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration:g}s", "--latency", "--timeout", "10s"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script or "")
    command += ["-s", lua.name, url + path]
    try:
        before = [cpu_seconds(pid) for pid in server_pids]
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)  # wrk's own CPU time, from the kernel's accounting
        process.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - started
        server_cpu = [(cpu_seconds(pid) - b) / elapsed for pid, b in zip(server_pids, before, strict=True)]
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, command, out)
    finally:
        os.unlink(lua.name)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _seconds(re.search(r"50%\s+(\S+)", out).group(1))
    p99 = _seconds(re.search(r"99%\s+(\S+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return WrkResult(name, requests, rate, p50, p99, errors, (usage.ru_utime + usage.ru_stime) / elapsed,
                     server_cpu)


def plan_count(db: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM plans").fetchone()[0]


TARGETS = {"health": ("GET /healthz", "/healthz", None), "get": ("GET /v1/plans/5", "/v1/plans/5", None),
           "post": ("POST /v1/plans", "/v1/plans", POST_SCRIPT), "varied": ("POST varied", "/v1/plans", VARIED_SCRIPT)}


def run_wrk(url: str, db: str | None, concurrency: int, duration: float, warmup: float,
            only: list[str] | None = None, server_pids: tuple[int, ...] = ()) -> int:
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(5):  # so /v1/plans/5 exists
            client.post("/v1/plans", json={"compute_flops": 1e21}).raise_for_status()
    targets = [TARGETS[key] for key in (only or TARGETS)]
    if targets[0] is not TARGETS["health"]:
        targets.insert(0, TARGETS["health"])  # the ratios are to /healthz of the same run
    for _, path, script in targets:
        wrk(url, path, "warmup", concurrency, warmup, script)
    results = []
    for name, path, script in targets:
        before = plan_count(db) if db and script else 0
        result = wrk(url, path, name, concurrency, duration, script, server_pids)
        if db and script:
            # every completed 201 is a stored plan: at least as many new rows as answered requests
            stored = plan_count(db) - before
            if stored < result.requests - result.errors:
                print(f"  {name}: {result.requests - result.errors} answered, only {stored} stored", file=sys.stderr)
                result.errors += 1
        results.append(result)
    health = results[0].rate
    print(f"{'endpoint':<18}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}"
          f"{'/healthz':>10}  CPU (cores): wrk, server processes")
    for r in results:
        cpu = " ".join(f"{c:.2f}" for c in r.server_cpu)
        print(f"{r.name:<18}{r.requests:>10}{r.rate:>10.0f}{r.p50 * 1e3:>10.2f}{r.p99 * 1e3:>10.2f}{r.errors:>8}"
              f"{r.rate / health if health else 0:>10.2f}  {r.wrk_cpu:.2f}, {cpu}")
    return sum(r.errors for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per endpoint before measuring")
    parser.add_argument("--url", help="an already running server (then --db names its database)")
    parser.add_argument("--db", help="database file (default: a fresh temporary one)")
    parser.add_argument("--httpx", action="store_true", help="drive with httpx even when wrk is installed")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds to let every worker start before measuring (with --workers above 1)")
    parser.add_argument("--only", type=lambda text: text.split(","), default=None,
                        help=f"endpoints to drive with wrk, comma-separated from {','.join(TARGETS)} (default all; "
                             "health always runs first)")
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None and not args.httpx
    if not use_wrk and not args.httpx:
        print("wrk is not installed (apt-get install wrk); measuring with httpx", file=sys.stderr)

    server = None
    if args.url:
        url, db = args.url, args.db
    else:
        db = args.db or os.path.join(tempfile.mkdtemp(prefix="scaleplan-load-"), "load.db")
        server = ServerProcess(db, workers=args.workers, env={"SCALEPLAN_RATE_LIMIT": "0"}).start()
        url = server.url
        if args.workers > 1:
            # /readyz answers once the first worker serves; connections made before the others listen all go
            # to it, so give every worker time to start (seconds under load) before measuring
            time.sleep(args.settle)
    load = os.getloadavg()[0]
    try:
        if use_wrk:
            print(f"server {url}, workers {args.workers if server else '?'}, wrk -t1 -c{args.concurrency} "
                  f"-d{args.duration:g}s per endpoint, {os.cpu_count()} CPUs shared by server and loader, "
                  f"load average {load:.2f} before")
            pids = (server.process.pid, *server.worker_pids()) if server and server.process else ()
            errors = run_wrk(url, db, args.concurrency, args.duration, args.warmup, args.only, pids)
            print(f"load average {os.getloadavg()[0]:.2f} after")
            sys.exit(1 if errors else 0)
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
