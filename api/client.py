"""Python client of the scaleplan service: ``Client`` and ``AsyncClient`` share one surface (like httpx).

Every method returns the struct the owning package defines (``planner.Plan``, ``fits.fit.Fit``, ...), and
every failure is a ``ScaleplanError``: ``TransportError`` when no answer came, a ``ProblemError`` subclass
carrying the server's problem details (status, title, detail, field) otherwise.

Retries: connection failures and 503 answers are retried with exponential backoff and jitter, but only
for requests that are safe to repeat: reads, predictions, activation, and plan requests (which carry an
``Idempotency-Key``, generated when not given, so a retried POST returns the first plan). A request that
may have reached the server and is not safe to repeat (creating a fit, ingesting a run) is retried only
when the connection was never made.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

import msgspec

from api.errors import ProblemError, ScaleplanError, TransportError, problem_class
from api.schemas import AcceleratorInfo, FitCreated, FitRequest, PlanPage, Problem, Readiness, RunIngest
from fits.fit import Fit
from planner import Frontier, Plan, PlanRequest, Prediction, PredictRequest
from planner.plan import HardwareComparison
from verifier.check.records import Check
from verifier.runs import Run, RunPoint

if TYPE_CHECKING:
    import httpx

# httpx (with asyncio, ssl and, through its command line, click and rich) is imported when the first client
# is made, not when this module is: ``from api import Client`` stays cheap for programs that only need types.

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5.0
"""``DEFAULT_TIMEOUT`` (an ``httpx.Timeout``): 5 s to connect, 30 s for each of write, read and pool; fitting with
a bootstrap may need more."""
DEFAULT_RETRIES = 3
FIT_READ_TIMEOUT = 600.0
"""Seconds create_fit waits for its answer at least."""

_encoder = msgspec.json.Encoder()


def __getattr__(name: str) -> Any:
    if name == "DEFAULT_TIMEOUT":
        return _default_timeout()
    raise AttributeError(f"module 'api.client' has no attribute {name!r}")


def _default_timeout() -> httpx.Timeout:
    import httpx

    return httpx.Timeout(DEFAULT_TIMEOUT_SECONDS, connect=DEFAULT_CONNECT_TIMEOUT_SECONDS)


def _not_sent(error: Exception) -> bool:
    """The request certainly never reached the server, so repeating it cannot duplicate anything."""
    import httpx

    return isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


class _Call(NamedTuple):
    method: str
    path: str
    params: dict[str, Any] | None = None
    body: bytes | None = None
    headers: dict[str, str] | None = None
    returns: Any = None
    """Type to decode the answer into; ``bytes`` returns the raw body."""
    repeatable: bool = True
    """Safe to send twice (no duplicate can result)."""
    timeout: httpx.Timeout | None = None
    """Overrides the client's timeout for this call."""


def _body(payload: Any) -> bytes:
    return _encoder.encode(payload)


def _params(**values: Any) -> dict[str, Any]:
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in values.items() if v is not None}


def _problem(response: httpx.Response) -> ProblemError:
    status = response.status_code
    headers = {k.lower(): v for k, v in response.headers.items()}
    try:
        problem = msgspec.json.decode(response.content, type=Problem)
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = response.text.strip()[:500]
        problem = Problem(type="about:blank", title=response.reason_phrase or str(status), status=status, detail=text)
    errors = [msgspec.to_builtins(e) for e in problem.errors]
    return problem_class(status)(
        status, problem.title, problem.detail, field=problem.field, type=problem.type, errors=errors, headers=headers
    )


class _Base:
    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.25,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("SCALEPLAN_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("SCALEPLAN_API_KEY")
        import httpx

        if timeout is None:
            timeout = _default_timeout()
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retries = retries
        self.backoff = backoff
        self._headers = {"Accept": "application/json", "User-Agent": "scaleplan-client", **(headers or {})}
        if self.api_key:
            self._headers["Authorization"] = f"Bearer {self.api_key}"

    # Each builder describes one request; Client and AsyncClient only differ in how they send it.

    def _plan(self, request: Any, idempotency_key: str | None, fields: dict[str, Any]) -> _Call:
        payload = request if request is not None else fields
        if request is not None and fields:
            raise TypeError("pass either a request or keyword fields, not both")
        key = idempotency_key or str(uuid.uuid4())
        return _Call("POST", "/v1/plans", body=_body(payload), headers={"Idempotency-Key": key}, returns=Plan)

    def _get_plan(self, plan_id: int) -> _Call:
        return _Call("GET", f"/v1/plans/{int(plan_id)}", returns=Plan)

    def _list_plans(self, fit_id: int | None, since: str | dt.datetime | None, cursor: int | None,
                    limit: int | None) -> _Call:
        if isinstance(since, dt.datetime):
            since = (since if since.tzinfo else since.replace(tzinfo=dt.UTC)).isoformat()
        return _Call("GET", "/v1/plans", params=_params(fit_id=fit_id, since=since, cursor=cursor, limit=limit),
                     returns=PlanPage)

    def _predict(self, request: Any, fields: dict[str, Any]) -> _Call:
        if request is not None and fields:
            raise TypeError("pass either a request or keyword fields, not both")
        return _Call("POST", "/v1/predict", body=_body(request if request is not None else fields),
                     returns=Prediction)

    def _frontier(self, start: float | None, stop: float | None, per_decade: int | None, fit: str | int | None,
                  law: str | None, scope: str | None, png: bool) -> _Call:
        params = _params(start=start, stop=stop, per_decade=per_decade, fit=fit, law=law, scope=scope)
        path = "/v1/frontier.png" if png else "/v1/frontier"
        return _Call("GET", path, params=params, returns=bytes if png else Frontier)

    def _hardware(self) -> _Call:
        return _Call("GET", "/v1/hardware", returns=list[AcceleratorInfo])

    def _compare_hardware(self, request: Any, gpus: list[str] | None) -> _Call:
        payload = {"request": msgspec.to_builtins(request) if isinstance(request, msgspec.Struct) else request}
        if gpus is not None:
            payload["gpus"] = list(gpus)
        return _Call("POST", "/v1/hardware/compare", body=_body(payload), returns=HardwareComparison)

    def _fits(self, law: str | None, scope: str | None, active: bool | None) -> _Call:
        return _Call("GET", "/v1/fits", params=_params(law=law, scope=scope, active=active), returns=list[Fit])

    def _get_fit(self, ref: int | str) -> _Call:
        return _Call("GET", f"/v1/fits/{quote(str(ref), safe='')}", returns=Fit)

    def _create_fit(self, request: Any, fields: dict[str, Any]) -> _Call:
        if request is not None and fields:
            raise TypeError("pass either a request or keyword fields, not both")
        import httpx

        # Fitting takes seconds, each bootstrap resample about as long again: wait longer for the answer.
        timeout = httpx.Timeout(self.timeout.connect, read=max(self.timeout.read or 0, FIT_READ_TIMEOUT),
                                write=self.timeout.write, pool=self.timeout.pool)
        return _Call("POST", "/v1/fits", body=_body(request if request is not None else fields), returns=FitCreated,
                     repeatable=False, timeout=timeout)

    def _activate_fit(self, fit_id: int) -> _Call:
        return _Call("POST", f"/v1/fits/{int(fit_id)}/activate", returns=Fit)

    def _ingest_run(self, request: Any, fields: dict[str, Any]) -> _Call:
        if request is not None and fields:
            raise TypeError("pass either a request or keyword fields, not both")
        return _Call("POST", "/v1/runs", body=_body(request if request is not None else fields), returns=Run,
                     repeatable=False)

    def _get_run(self, run_id: int) -> _Call:
        return _Call("GET", f"/v1/runs/{int(run_id)}", returns=Run)

    def _run_points(self, run_id: int) -> _Call:
        return _Call("GET", f"/v1/runs/{int(run_id)}/points", returns=list[RunPoint])

    def _checks(self, plan_id: int) -> _Call:
        return _Call("GET", f"/v1/plans/{int(plan_id)}/checks", returns=list[Check])

    def _ready(self) -> _Call:
        return _Call("GET", "/readyz", returns=Readiness)

    # Shared between the two senders.

    def _request_args(self, call: _Call) -> dict[str, Any]:
        headers = dict(call.headers or {})
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        args = {"method": call.method, "url": call.path, "params": call.params, "content": call.body,
                "headers": headers}
        if call.timeout is not None:
            args["timeout"] = call.timeout
        return args

    def _retry_delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        if response is not None:
            try:
                return min(30.0, float(response.headers.get("retry-after", "")))
            except ValueError:
                pass
        return min(8.0, self.backoff * 2**attempt) * (0.5 + random.random() / 2)

    def _should_retry(self, call: _Call, attempt: int, error: Exception | None, response: httpx.Response | None
                      ) -> bool:
        if attempt >= self.retries:
            return False
        if error is not None:
            return call.repeatable or _not_sent(error)
        return response is not None and response.status_code == 503 and call.repeatable

    def _result(self, call: _Call, response: httpx.Response) -> Any:
        if response.status_code == 503 and call.returns is Readiness:
            return msgspec.json.decode(response.content, type=Readiness)
        if response.status_code >= 400:
            raise _problem(response)
        if call.returns is bytes:
            return response.content
        try:
            return msgspec.json.decode(response.content, type=call.returns)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ScaleplanError(f"unexpected answer to {call.method} {call.path}: {exc}") from exc


class Client(_Base):
    """Blocking client. Use as a context manager, or call ``close()``.

    >>> with Client("http://127.0.0.1:8000") as client:            # doctest: +SKIP
    ...     plan = client.plan(budget={"flops": 1e21})
    """

    def __init__(self, base_url: str | None = None, *, transport: httpx.BaseTransport | None = None,
                 **options: Any) -> None:
        import httpx

        super().__init__(base_url, **options)
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout, headers=self._headers,
                                  transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call) -> Any:
        import httpx

        attempt = 0
        while True:
            try:
                response = self._http.request(**self._request_args(call))
            except httpx.TransportError as exc:
                if self._should_retry(call, attempt, exc, None):
                    time.sleep(self._retry_delay(attempt))
                    attempt += 1
                    continue
                raise TransportError(f"{call.method} {self.base_url}{call.path}: {exc!r}") from exc
            if self._should_retry(call, attempt, None, response):
                time.sleep(self._retry_delay(attempt, response))
                attempt += 1
                continue
            return self._result(call, response)

    def plan(self, request: PlanRequest | Mapping[str, Any] | None = None, /, *,
             idempotency_key: str | None = None, **fields: Any) -> Plan:
        """Ask for a plan: a ``planner.PlanRequest`` (or the same as a dict), or its fields as keywords."""
        return self._send(self._plan(request, idempotency_key, fields))

    def get_plan(self, plan_id: int) -> Plan:
        return self._send(self._get_plan(plan_id))

    def list_plans(self, *, fit_id: int | None = None, since: str | dt.datetime | None = None,
                   cursor: int | None = None, limit: int | None = None) -> PlanPage:
        """One page of plans, newest first; pass the page's ``next_cursor`` as ``cursor`` for the next one."""
        return self._send(self._list_plans(fit_id, since, cursor, limit))

    def predict(self, request: PredictRequest | Mapping[str, Any] | None = None, /,
                **fields: Any) -> Prediction:
        """Loss for (N, D) or (N, S, B) with its interval."""
        return self._send(self._predict(request, fields))

    def frontier(self, *, start: float | None = None, stop: float | None = None, per_decade: int | None = None,
                 fit: str | int | None = None, law: str | None = None, scope: str | None = None) -> Frontier:
        """The compute-optimal plan at each budget from ``start`` to ``stop`` FLOPs, under a fit."""
        return self._send(self._frontier(start, stop, per_decade, fit, law, scope, png=False))

    def frontier_png(self, *, start: float | None = None, stop: float | None = None, per_decade: int | None = None,
                     fit: str | int | None = None, law: str | None = None, scope: str | None = None) -> bytes:
        """The frontier plot as PNG bytes."""
        return self._send(self._frontier(start, stop, per_decade, fit, law, scope, png=True))

    def hardware(self) -> list[AcceleratorInfo]:
        """The accelerator catalogue (dense peaks, memory, interconnect, default MFU and price, with sources)."""
        return self._send(self._hardware())

    def compare_hardware(self, request: PlanRequest | Mapping[str, Any], gpus: list[str] | None = None
                         ) -> HardwareComparison:
        """One budget planned on each accelerator (default: the catalogue): loss, time, cost and fit per GPU."""
        return self._send(self._compare_hardware(request, gpus))

    def fits(self, *, law: str | None = None, scope: str | None = None, active: bool | None = None) -> list[Fit]:
        return self._send(self._fits(law, scope, active))

    def get_fit(self, ref: int | str) -> Fit:
        """A fit by id or stable name (e.g. ``"besiroglu2024"``)."""
        return self._send(self._get_fit(ref))

    def create_fit(self, request: FitRequest | Mapping[str, Any] | None = None, /, **fields: Any) -> FitCreated:
        """Fit a law to posted points (same engine as ``python -m fits fit``) and store it; needs an API key."""
        return self._send(self._create_fit(request, fields))

    def activate_fit(self, fit_id: int) -> Fit:
        return self._send(self._activate_fit(fit_id))

    def ingest_run(self, request: RunIngest | Mapping[str, Any] | None = None, /, **fields: Any) -> Run:
        """Store a training run measured elsewhere so the refit can use it; needs an API key."""
        return self._send(self._ingest_run(request, fields))

    def get_run(self, run_id: int) -> Run:
        return self._send(self._get_run(run_id))

    def run_points(self, run_id: int) -> list[RunPoint]:
        """The curve of a run."""
        return self._send(self._run_points(run_id))

    def checks(self, plan_id: int) -> list[Check]:
        """The verifier's checks of a plan."""
        return self._send(self._checks(plan_id))

    def ready(self) -> Readiness:
        """The service's readiness (database reachable, fits seeded); never raises for a 503."""
        return self._send(self._ready())


class AsyncClient(_Base):
    """The same surface as ``Client``, with every method a coroutine. Use ``async with`` or ``aclose()``."""

    def __init__(self, base_url: str | None = None, *, transport: httpx.AsyncBaseTransport | None = None,
                 **options: Any) -> None:
        import httpx

        super().__init__(base_url, **options)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout, headers=self._headers,
                                       transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call) -> Any:
        import asyncio

        import httpx

        attempt = 0
        while True:
            try:
                response = await self._http.request(**self._request_args(call))
            except httpx.TransportError as exc:
                if self._should_retry(call, attempt, exc, None):
                    await asyncio.sleep(self._retry_delay(attempt))
                    attempt += 1
                    continue
                raise TransportError(f"{call.method} {self.base_url}{call.path}: {exc!r}") from exc
            if self._should_retry(call, attempt, None, response):
                await asyncio.sleep(self._retry_delay(attempt, response))
                attempt += 1
                continue
            return self._result(call, response)

    async def plan(self, request: PlanRequest | Mapping[str, Any] | None = None, /, *,
                   idempotency_key: str | None = None, **fields: Any) -> Plan:
        return await self._send(self._plan(request, idempotency_key, fields))

    async def get_plan(self, plan_id: int) -> Plan:
        return await self._send(self._get_plan(plan_id))

    async def list_plans(self, *, fit_id: int | None = None, since: str | dt.datetime | None = None,
                         cursor: int | None = None, limit: int | None = None) -> PlanPage:
        return await self._send(self._list_plans(fit_id, since, cursor, limit))

    async def predict(self, request: PredictRequest | Mapping[str, Any] | None = None, /,
                      **fields: Any) -> Prediction:
        return await self._send(self._predict(request, fields))

    async def hardware(self) -> list[AcceleratorInfo]:
        return await self._send(self._hardware())

    async def compare_hardware(self, request: PlanRequest | Mapping[str, Any], gpus: list[str] | None = None
                               ) -> HardwareComparison:
        return await self._send(self._compare_hardware(request, gpus))

    async def frontier(self, *, start: float | None = None, stop: float | None = None,
                       per_decade: int | None = None, fit: str | int | None = None, law: str | None = None,
                       scope: str | None = None) -> Frontier:
        return await self._send(self._frontier(start, stop, per_decade, fit, law, scope, png=False))

    async def frontier_png(self, *, start: float | None = None, stop: float | None = None,
                           per_decade: int | None = None, fit: str | int | None = None, law: str | None = None,
                           scope: str | None = None) -> bytes:
        return await self._send(self._frontier(start, stop, per_decade, fit, law, scope, png=True))

    async def fits(self, *, law: str | None = None, scope: str | None = None, active: bool | None = None
                   ) -> list[Fit]:
        return await self._send(self._fits(law, scope, active))

    async def get_fit(self, ref: int | str) -> Fit:
        return await self._send(self._get_fit(ref))

    async def create_fit(self, request: FitRequest | Mapping[str, Any] | None = None, /,
                         **fields: Any) -> FitCreated:
        return await self._send(self._create_fit(request, fields))

    async def activate_fit(self, fit_id: int) -> Fit:
        return await self._send(self._activate_fit(fit_id))

    async def ingest_run(self, request: RunIngest | Mapping[str, Any] | None = None, /, **fields: Any) -> Run:
        return await self._send(self._ingest_run(request, fields))

    async def get_run(self, run_id: int) -> Run:
        return await self._send(self._get_run(run_id))

    async def run_points(self, run_id: int) -> list[RunPoint]:
        return await self._send(self._run_points(run_id))

    async def checks(self, plan_id: int) -> list[Check]:
        return await self._send(self._checks(plan_id))

    async def ready(self) -> Readiness:
        return await self._send(self._ready())
