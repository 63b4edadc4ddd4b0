"""One error tree: every library exception is a ScaleplanError with a field; the API maps each class to its
status by class; every command line turns bad input into one stderr line and exit 2."""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from litestar import Litestar, Request, get
from litestar.testing import TestClient

from fits.errors import BadInput, Busy, Conflict, Failed, NotFound, ScaleplanError, Unavailable

REPO = Path(__file__).resolve().parents[1]
PROBLEM = "application/problem+json"


def _library_modules() -> list[str]:
    names = []
    for package in ("fits", "planner", "verifier"):
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if info.name.endswith("__main__"):
                continue
            names.append(info.name)
    return names


def _library_exceptions() -> list[type[BaseException]]:
    found = []
    for name in _library_modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == name:
                found.append(obj)
    return sorted(set(found), key=lambda c: (c.__module__, c.__name__))


LIBRARY_EXCEPTIONS = _library_exceptions()


def test_the_library_defines_the_known_classes():
    names = {c.__name__ for c in LIBRARY_EXCEPTIONS}
    expected = {
        "UsageError", "LawDomainError", "DataError", "FitNotFound", "InsufficientData", "PlanError",
        "IdempotencyConflict", "PlanNotFound", "CheckError", "CheckNotFound", "ConfigError", "RunNotFound",
        "CheckFailed", "CorpusError", "CorpusNotFound", "EmptyCorpus", "NonTextFile", "DeviceError",
        "ModelTooLarge", "RunBusy", "TrainingDiverged",
    }
    assert expected <= names, expected - names


@pytest.mark.parametrize("cls", LIBRARY_EXCEPTIONS, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_library_exception_is_a_scaleplan_error(cls):
    assert issubclass(cls, ScaleplanError)


def make(cls: type[ScaleplanError], field: str = "some_field", message: str = "change it like so"):
    from planner.errors import PlanError

    return cls(field, message) if issubclass(cls, PlanError) else cls(message, field=field)


@pytest.mark.parametrize("cls", LIBRARY_EXCEPTIONS, ids=lambda c: c.__name__)
def test_field_and_message_survive_a_process_boundary(cls):
    exc = make(cls)
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is cls and again.field == "some_field" and again.message == "change it like so"
    assert str(again) == str(exc)


def test_str_names_the_field_and_not_found_is_not_quoted():
    from fits.store import FitNotFound
    from planner import PlanError

    assert str(BadInput("must be > 0", field="lr")) == "lr: must be > 0"
    assert str(PlanError("compute_flops", "must be > 0")) == "compute_flops: must be > 0"
    missing = FitNotFound("no fit with id 3", field="fit")
    assert str(missing) == "no fit with id 3" and missing.field == "fit"
    assert isinstance(missing, LookupError) and not isinstance(missing, KeyError)
    assert isinstance(BadInput("x"), ValueError) and isinstance(Failed("x"), RuntimeError)


def test_errors_module_imports_nothing_heavy():
    code = "import sys, fits.errors, fits.cliutil; print(sorted({'numpy', 'sqlite_utils', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------- the API


def expected_status(cls: type[ScaleplanError]) -> int:
    for base, status in ((NotFound, 404), (Conflict, 409), (Busy, 503), (Unavailable, 503), (Failed, 500),
                         (BadInput, 422)):
        if issubclass(cls, base):
            return status
    return 500


@pytest.fixture(scope="module")
def raising_client():
    from api.problems import exception_handlers

    classes = {c.__name__: c for c in [*LIBRARY_EXCEPTIONS, BadInput, NotFound, Conflict, Busy, Unavailable, Failed]}

    @get("/raise", sync_to_thread=False)
    def raising(request: Request) -> None:
        raise make(classes[request.query_params["name"]])

    app = Litestar([raising], exception_handlers=exception_handlers())
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize(
    "cls", [*LIBRARY_EXCEPTIONS, BadInput, NotFound, Conflict, Busy, Unavailable, Failed], ids=lambda c: c.__name__
)
def test_api_maps_each_class_to_its_status_with_the_field(raising_client, cls):
    response = raising_client.get("/raise", params={"name": cls.__name__})
    status = expected_status(cls)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["field"] == "some_field"
    assert "change it like so" in body["detail"]
    assert [(e["field"], e["message"], e.get("source", "body")) for e in body["errors"]] == [
        ("some_field", "change it like so", "body")
    ]


def test_api_real_endpoints_carry_the_field(db_file):
    from api.app import create_app

    with TestClient(create_app(db_file, api_keys="test-key-0123456789", rate_limit=0)) as client:
        missing = client.get("/v1/runs/123456")
        assert missing.status_code == 404 and missing.json()["field"] == "run_id"
        assert missing.json()["detail"] == "no run with id 123456"
        headers = {"Idempotency-Key": "k"}
        assert client.post("/v1/plans", json={"compute_flops": 2e21}, headers=headers).status_code == 201
        conflict = client.post("/v1/plans", json={"compute_flops": 3e21}, headers=headers)
        assert conflict.status_code == 409 and conflict.json()["field"] == "Idempotency-Key"


# ---------------------------------------------------------------------------------------------- the CLIs


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, **(env or {})})


def assert_one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_fits_cli_bad_input(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("N,D,loss\n1e9,2e10,3.1\n2e9,abc,3.0\n")
    proc = run_cli("fits", "fit", "--law", "chinchilla", "--data", str(bad), "--db", str(tmp_path / "x.db"))
    assert_one_line(proc, "python -m fits fit: error: ", "column D")
    assert_one_line(run_cli("fits", "show", "999", "--db", str(tmp_path / "x.db")), "no fit with id 999")


def test_planner_cli_bad_input_and_db_option(tmp_path):
    proc = run_cli("planner", "plan", "--compute", "-5", "--db", str(tmp_path / "x.db"))
    assert_one_line(proc, "error: compute_flops (--compute): must be > 0")
    assert (tmp_path / "x.db").exists()
    proc = run_cli("planner", "list", "--db", str(tmp_path / "no" / "such" / "dir.db"))
    assert_one_line(proc, "error: ", "database directory does not exist")


def test_verifier_cli_bad_input(tmp_path):
    proc = run_cli("verifier", "run", "--n-layer", "1", "--d-model", "32", "--n-head", "5", "--steps", "2",
                   "--db", str(tmp_path / "x.db"), "--quiet")
    assert_one_line(proc, "error: n_head: ")
    proc = run_cli("verifier", "check", "--plan", "424242", "--db", str(tmp_path / "x.db"), "--budget-minutes", "1")
    assert_one_line(proc, "error: plan: no plan with id 424242")


def test_api_cli_bad_input(tmp_path):
    assert_one_line(run_cli("api", "--port", "0", "--db", str(tmp_path / "x.db")), "python -m api: --port 0")
