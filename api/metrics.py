"""Prometheus text exposition (format 0.0.4) of request counts, latencies, plans and active fits.

Request counters and latency histograms are kept per worker process: with ``--workers N`` each scrape
sees the worker that answered it. The plan and fit gauges are read from the database at scrape time,
so they are the same whichever worker answers.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable

from litestar.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, object]]) -> str:
    inner = ",".join(f'{name}="{_escape(str(value))}"' for name, value in pairs)
    return "{" + inner + "}" if inner else ""


class Registry:
    """Counters and histograms of this process's HTTP traffic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], list[float]] = {}
        """(method, route) -> [count per bucket ..., +Inf count, sum]."""
        self.plans_created = 0
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            row = self.latency.get((method, route))
            if row is None:
                row = self.latency[(method, route)] = [0.0] * (len(BUCKETS) + 2)
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    row[i] += 1
            row[len(BUCKETS)] += 1
            row[-1] += seconds

    def plan_created(self) -> None:
        with self._lock:
            self.plans_created += 1

    def render(self, *, plans_stored: int | None, active_fits: list[tuple[str, str, str, int, int]]) -> str:
        """The exposition text; ``active_fits`` rows are (law, scope, name, id, version)."""
        out: list[str] = []
        with self._lock:
            out += [
                "# HELP scaleplan_http_requests_total HTTP requests answered by this worker process.",
                "# TYPE scaleplan_http_requests_total counter",
            ]
            for (method, route, status), count in sorted(self.requests.items()):
                labels = _labels([("method", method), ("route", route), ("status", status)])
                out.append(f"scaleplan_http_requests_total{labels} {count}")
            out += [
                "# HELP scaleplan_http_request_duration_seconds Time to answer a request, by this worker process.",
                "# TYPE scaleplan_http_request_duration_seconds histogram",
            ]
            for (method, route), row in sorted(self.latency.items()):
                base = [("method", method), ("route", route)]
                for i, bound in enumerate(BUCKETS):
                    out.append(
                        f"scaleplan_http_request_duration_seconds_bucket{_labels([*base, ('le', repr(bound))])}"
                        f" {int(row[i])}"
                    )
                count = int(row[len(BUCKETS)])
                out.append(f"scaleplan_http_request_duration_seconds_bucket{_labels([*base, ('le', '+Inf')])} {count}")
                out.append(f"scaleplan_http_request_duration_seconds_sum{_labels(base)} {row[-1]:.6f}")
                out.append(f"scaleplan_http_request_duration_seconds_count{_labels(base)} {count}")
            out += [
                "# HELP scaleplan_plans_served_total Plans created (201, not replays) by this worker process.",
                "# TYPE scaleplan_plans_served_total counter",
                f"scaleplan_plans_served_total {self.plans_created}",
                "# HELP scaleplan_process_start_time_seconds Start time of this worker process.",
                "# TYPE scaleplan_process_start_time_seconds gauge",
                f"scaleplan_process_start_time_seconds {self.started:.3f}",
            ]
        if plans_stored is not None:
            out += [
                "# HELP scaleplan_plans_stored Plans in the database (all workers).",
                "# TYPE scaleplan_plans_stored gauge",
                f"scaleplan_plans_stored {plans_stored}",
            ]
        out += [
            "# HELP scaleplan_active_fit_version Version of the active fit per (law, scope).",
            "# TYPE scaleplan_active_fit_version gauge",
        ]
        for law, scope, name, fit_id, version in active_fits:
            labels = _labels([("law", law), ("scope", scope), ("name", name or ""), ("fit_id", fit_id)])
            out.append(f"scaleplan_active_fit_version{labels} {version}")
        return "\n".join(out) + "\n"


class MetricsASGI:
    """Wraps the app's outermost handler so every answer is counted, including routing 404s and errors."""

    def __init__(self, app: ASGIApp, registry: Registry) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = scope.get("path_template") or "unmatched"
            self.registry.observe(scope["method"], route, status, time.perf_counter() - start)
