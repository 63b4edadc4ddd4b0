"""The HTTP edge: bodies nested too deep, bodies that are not JSON, huge values, out-of-range ids, OPTIONS, runs
that contradict themselves, the OpenAPI document's bounds, and idempotency under concurrent retries."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.body import decode
from api.problems import ApiProblem

KEY = "edge-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"content-type": "application/json"}
WRITES = ["/v1/plans", "/v1/predict", "/v1/fits", "/v1/runs"]


@pytest.fixture
def client(db_file):
    with TestClient(create_app(db_file, api_keys=KEY, rate_limit=0)) as test_client:
        yield test_client


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


@pytest.mark.parametrize("path", WRITES)
def test_a_body_nested_1000_deep_is_a_4xx_problem(client, path):
    deep_array = b"[" * 1000 + b"]" * 1000
    deep_object = b'{"a":' * 1000 + b"1" + b"}" * 1000
    for body in (deep_array, deep_object, b'{"fit":' + deep_array + b"}", b'{"points":' + deep_array + b"}"):
        response = client.post(path, content=body, headers={**AUTH, **JSON})
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:200])
        assert response.headers["content-type"].startswith("application/problem+json")
    _problem(client.post(path, content=deep_array, headers={**AUTH, **JSON}), 400)


def test_the_decoder_turns_recursion_into_a_400():
    # Where a type accepts nesting, msgspec recurses per level and runs out of stack.
    with pytest.raises(ApiProblem) as raised:
        decode(msgspec.json.Decoder(Any), b"[" * 1000 + b"]" * 1000)
    assert raised.value.status_code == 400 and "nested too deeply" in raised.value.detail


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "image/png",
                                          "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_declared_json_is_a_415(client, content_type, db_file):
    response = client.post("/v1/plans", content=b'{"compute_flops": 1e21}', headers={"content-type": content_type})
    body = _problem(response, 415)
    assert body["field"] == "Content-Type" and content_type in body["detail"]
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT COUNT(*) FROM plans").fetchone() == (0,)
    for path in WRITES[1:]:
        _problem(client.post(path, content=b"{}", headers={**AUTH, "content-type": content_type}), 415)
    # JSON under its other names is still JSON
    for ok in ("application/json; charset=utf-8", "application/merge-patch+json"):
        assert client.post("/v1/plans", content=b'{"compute_flops": 1e21}',
                           headers={"content-type": ok}).status_code == 201


def test_a_huge_value_is_echoed_as_a_short_prefix_at_most(client):
    response = client.post("/v1/plans", json={"compute_flops": 1e21, "scope": "x" * 1_900_000})
    body = _problem(response, 422)
    assert body["field"] == "scope"
    assert len(response.content) < 2000


def test_fit_ids_and_budgets_out_of_range_are_field_errors(client):
    body = _problem(client.post("/v1/plans", json={"compute_flops": 1e21, "fit": 2**70}), 422)
    assert body["field"] == "fit" and "SQLite" not in body["detail"]
    for param in ("5e-324", "0", "1e8"):
        body = _problem(client.get("/v1/frontier", params={"start": param}), 422)
        assert body["field"] == "start" and "Overflow" not in body["detail"], body
    _problem(client.get("/v1/plans/9223372036854775808"), 422)  # one past SQLite's largest id


def test_options_lists_every_method_of_the_path(client):
    allowed = {m.strip() for m in client.options("/v1/plans").headers["allow"].split(",")}
    assert allowed == {"GET", "POST", "OPTIONS"}
    allowed = {m.strip() for m in client.options("/v1/plans/1").headers["allow"].split(",")}
    assert allowed == {"GET", "OPTIONS"}


RUN = {"scope": "team-a", "n_params": 85_000_000, "batch_tokens": 1000, "seq_len": 100,
       "points": [{"step": 10, "tokens": 10_000, "val_loss": 3.6}, {"step": 20, "tokens": 20_000, "val_loss": 3.4}]}


def test_runs_that_contradict_themselves_are_refused(client):
    assert client.post("/v1/runs", json=RUN, headers=AUTH).status_code == 201
    wrong_tokens = {**RUN, "points": [{"step": 10, "tokens": 10_000, "val_loss": 3.6},
                                      {"step": 20, "tokens": 5_000_000, "val_loss": 3.4}]}
    # each value is schema-valid, their product is not: a conflict (409), which the document declares
    assert _problem(client.post("/v1/runs", json=wrong_tokens, headers=AUTH), 409)["field"] == "points[1].tokens"
    both = {**RUN, "shape": {"n_layer": 12, "d_model": 768}}
    assert _problem(client.post("/v1/runs", json=both, headers=AUTH), 422)["field"] == "shape"
    nul = {**RUN, "scope": "team\x00a"}
    assert _problem(client.post("/v1/runs", json=nul, headers=AUTH), 422)["field"] == "scope"


def test_openapi_states_the_bounds_the_server_enforces(client):
    doc = client.get("/schema/openapi.json").json()
    schemas = doc["components"]["schemas"]
    plan = schemas["PlanRequest"]["properties"]
    for name in ("hours", "target_loss", "deadline_hours", "max_epochs"):
        assert plan[name]["exclusiveMinimum"] == 0, (name, plan[name])
    assert plan["fit"]["maximum"] == 2**63 - 1 and plan["fit"]["minimum"] == 1
    assert schemas["Hardware"]["properties"]["peak_tflops"]["exclusiveMinimum"] == 0
    assert schemas["RunIngest"]["properties"]["lr"]["exclusiveMinimum"] == 0
    for name in ("N", "D", "B", "step"):
        assert schemas["FitPoint"]["properties"][name]["minimum"] == 1
    assert schemas["FitRequest"]["properties"]["budgets"]["items"]["exclusiveMinimum"] == 0
    assert len(schemas["PlanRequest"]["oneOf"]) == 5  # exactly one budget
    assert schemas["PredictRequest"]["not"]["required"] == ["tokens", "steps"]
    plan_id = doc["paths"]["/v1/plans/{plan_id}"]["get"]["parameters"][0]["schema"]
    assert plan_id["maximum"] == 2**63 - 1 and isinstance(plan_id["maximum"], int)
    # every bound the document states is one the server holds to
    assert client.post("/v1/plans", json={"hours": 1e-300, "hardware": {"gpu": "H100"}}).status_code != 500
    _problem(client.post("/v1/plans", json={"compute_flops": 1e21, "deadline_hours": 0,
                                            "hardware": {"gpu": "H100"}}), 422)


def test_concurrent_retries_with_one_key_store_one_plan_and_answer_one_original(db_file):
    app = create_app(db_file, rate_limit=0)

    async def burst(key: str) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(*(
                http.post("/v1/plans", json={"compute_flops": 3e21}, headers={"Idempotency-Key": key})
                for _ in range(16)))

    async def main() -> list[list[httpx.Response]]:
        return [await burst(f"key-{trial}") for trial in range(12)]  # the database opens on first use

    for responses in asyncio.run(main()):
        assert {r.status_code for r in responses} == {201}
        originals = [r for r in responses if r.headers.get("Idempotent-Replayed") != "true"]
        assert len(originals) == 1
        assert len({r.json()["id"] for r in responses}) == 1
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT idempotency_key) FROM plans").fetchone() == (12, 12)


def test_a_fit_ref_of_non_ascii_digits_is_a_name_not_a_500(client):
    # "³".isdigit() is true, but int("³") fails: such a ref is looked up as a name
    assert _problem(client.get("/v1/fits/%C2%B3"), 404)["detail"]
    doc = client.get("/schema/openapi.json").json()["components"]["schemas"]
    assert doc["PlanRequest"]["additionalProperties"] is False  # unknown fields are refused, and say so


def test_concurrent_retries_across_two_workers_answer_one_original(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from api.testing import ServerProcess

    db = tmp_path / "idem.db"
    with ServerProcess(db, workers=2, env={"SCALEPLAN_RATE_LIMIT": "0"}) as server, \
            ThreadPoolExecutor(16) as pool, httpx.Client(base_url=server.url, timeout=30,
                                                         limits=httpx.Limits(max_connections=16)) as http:
        for trial in range(4):
            def post(_: int, key: str = f"two-workers-{trial}") -> httpx.Response:
                return http.post("/v1/plans", json={"compute_flops": 2e21}, headers={"Idempotency-Key": key})

            responses = list(pool.map(post, range(16)))
            assert {r.status_code for r in responses} == {201}, [r.text for r in responses if r.status_code != 201]
            originals = [r for r in responses if r.headers.get("Idempotent-Replayed") != "true"]
            assert len(originals) == 1, (trial, len(originals))
            assert len({r.json()["id"] for r in responses}) == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM plans").fetchone() == (4,)


def test_an_integer_sent_as_a_float_of_integral_value_is_that_integer(client):
    # JSON Schema's "integer" is any number of integral value: 10291.0 is one, 10291.5 is not
    response = client.post("/v1/plans", json={"compute_flops": 1e21, "vocab_size": 10291.0})
    assert response.status_code == 201, response.text
    assert response.json()["request"]["vocab_size"] == 10291
    assert _problem(client.post("/v1/plans", json={"compute_flops": 1e21, "vocab_size": 10291.5}), 422)[
        "field"] == "vocab_size"
    nested = {"hours": 10, "hardware": {"gpu": "H100", "count": 8.0}}
    assert client.post("/v1/plans", json=nested).status_code == 201


def test_what_a_request_names_but_is_not_stored_is_a_404(client):
    assert _problem(client.post("/v1/predict", json={"params": 1e9, "tokens": 2e10, "fit": 999}), 404)[
        "field"] == "fit"
    assert _problem(client.post("/v1/plans", json={"compute_flops": 1e21, "law": "chinchilla",
                                                   "scope": "nowhere"}), 404)["field"] == "law"
    assert _problem(client.get("/v1/frontier", params={"scope": "nowhere"}), 404)["field"] == "scope"
    unknown_gpu = {"hours": 10, "hardware": {"gpu": "no-such-accelerator"}}
    assert _problem(client.post("/v1/plans", json=unknown_gpu), 404)["field"] == "hardware.gpu"


def test_the_document_states_the_rules_between_fields(client):
    doc = client.get("/schema/openapi.json").json()
    schemas = doc["components"]["schemas"]
    budgets = [rule["required"] for rule in schemas["PlanRequest"]["oneOf"]]
    assert ["budget_usd"] in budgets and ["hours"] in budgets  # exactly one budget, whatever else is given
    needs_hardware = [rule["if"]["required"] for rule in schemas["PlanRequest"]["allOf"]
                      if rule["then"] == {"required": ["hardware"], "properties": {"hardware": {"type": "object"}}}]
    assert ["hours"] in needs_hardware and ["budget_usd"] in needs_hardware
    # a family's points carry its columns and are at least as many as its coefficients
    by_law = {rule["if"]["properties"]["law"]["const"]: rule["then"]["properties"]["points"]
              for rule in schemas["FitRequest"]["allOf"]}
    assert by_law["chinchilla"]["minItems"] == 5 and by_law["kaplan-ns"]["items"]["required"] == ["B", "step"]
    # the frontier's fit, law and scope are one exploded object, so the rules between them can be stated
    for path in ("/v1/frontier", "/v1/frontier.png"):
        parameters = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}
        assert not {"fit", "law", "scope"} & set(parameters)
        selection = parameters["fit_selection"]
        assert (selection["style"], selection["explode"]) == ("form", True)
        assert set(selection["schema"]["properties"]) == {"fit", "law", "scope"}
    assert _problem(client.get("/v1/frontier", params={"law": "chinchilla"}), 422)["field"] == "scope"
    assert _problem(client.get("/v1/frontier", params={"fit": "kaplan2020", "scope": "x"}), 422)["field"] == "fit"
    # the object admits no other keys, and the server holds to it: an unknown query parameter is refused
    assert selection["schema"]["additionalProperties"] is False
    assert _problem(client.get("/v1/frontier", params={"fits": "kaplan2020"}), 422)["field"] == "fits"
    # a run's points: bounded values, and a loss on each
    point = schemas["IngestPoint"]
    assert point["properties"]["val_loss"]["exclusiveMaximum"] == 100 and point["additionalProperties"] is False


def test_a_since_before_year_one_in_utc_lists_every_plan(client):
    assert client.post("/v1/plans", json={"compute_flops": 1e21}).status_code == 201
    early = client.get("/v1/plans", params={"since": "0001-01-01T00:00:01+02:02"})
    assert early.status_code == 200 and len(early.json()["items"]) == 1
    late = client.get("/v1/plans", params={"since": "9999-12-31T23:59:59-02:00"})
    assert late.status_code == 200 and late.json()["items"] == []
