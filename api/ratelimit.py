"""A per-client token bucket: each client may burst ``burst`` requests, then ``rate`` per second.

Clients are told apart by their address as the ASGI server reports it (run uvicorn with
``--proxy-headers``/``--forwarded-allow-ips`` behind a trusted proxy). The buckets live in the worker
process, so with N workers a client gets up to N times the rate; the defaults are generous on purpose.
Health probes and metrics are exempt.
"""

from __future__ import annotations

import math
import threading
import time

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Scopes, Send

from api.problems import ApiProblem

DEFAULT_RATE = 100.0
"""Requests per second a client may sustain."""
DEFAULT_BURST = 200
"""Requests a client may send back to back before the rate applies."""

_MAX_CLIENTS = 10_000


class TokenBucket:
    """Token buckets keyed by client; ``take`` returns 0 when allowed, else seconds until a token is free."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > _MAX_CLIENTS:
                self._forget_full(now)
        return wait

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled completely holds no information; dropping it changes nothing.
        full_after = self.burst / self.rate
        for key in [k for k, (_, last) in self._buckets.items() if now - last >= full_after]:
            del self._buckets[key]


class RateLimitMiddleware(ASGIMiddleware):
    scopes: Scopes = (ScopeType.HTTP,)
    exclude_path_pattern = ("^/healthz$", "^/readyz$", "^/metrics$")

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        client = scope.get("client")
        key = client[0] if client else "unknown"
        wait = self.bucket.take(key)
        if wait > 0:
            raise ApiProblem(
                429,
                f"too many requests from {key}: the limit is {self.bucket.rate:g} per second with bursts of "
                f"{self.bucket.burst:g}; retry after {wait:.2f} s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        await next_app(scope, receive, send)
