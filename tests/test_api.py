"""The HTTP service in process (litestar's TestClient): status codes, problem details, auth, limits, metrics."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from api.app import create_app

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROBLEM = "application/problem+json"


@pytest.fixture
def client(db_file):
    with TestClient(create_app(db_file, api_keys=KEY, rate_limit=0)) as test_client:
        yield test_client


def assert_problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:scaleplan:problem:")
    assert body["title"] and body["detail"]
    if field is not None:
        assert body.get("field") == field, body
    return body


# ---------------------------------------------------------------------------------------------- operations


def test_health_ready_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["fits_seeded"] is True and ready.json()["active_fits"] >= 2
    client.get("/v1/fits/no-such-fit")
    text = client.get("/metrics").text
    assert 'scaleplan_http_requests_total{method="GET",route="/v1/fits/{ref}",status="404"} 1' in text
    assert 'scaleplan_active_fit_version{law="chinchilla",scope="massivetext",name="besiroglu2024"' in text
    assert "scaleplan_plans_stored 0" in text


def test_readyz_is_503_until_the_database_can_open(tmp_path):
    directory = tmp_path / "not-yet"
    app = create_app(directory / "x.db", rate_limit=0)
    with pytest.raises(BaseExceptionGroup), TestClient(app):
        pass  # the lifespan refuses to start on a path that cannot be opened
    probe = TestClient(app)  # without the lifespan, the database opens lazily on first use
    response = probe.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] is False and "does not exist" in response.json()["detail"]
    directory.mkdir()
    assert probe.get("/readyz").status_code == 200


# ---------------------------------------------------------------------------------------------- fits


def test_list_and_get_fits(client):
    fits = client.get("/v1/fits").json()
    assert {f["name"] for f in fits} >= {"kaplan2020", "hoffmann2022", "besiroglu2024"}
    active = client.get("/v1/fits", params={"law": "chinchilla", "active": "true"}).json()
    assert [f["name"] for f in active] == ["besiroglu2024"]
    by_name = client.get("/v1/fits/besiroglu2024").json()
    assert client.get(f"/v1/fits/{by_name['id']}").json() == by_name
    assert by_name["coefficients"]["alpha"] == pytest.approx(0.3478)


def test_activate_switches_the_active_fit(client):
    hoffmann = client.get("/v1/fits/hoffmann2022").json()
    response = client.post(f"/v1/fits/{hoffmann['id']}/activate", headers=AUTH)
    assert response.status_code == 200 and response.json()["active"] is True
    active = client.get("/v1/fits", params={"law": "chinchilla", "scope": "massivetext", "active": "true"}).json()
    assert [f["name"] for f in active] == ["hoffmann2022"]


def test_unknown_fit_is_404_with_the_known_names(client):
    body = assert_problem(client.get("/v1/fits/nonexistent"), 404)
    assert "besiroglu2024" in body["detail"]
    assert_problem(client.get("/v1/fits/987654"), 404)
    assert_problem(client.post("/v1/fits/987654/activate", headers=AUTH), 404)


# ---------------------------------------------------------------------------------------------- auth


def test_writes_need_a_key(client):
    body = assert_problem(client.post("/v1/fits/1/activate"), 401, field="Authorization")
    assert "Bearer" in body["detail"]
    assert client.post("/v1/fits/1/activate").headers["www-authenticate"].startswith("Bearer")
    assert_problem(client.post("/v1/fits/1/activate", headers={"Authorization": "Basic abc"}), 401)
    assert_problem(client.post("/v1/fits/1/activate", headers={"Authorization": "Bearer"}), 401)
    assert_problem(client.post("/v1/fits/1/activate", headers={"Authorization": "Bearer wrong-key"}), 403)
    assert_problem(client.post("/v1/fits/1/activate", headers={"Authorization": f"Bearer {KEY}x"}), 403)
    assert client.post("/v1/fits/1/activate", headers=AUTH).status_code == 200


def test_without_configured_keys_writes_are_forbidden_and_say_why(db_file, monkeypatch):
    monkeypatch.delenv("SCALEPLAN_API_KEYS", raising=False)
    monkeypatch.delenv("SCALEPLAN_API_KEYS_FILE", raising=False)
    with TestClient(create_app(db_file, rate_limit=0)) as test_client:
        body = assert_problem(test_client.post("/v1/fits/1/activate", headers=AUTH), 403)
        assert "SCALEPLAN_API_KEYS" in body["detail"]


def test_keys_can_come_from_a_file(db_file, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("first\nsecond\n")
    with TestClient(create_app(db_file, api_keys="", api_keys_file=keys, rate_limit=0)) as test_client:
        assert test_client.post("/v1/fits/1/activate", headers={"Authorization": "Bearer second"}).status_code == 200


# ---------------------------------------------------------------------------------------------- bad input


def test_unknown_routes_and_methods(client):
    assert_problem(client.get("/v2/plans"), 404)
    body = assert_problem(client.delete("/v1/fits/1"), 405)
    assert "DELETE" in body["detail"]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"active": "maybe"}, "active")],
)
def test_bad_query_values_are_422_naming_the_parameter(client, query, field):
    body = assert_problem(client.get("/v1/fits", params=query), 422, field=field)
    assert body["errors"][0]["source"] == "query"


def test_ids_beyond_sqlite_range_are_rejected_not_crashed(client):
    assert_problem(client.post(f"/v1/fits/{2**70}/activate", headers=AUTH), 422, field="fit_id")
    assert_problem(client.post("/v1/fits/abc/activate", headers=AUTH), 404)


# ---------------------------------------------------------------------------------------------- rate limit


def test_rate_limit_answers_429_with_retry_after(db_file):
    with TestClient(create_app(db_file, rate_limit=0.5, rate_burst=3)) as test_client:
        statuses = [test_client.get("/v1/fits/kaplan2020").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = test_client.get("/v1/fits/kaplan2020")
        body = assert_problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1
        assert "per second" in body["detail"]
        # Probes are never limited.
        assert all(test_client.get("/healthz").status_code == 200 for _ in range(5))


# ---------------------------------------------------------------------------------------------- plans


def test_post_plan_is_201_with_location_and_stored(client):
    response = client.post("/v1/plans", json={"compute_flops": 1e21})
    assert response.status_code == 201
    plan = response.json()
    assert response.headers["location"] == f"/v1/plans/{plan['id']}"
    assert client.get(response.headers["location"]).json() == plan
    assert plan["fit"]["name"] == "besiroglu2024" and plan["request"] == {"compute_flops": 1e21}
    assert "scaleplan_plans_served_total 1" in client.get("/metrics").text


@pytest.mark.parametrize(
    "body",
    [
        {"pf_days": 50, "max_params": 2e9},
        {"hours": 24, "hardware": {"gpu": "H100", "count": 16}},
        {"target_loss": 2.5},
        {"compute_flops": 1e20, "fit": "kaplan2020"},
        {"compute_flops": 1e22, "unique_tokens": 1e11, "inference_tokens": 1e12},
    ],
)
def test_every_kind_of_budget_makes_a_plan(client, body):
    response = client.post("/v1/plans", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["request"] == body


def test_idempotent_retries_return_the_stored_plan(client):
    headers = {"Idempotency-Key": "retry-1"}
    first = client.post("/v1/plans", json={"compute_flops": 2e21}, headers=headers)
    again = client.post("/v1/plans", json={"compute_flops": 2e21}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(client.get("/v1/plans").json()["items"]) == 1
    conflict = assert_problem(client.post("/v1/plans", json={"compute_flops": 3e21}, headers=headers), 409,
                              field="Idempotency-Key")
    assert "different request" in conflict["detail"]


def test_plan_pages_filters_and_cursor(client):
    ids = [client.post("/v1/plans", json={"compute_flops": 1e19 * (i + 1)}).json()["id"] for i in range(5)]
    kaplan = client.post("/v1/plans", json={"compute_flops": 1e20, "fit": "kaplan2020"}).json()
    first = client.get("/v1/plans", params={"limit": 4}).json()
    assert [p["id"] for p in first["items"]] == [kaplan["id"], *ids[::-1][:3]]
    second = client.get("/v1/plans", params={"limit": 4, "cursor": first["next_cursor"]}).json()
    assert [p["id"] for p in second["items"]] == ids[1::-1] and second["next_cursor"] is None
    only = client.get("/v1/plans", params={"fit_id": kaplan["fit"]["id"]}).json()["items"]
    assert [p["id"] for p in only] == [kaplan["id"]]
    created = client.get(f"/v1/plans/{ids[2]}").json()["created"]
    recent = client.get("/v1/plans", params={"since": created}).json()["items"]
    assert {p["id"] for p in recent} == {*ids[2:], kaplan["id"]}
    assert client.get("/v1/plans", params={"since": "2999-01-01T00:00:00+02:00"}).json()["items"] == []


def test_predict_and_frontier_tables(client):
    loss = client.post("/v1/predict", json={"params": 1e9, "tokens": 2e10}).json()["predicted_loss"]
    assert loss["low"] < loss["mean"] < loss["high"]
    by_steps = client.post("/v1/predict", json={"params": 1e8, "steps": 1e4, "batch_tokens": 1e6,
                                                "fit": "kaplan2020"})
    assert by_steps.status_code == 200 and by_steps.json()["steps"] == 10000
    frontier = client.get("/v1/frontier", params={"start": 1e18, "stop": 1e22, "per_decade": 1}).json()
    assert [row["compute_flops"] for row in frontier["rows"]] == pytest.approx([1e18, 1e19, 1e20, 1e21, 1e22])
    png = client.get("/v1/frontier.png", params={"start": 1e18, "stop": 1e20})
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("content", "status", "field"),
    [
        (b'{"compute_flops": 1e21', 400, None),  # malformed JSON
        (b"\xff\xfe not json", 400, None),
        (b"", 400, None),
        (b"[1, 2]", 400, None),
        (b'"a string"', 400, None),
        (b'{"compute_flops": "a lot"}', 422, "compute_flops"),  # wrong types
        (b'{"compute_flops": true}', 422, "compute_flops"),
        (b'{"compute_flops": "1e21"}', 422, "compute_flops"),  # numbers as strings are not coerced
        (b'{"hours": 10, "hardware": {"gpu": "H100", "count": "eight"}}', 422, "hardware.count"),
        (b'{"compute_flops": 1e300}', 422, "compute_flops"),  # absurd numbers
        (b'{"compute_flops": -1e21}', 422, "compute_flops"),
        (b'{"compute_flops": 0}', 422, "compute_flops"),
        (b'{"compute_flops": 5e-324}', 422, None),
        (b'{"compute_flops": 1e21, "max_params": 5e-324}', 422, None),
        (b'{"target_loss": 1.0}', 409, "target_loss"),  # valid, but below the fit's irreducible loss
        (b'{"hours": 10, "hardware": {"gpu": "H100", "mfu": 1.5}}', 422, "hardware.mfu"),
        # values that contradict each other by arithmetic the schema cannot state: a conflict
        (b'{"compute_flops": 1e21, "max_batch_tokens": 1e3, "min_batch_tokens": 1e6}', 409, "min_batch_tokens"),
        (b"{}", 422, "compute_flops"),  # missing budget
        (b'{"compute_flops": 1e21, "pf_days": 3}', 422, "pf_days"),
        (b'{"compute_flops": 1e21, "budget": 3}', 422, "budget"),  # unknown field
        (b'{"compute_flops": 1e21, "fit": "no-such-fit"}', 404, "fit"),  # a well-formed name, not stored
    ],
)
def test_bad_plan_requests_get_problem_details(client, content, status, field):
    response = client.post("/v1/plans", content=content, headers={"content-type": "application/json"})
    assert_problem(response, status, field=field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"params": 1e9}, "tokens"),
        ({"params": "big", "tokens": 1e9}, "params"),
        ({"params": 1e9, "tokens": 1e9, "steps": 10, "batch_tokens": 10}, "steps"),
        ({"params": 5e-324, "steps": 5e-324, "batch_tokens": 5e-324, "fit": "kaplan2020"}, None),
    ],
)
def test_bad_predictions_are_422(client, body, field):
    assert_problem(client.post("/v1/predict", json=body), 422, field=field)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "x"}, "start"),
        ({"start": -5}, "start"),
        ({"start": 5e-324, "stop": 5e-324}, None),
        ({"per_decade": 0}, "per_decade"),
    ],
)
def test_bad_frontier_queries_are_422(client, params, field):
    assert_problem(client.get("/v1/frontier", params=params), 422, field=field)


def test_unknown_ids_are_404(client):
    for path in ("/v1/plans/123456", "/v1/plans/123456/checks", "/v1/runs/123456", "/v1/runs/123456/points",
                 "/v1/fits/123456"):
        body = assert_problem(client.get(path), 404)
        assert "123456" in body["detail"]


def test_oversized_bodies_are_413(db_file):
    with TestClient(create_app(db_file, api_keys=KEY, rate_limit=0, max_body_bytes=4096)) as small:
        big = {"compute_flops": 1e21, "fit": "x" * 5000}
        body = assert_problem(small.post("/v1/plans", json=big), 413)
        assert "4096" in body["detail"]
        points = [{"N": 1e7 + i, "D": 1e9, "loss": 3.0} for i in range(200)]
        assert_problem(small.post("/v1/fits", json={"law": "chinchilla", "points": points}, headers=AUTH), 413)
        assert small.post("/v1/plans", json={"compute_flops": 1e21}).status_code == 201


def test_write_endpoints_all_need_keys(client):
    for path, body in (("/v1/fits", {"law": "chinchilla", "points": []}), ("/v1/fits/1/activate", None),
                       ("/v1/runs", {"scope": "s"})):
        assert_problem(client.post(path, json=body), 401, field="Authorization")
        assert_problem(client.post(path, json=body, headers={"Authorization": "Bearer nope"}), 403)


# ---------------------------------------------------------------------------------------------- fits and runs


POINTS = [
    {"N": n, "D": d, "loss": round(1.8172 + 482.01 / n**0.3478 + 2085.43 / d**0.3658, 4)}
    for n in (1e7, 3e7, 1e8) for d in (2e8, 1e9, 5e9)
]


def test_post_fits_fits_stores_and_guards_names(client):
    response = client.post("/v1/fits", json={"law": "chinchilla", "scope": "lab", "name": "lab-fit",
                                             "points": POINTS, "activate": True}, headers=AUTH)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/v1/fits/{created['fit']['id']}"
    assert created["fit"]["active"] and created["fit"]["name"] == "lab-fit" and created["result"]["n_points"] == 9
    assert client.get("/v1/fits/lab-fit").json()["id"] == created["fit"]["id"]
    # A plan can now name the new fit, or use it as the active fit of its (law, scope).
    plan = client.post("/v1/plans", json={"compute_flops": 1e20, "law": "chinchilla", "scope": "lab"}).json()
    assert plan["fit"]["id"] == created["fit"]["id"]
    # Names stay with one (law, scope), and published names are reserved.
    assert_problem(client.post("/v1/fits", json={"law": "chinchilla", "scope": "other", "name": "lab-fit",
                                                 "points": POINTS}, headers=AUTH), 409, field="name")
    assert_problem(client.post("/v1/fits", json={"law": "chinchilla", "scope": "massivetext", "name": "besiroglu2024",
                                                 "points": POINTS}, headers=AUTH), 409, field="name")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"law": "chinchilla", "points": POINTS[:3]}, "points"),
        ({"law": "kaplan-ns", "points": POINTS}, "points[0].B"),
        ({"law": "kaplan", "points": POINTS}, "law"),
        ({"law": "chinchilla", "points": [{**p, "loss": -1} for p in POINTS]}, "points[0].loss"),
        ({"law": "chinchilla", "points": POINTS, "name": "42"}, "name"),
        ({"law": "chinchilla", "points": POINTS, "bootstrap": 100000}, "bootstrap"),
    ],
)
def test_bad_fit_requests_are_422(client, body, field):
    assert_problem(client.post("/v1/fits", json=body, headers=AUTH), 422, field=field)


def test_ingested_runs_feed_the_refit(client, db_file):
    from fits.refit import refit
    from fits.store import open_db

    for n in (1e7, 3e7, 1e8):
        for d in (2e8, 1e9):
            loss = 1.8172 + 482.01 / n**0.3478 + 2085.43 / d**0.3658
            steps = int(d // 65536)
            curve = [{"step": s, "tokens": s * 65536, "val_loss": loss + 0.5 * (1 - s / steps)}
                     for s in (steps // 4, steps // 2, steps)]
            response = client.post("/v1/runs", json={"scope": "team-b", "n_params": int(n), "batch_tokens": 65536,
                                                      "seq_len": 1024, "points": curve}, headers=AUTH)
            assert response.status_code == 201, response.text
    db = open_db(db_file)
    try:
        fitted = refit(db, scope="team-b")
    finally:
        db.conn.close()
    chinchilla = next(f for f in fitted if f.law == "chinchilla")
    assert len(chinchilla.provenance.run_ids) == 6
    assert client.get(f"/v1/fits/{chinchilla.id}").json()["scope"] == "team-b"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"n_params": None}, "n_params"),
        ({"batch_tokens": None}, "batch_tokens"),
        ({"points": []}, "points"),
        ({"points": [{"step": 1, "tokens": 10, "val_loss": 1e9}]}, "points[0].val_loss"),
        ({"points": [{"step": 1, "tokens": 10}]}, "points[0]"),
        ({"seq_len": 0}, "seq_len"),
    ],
)
def test_bad_runs_are_422(client, change, field):
    body = {"scope": "s", "n_params": 1000, "batch_tokens": 4096, "seq_len": 1024,
            "points": [{"step": 1, "tokens": 4096, "val_loss": 5.0}], **change}
    body = {k: v for k, v in body.items() if v is not None}
    assert_problem(client.post("/v1/runs", json=body, headers=AUTH), 422, field=field)


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"batch_size": 3}, 409, "batch_tokens"),  # 3 × 1024 is not 4096
        ({"points": [{"step": 2, "val_loss": 3}, {"step": 2, "val_loss": 3.1}]}, 409, "points[1].step"),
        ({"points": [{"step": 2, "tokens": 10, "val_loss": 3}]}, 409, "points[0].tokens"),
        ({"plan_id": 99999}, 404, "plan_id"),  # well formed, not stored
    ],
)
def test_runs_that_contradict_themselves_or_name_what_is_not_stored(client, change, status, field):
    body = {"scope": "s", "n_params": 1000, "batch_tokens": 4096, "seq_len": 1024,
            "points": [{"step": 1, "tokens": 4096, "val_loss": 5.0}], **change}
    assert_problem(client.post("/v1/runs", json=body, headers=AUTH), status, field=field)


def test_a_runs_points_may_come_in_any_order_and_without_tokens(client):
    body = {"scope": "s", "n_params": 1000, "batch_tokens": 4096, "seq_len": 1024,
            "points": [{"step": 20, "val_loss": 4.0}, {"step": 10, "tokens": 40_960, "val_loss": 5.0}]}
    response = client.post("/v1/runs", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    points = client.get(f"/v1/runs/{response.json()['id']}/points").json()
    assert [(p["step"], p["tokens"]) for p in points] == [(10, 40_960), (20, 81_920)]


# ---------------------------------------------------------------------------------------------- schema


def test_openapi_documents_every_operation_with_a_description_and_example(client):
    schema = client.get("/schema/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    operations = [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]
    assert len(operations) >= 17
    for path, method, op in operations:
        assert op.get("description"), (method, path)
        success = next(r for code, r in op["responses"].items() if code.startswith("2"))
        has_example = any("examples" in media or "example" in media for media in success.get("content", {}).values())
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        params = [p for p in op.get("parameters", []) if p["in"] in ("path", "query")]
        assert has_example or path == "/v1/frontier.png" or body.get("examples"), (method, path)
        assert all(p.get("examples") or p.get("example") for p in params), (method, path)
        for code, response in op["responses"].items():
            if code.startswith("4"):
                assert "application/problem+json" in response["content"], (method, path, code)
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_ingested_run_is_stored_by_the_verifiers_run_store(db_file):
    from fits.store import open_db
    from verifier.runs import ConfigError, RunPoint, create_ingested_run, get_points

    db = open_db(db_file)
    points = [RunPoint(step=s, tokens=s * 1024, val_loss=v) for s, v in ((10, 3.0), (20, 2.5), (30, 2.6))]
    run = create_ingested_run(db, points, scope="elsewhere", config={"ingested": True}, n_params=1000,
                              batch_tokens=1024, seq_len=64)
    assert (run.status, run.source, run.steps, run.tokens) == ("complete", "ingested", 30, 30 * 1024)
    assert (run.final_val_loss, run.best_val_step) == (2.6, 20)
    assert [p.step for p in get_points(db, run.id)] == [10, 20, 30]
    with pytest.raises(ConfigError, match="plan_id: no plan with id 999"):
        create_ingested_run(db, points, scope="elsewhere", config={}, n_params=1000, batch_tokens=1024,
                            seq_len=64, plan_id=999)
    assert len(list(db["runs"].rows)) == 1  # the refused run left nothing behind


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"start": 1e22, "stop": 1e19}, 409, "stop"),  # each bound valid, their order not: a conflict
        ({"start": 1e18, "stop": 1e39, "per_decade": 20}, 409, "stop"),
        ({"fit": "nope"}, 404, "fit"),  # a well-formed name, not stored
    ],
)
def test_frontier_queries_that_contradict_themselves_or_name_no_fit(client, params, status, field):
    assert_problem(client.get("/v1/frontier", params=params), status, field=field)
