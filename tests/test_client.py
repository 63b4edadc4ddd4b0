"""The client library against a real server process: every method, sync and async, and its errors."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest

import api
from api import AsyncClient, Client
from api.schemas import FitCreated, FitPoint, FitRequest, PlanPage, RunIngest
from api.testing import ServerProcess
from fits.fit import Fit
from planner import Frontier, Plan, PlanRequest, Prediction, PredictRequest
from verifier.check.records import Check
from verifier.runs import Run, RunPoint

KEY = "client-test-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("client-server")
    env = {"SCALEPLAN_API_KEYS": KEY, "SCALEPLAN_RATE_LIMIT": "0", "SCALEPLAN_MAX_BODY_BYTES": "200000"}
    with ServerProcess(directory / "scaleplan.db", env=env) as running:
        yield running


Call = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def call(request, server) -> Iterator[Call]:
    """``call("method", *args)`` runs the same client method on Client or AsyncClient."""
    if request.param == "sync":
        with Client(server.url, api_key=KEY) as client:
            yield lambda name, *args, **kwargs: getattr(client, name)(*args, **kwargs)
    else:
        loop = asyncio.new_event_loop()
        client = AsyncClient(server.url, api_key=KEY)
        yield lambda name, *args, **kwargs: loop.run_until_complete(getattr(client, name)(*args, **kwargs))
        loop.run_until_complete(client.aclose())
        loop.close()


def test_the_package_exports_the_clients_and_their_errors():
    assert issubclass(api.NotFound, api.ProblemError) and issubclass(api.ProblemError, api.ScaleplanError)
    assert issubclass(api.TransportError, api.ScaleplanError)
    for name in ("Client", "AsyncClient", "Unauthorized", "Forbidden", "ValidationFailed", "RateLimited",
                 "Conflict", "BadRequest", "PayloadTooLarge", "ServerError"):
        assert name in api.__all__


def test_plans(call):
    plan = call("plan", compute_flops=1e21)
    assert isinstance(plan, Plan) and plan.id is not None
    assert plan.fit.name == "besiroglu2024" and 1e9 < plan.params < 1e10
    assert call("get_plan", plan.id) == plan
    # A PlanRequest struct and a plain dict are the same question.
    from_struct = call("plan", PlanRequest(pf_days=10.0, max_params=1e9))
    from_dict = call("plan", {"pf_days": 10.0, "max_params": 1e9})
    assert from_struct.params == from_dict.params <= 1e9
    assert from_struct.id != from_dict.id


def test_idempotency_key_returns_the_same_plan(call):
    key = f"key-{os.urandom(6).hex()}"
    first = call("plan", compute_flops=3e20, idempotency_key=key)
    again = call("plan", compute_flops=3e20, idempotency_key=key)
    assert again == first
    with pytest.raises(api.Conflict) as exc:
        call("plan", compute_flops=4e20, idempotency_key=key)
    assert exc.value.status == 409 and exc.value.field == "Idempotency-Key"


def test_list_plans_pages_newest_first(call):
    made = [call("plan", compute_flops=c).id for c in (1e19, 2e19, 3e19)]
    page = call("list_plans", limit=2)
    assert isinstance(page, PlanPage)
    assert [p.id for p in page.items] == sorted((p.id for p in page.items), reverse=True)
    assert page.items[0].id >= made[-1] and page.next_cursor == page.items[-1].id
    older = call("list_plans", limit=2, cursor=page.next_cursor)
    assert all(p.id < page.next_cursor for p in older.items)
    fit_id = page.items[0].fit.id
    assert all(p.fit.id == fit_id for p in call("list_plans", fit_id=fit_id, limit=200).items)
    assert call("list_plans", since="2999-01-01T00:00:00Z").items == []


def test_predict_and_frontier(call):
    prediction = call("predict", params=1e9, tokens=2e10)
    assert isinstance(prediction, Prediction)
    assert prediction.predicted_loss.low <= prediction.predicted_loss.mean <= prediction.predicted_loss.high
    kaplan = call("predict", PredictRequest(params=1e8, steps=5e4, batch_tokens=5e5, fit="kaplan2020"))
    assert kaplan.fit.name == "kaplan2020" and kaplan.steps == 50000
    table = call("frontier", start=1e19, stop=1e21, per_decade=1)
    assert isinstance(table, Frontier) and len(table.rows) == 3
    assert [r.params for r in table.rows] == sorted(r.params for r in table.rows)
    png = call("frontier_png", start=1e19, stop=1e21)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_fits_and_activation(call):
    fits = call("fits", law="chinchilla")
    assert all(isinstance(f, Fit) for f in fits) and {f.name for f in fits} == {"hoffmann2022", "besiroglu2024"}
    hoffmann = call("get_fit", "hoffmann2022")
    besiroglu = call("get_fit", "besiroglu2024")
    assert call("get_fit", hoffmann.id) == hoffmann
    try:
        assert call("activate_fit", hoffmann.id).active is True
        assert [f.name for f in call("fits", law="chinchilla", active=True)] == ["hoffmann2022"]
    finally:
        call("activate_fit", besiroglu.id)
    assert call("get_fit", "besiroglu2024").active is True


CHINCHILLA_POINTS = [
    {"N": n, "D": d, "loss": round(1.8172 + 482.01 / n**0.3478 + 2085.43 / d**0.3658, 4)}
    for n in (1e7, 3e7, 1e8) for d in (2e8, 1e9, 5e9)
]


def test_create_fit_from_points(call):
    scope = f"client-{os.urandom(4).hex()}"
    created = call("create_fit", FitRequest(law="chinchilla", scope=scope,
                                            points=[FitPoint(**p) for p in CHINCHILLA_POINTS]))
    assert isinstance(created, FitCreated) and created.fit.id is not None
    assert created.fit.scope == scope and created.fit.version == 1 and created.fit.active is False
    assert created.result.converged and created.result.n_points == 9
    # Noise-free points from Epoch's coefficients give those coefficients back.
    assert created.fit.coefficients["alpha"] == pytest.approx(0.3478, rel=0.02)
    assert call("get_fit", created.fit.id) == created.fit
    with pytest.raises(api.ValidationFailed) as exc:
        call("create_fit", law="chinchilla", scope=scope, points=CHINCHILLA_POINTS[:2])
    assert exc.value.field == "points"


def test_ingest_and_read_runs(call):
    points = [RunPoint(step=s, tokens=s * 65536, val_loss=4.0 - s / 1000) for s in (100, 200, 300)]
    run = call("ingest_run", RunIngest(scope="client-runs", n_params=3_000_000, batch_tokens=65536, seq_len=512,
                                       points=points))
    assert isinstance(run, Run) and run.source == "ingested" and run.status == "complete"
    assert run.tokens == 300 * 65536 and run.final_val_loss == pytest.approx(3.7) and run.best_val_step == 300
    assert call("get_run", run.id) == run
    assert call("run_points", run.id) == points
    with pytest.raises(api.NotFound):
        call("get_run", 10**12)
    with pytest.raises(api.ValidationFailed) as exc:
        call("ingest_run", scope="s", seq_len=512, batch_tokens=1, points=[{"step": 1, "tokens": 1, "val_loss": 3}])
    assert exc.value.field == "n_params"


def test_checks_of_a_plan(call, server):
    from fits.store import open_db
    from verifier.check.records import CheckSummary, create_check

    plan = call("plan", compute_flops=5e19)
    assert call("checks", plan.id) == []
    db = open_db(server.db)
    try:  # the verifier records checks in the same database; the service serves them as stored
        stored = create_check(db, plan.id, "corpus:test", CheckSummary(device="cpu"))
    finally:
        db.conn.close()
    checks = call("checks", plan.id)
    assert checks == [stored] and isinstance(checks[0], Check) and checks[0].summary.device == "cpu"
    with pytest.raises(api.NotFound):
        call("checks", 10**12)


def test_errors_carry_the_problem_details(call):
    with pytest.raises(api.NotFound) as missing:
        call("get_plan", 10**12)
    assert missing.value.status == 404 and "no plan" in missing.value.detail
    with pytest.raises(api.ValidationFailed) as invalid:
        call("plan", compute_flops=-5)
    assert invalid.value.field == "compute_flops" and invalid.value.status == 422
    with pytest.raises(api.ValidationFailed) as two_budgets:
        call("plan", compute_flops=1e20, pf_days=3)
    assert two_budgets.value.field == "pf_days"
    with pytest.raises(api.NotFound):
        call("get_fit", "no-such-fit")


def test_write_errors_for_missing_or_wrong_keys(server):
    with Client(server.url, api_key="") as anonymous, pytest.raises(api.Unauthorized) as exc:
        anonymous.activate_fit(1)
    assert exc.value.field == "Authorization"
    with Client(server.url, api_key="wrong") as wrong, pytest.raises(api.Forbidden):
        wrong.activate_fit(1)


def test_oversized_body_is_payload_too_large(server):
    with Client(server.url, api_key=KEY) as client, pytest.raises(api.PayloadTooLarge) as exc:
        client.plan({"compute_flops": 1e21, "fit": "x" * 300_000})
    assert exc.value.status == 413


def test_unreachable_server_is_a_transport_error():
    with Client("http://127.0.0.1:9", retries=1, backoff=0.01, timeout=2) as client, \
            pytest.raises(api.TransportError):
        client.get_plan(1)


# ------------------------------------------------------------------------------- retries (scripted transport)


def _scripted(responses: list[Any]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that answers from a script (an exception to raise, or a status and body)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = responses.pop(0)
        if isinstance(step, Exception):
            raise step
        status, body = step
        return httpx.Response(status, content=body, headers={"content-type": "application/json"})

    return httpx.MockTransport(handler), seen


FIT_JSON = msgspec.json.encode(Fit(law="chinchilla", scope="s", coefficients={}, provenance={"source": "fitted"}))


def test_reads_retry_on_503_and_connection_errors():
    transport, seen = _scripted([(503, b"{}"), httpx.ConnectError("refused"), (200, FIT_JSON)])
    with Client("http://scaleplan.test", transport=transport, backoff=0.001) as client:
        assert client.get_fit(1).law == "chinchilla"
    assert len(seen) == 3


def test_plan_retries_reuse_one_idempotency_key():
    transport, seen = _scripted([httpx.ReadError("reset"), (503, b"{}"), (404, b"{}")])
    with Client("http://scaleplan.test", transport=transport, backoff=0.001) as client, pytest.raises(api.NotFound):
        client.plan(compute_flops=1e21)
    keys = {request.headers["idempotency-key"] for request in seen}
    assert len(seen) == 3 and len(keys) == 1


def test_non_repeatable_writes_retry_only_when_nothing_was_sent():
    transport, seen = _scripted([httpx.ConnectError("refused"), httpx.ReadError("reset")])
    with Client("http://scaleplan.test", transport=transport, backoff=0.001) as client, \
            pytest.raises(api.TransportError):
        client.ingest_run(scope="s", seq_len=1, n_params=1, batch_tokens=1, points=[])
    assert len(seen) == 2  # retried after the refused connection, not after the lost answer


def test_async_client_retries_the_same_way():
    transport, seen = _scripted([(503, b"{}"), (200, FIT_JSON)])

    async def go() -> Fit:
        async with AsyncClient("http://scaleplan.test", transport=httpx.MockTransport(transport.handler),
                               backoff=0.001) as client:
            return await client.get_fit("x")

    assert asyncio.run(go()).scope == "s"
    assert len(seen) == 2


def test_rate_limited_exposes_retry_after():
    body = msgspec.json.encode({"type": "urn:scaleplan:problem:rate-limited", "title": "Too Many Requests",
                                "status": 429, "detail": "slow down"})

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, content=body, headers={"retry-after": "3",
                                                          "content-type": "application/problem+json"})

    with Client("http://scaleplan.test", transport=httpx.MockTransport(handler)) as client, \
            pytest.raises(api.RateLimited) as exc:
        client.fits()
    assert exc.value.retry_after == 3.0 and exc.value.detail == "slow down"


def test_the_client_imports_without_the_numerical_or_storage_stack():
    """``from api import Client`` loads msgspec and the record structs only (issue: ≤ 0.15 s, no numpy)."""
    import subprocess
    import sys

    heavy = ("numpy", "scipy", "sqlite_utils", "torch", "pandas", "litestar", "httpx")
    code = f"import sys; from api import Client; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_moe_plans_take_the_same_field_names(call):
    plan = call("plan", compute_flops=1e21, fit="krajewski2024", moe_experts=64, moe_top_k=2)
    assert plan.moe is not None and (plan.moe.experts, plan.moe.top_k, plan.moe.granularity) == (64, 2, 2.0)
    assert plan.moe.params_total > 10 * plan.moe.params_active
    with pytest.raises(api.Conflict) as exc:  # each value valid, together a contradiction
        call("plan", compute_flops=1e21, fit="krajewski2024", moe_experts=8, moe_top_k=9)
    assert exc.value.status == 409 and exc.value.field == "moe_top_k"
