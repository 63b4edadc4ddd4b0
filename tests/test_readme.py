"""The README's two set-up commands are the ones users and CI run; keep them true."""

from __future__ import annotations

import re

from conftest import REPO


def _setup_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    return [line.strip() for line in blocks[0].splitlines() if line.strip() and not line.startswith("#")]


def test_readme_starts_with_exactly_two_setup_commands():
    commands = _setup_commands()
    assert len(commands) == 2, commands
    assert "python -m api" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (REPO / ".ci" / "run").read_text()
    assert _setup_commands()[1] in ci.splitlines()


def test_the_readme_error_example_is_the_real_answer(db_file):
    import json

    from litestar.testing import TestClient

    from api.app import create_app

    text = (REPO / "README.md").read_text()
    example = json.loads(re.search(r"\*\*Errors\*\*.*?```json\n(.*?)```", text, flags=re.S).group(1))
    body = json.loads(re.search(r"the answer to `POST /v1/plans (\{.*?\})`", text).group(1))
    with TestClient(create_app(db_file, rate_limit=0)) as client:
        response = client.post(example["instance"], json=body)
    assert response.status_code == example["status"]
    assert response.json() == example
