"""The service's small parts on their own: token bucket, API keys, metrics exposition, settings, CLI checks."""

from __future__ import annotations

import re

import pytest

from api.auth import key_matches, load_api_keys
from api.metrics import Registry
from api.ratelimit import TokenBucket
from api.settings import load_settings


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.take("a", now=0.0)
    assert wait == pytest.approx(0.5)
    # Half a second later exactly one more token has dripped in.
    assert bucket.take("a", now=0.5) == 0.0
    assert bucket.take("a", now=0.5) > 0
    # Another client has its own bucket.
    assert bucket.take("b", now=0.5) == 0.0


def test_token_bucket_refills_to_burst_not_beyond():
    bucket = TokenBucket(rate=100.0, burst=2)
    bucket.take("a", now=0.0)
    allowed = [bucket.take("a", now=1000.0) == 0.0 for _ in range(3)]
    assert allowed == [True, True, False]


def test_token_bucket_forgets_idle_clients_without_changing_answers():
    bucket = TokenBucket(rate=1000.0, burst=1)
    for i in range(10_050):
        bucket.take(f"client-{i}", now=i * 0.01)
    assert len(bucket._buckets) < 10_050
    assert bucket.take("client-0", now=200.0) == 0.0


def test_token_bucket_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)


def test_api_keys_from_env_and_file(tmp_path, monkeypatch):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# team keys\nfile-key-1\n\n  file-key-2  # ci\n")
    monkeypatch.setenv("SCALEPLAN_API_KEYS", " env-a, ,env-b ")
    monkeypatch.setenv("SCALEPLAN_API_KEYS_FILE", str(keys_file))
    assert load_api_keys() == (b"env-a", b"env-b", b"file-key-1", b"file-key-2")


def test_missing_keys_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEPLAN_API_KEYS_FILE", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="SCALEPLAN_API_KEYS_FILE"):
        load_api_keys()


def test_key_matching_is_exact():
    keys = (b"alpha", b"beta")
    assert key_matches(b"beta", keys)
    assert not key_matches(b"bet", keys)
    assert not key_matches(b"betaa", keys)
    assert not key_matches(b"", keys)
    assert not key_matches(b"alpha", ())


def test_settings_reject_bad_environment(monkeypatch):
    monkeypatch.setenv("SCALEPLAN_RATE_LIMIT", "lots")
    with pytest.raises(ValueError, match="SCALEPLAN_RATE_LIMIT"):
        load_settings()
    monkeypatch.setenv("SCALEPLAN_RATE_LIMIT", "0")
    monkeypatch.setenv("SCALEPLAN_MAX_BODY_BYTES", "4096")
    settings = load_settings()
    assert settings.rate_limit == 0 and settings.max_body_bytes == 4096


_SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="(?:[^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$')


def test_metrics_exposition_is_prometheus_text():
    registry = Registry()
    registry.observe("GET", "/v1/plans/{plan_id}", 200, 0.003)
    registry.observe("GET", "/v1/plans/{plan_id}", 404, 0.2)
    registry.plan_created()
    text = registry.render(plans_stored=7, active_fits=[("chinchilla", "massive\"text", "besiroglu2024", 3, 2)])
    lines = text.splitlines()
    for line in lines:
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or _SAMPLE.match(line), line
    route = 'method="GET",route="/v1/plans/{plan_id}"'
    assert f"scaleplan_http_requests_total{{{route},status=\"404\"}} 1" in lines
    assert f"scaleplan_http_request_duration_seconds_bucket{{{route},le=\"0.005\"}} 1" in lines
    assert f"scaleplan_http_request_duration_seconds_bucket{{{route},le=\"+Inf\"}} 2" in lines
    assert "scaleplan_plans_served_total 1" in lines
    assert "scaleplan_plans_stored 7" in lines
    fit = 'law="chinchilla",scope="massive\\"text",name="besiroglu2024",fit_id="3"'
    assert f"scaleplan_active_fit_version{{{fit}}} 2" in lines


@pytest.mark.parametrize("argv", [["--port", "0"], ["--workers", "0"], ["--rate-limit", "-1"]])
def test_cli_refuses_bad_arguments_with_exit_2(argv, capsys):
    from api.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("python -m api: ")
