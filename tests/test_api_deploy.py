"""The deployment files say what the service and the refit job need (Docker cannot run here)."""

from __future__ import annotations

import re
import shlex

import yaml
from conftest import REPO

DEPLOY = REPO / "deploy"


def _stages(dockerfile: str) -> dict[str, str]:
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\w+)\s*$", dockerfile, flags=re.M | re.I)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_dockerfile_cpu_default_and_gpu_variant():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, flags=re.M)
    stages = _stages(text)
    assert list(stages)[-1] == "cpu", "the default (last) stage is the CPU image"
    cpu, gpu, base = stages["cpu"], stages["gpu"], stages["base"]
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu and "TORCH_VERSION=2.13.0" in text
    assert 'pip install ".[gpu]"' in gpu
    assert "SCALEPLAN_DB=/data/scaleplan.db" in base and "useradd" in base
    assert not re.search(r"^USER ", base, flags=re.M), "the base stage stays root for the images' installs"
    for stage in (cpu, gpu):
        assert stage.lstrip().startswith("ARG") or "FROM" not in stage  # both build on base
        assert re.search(r"^USER scaleplan$", stage, flags=re.M)
        image = base + stage  # what the image declares: its own lines and those it inherits from base
        assert 'VOLUME ["/data"]' in image
        healthcheck = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", image, flags=re.M | re.S)
        assert healthcheck and "curl" not in healthcheck.group(1) and "/healthz" in healthcheck.group(1)
        assert 'CMD ["python", "-m", "api"]' in image
    assert re.search(r"SCALEPLAN_WORKERS=\d+", base)


def test_dockerignore_keeps_the_build_context_small():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert {".venv", ".git", "tests", "*.db"} <= set(ignored)
    assert "README.md" not in ignored and "pyproject.toml" not in ignored


def test_crontab_runs_the_refit_without_overlap():
    jobs = [line for line in (DEPLOY / "crontab").read_text().splitlines()
            if line.strip() and not line.startswith("#") and "=" not in line.split()[0]]
    assert len(jobs) == 1
    fields = jobs[0].split(None, 5)
    command = shlex.split(fields[5])
    assert "flock" in command and "-n" in command
    assert command[command.index("-m") + 1 : command.index("-m") + 3] == ["fits", "refit"]
    argv = command[command.index("-m") + 2 :]
    assert_refit_arguments_parse(argv[: argv.index(">>")] if ">>" in argv else argv)


def assert_refit_arguments_parse(argv: list[str]) -> None:
    from fits.cli import build_parser

    args = build_parser().parse_args(argv)
    assert args.run.__name__ == "cmd_refit" and args.bootstrap > 0  # the nightly fits carry intervals


def test_systemd_service_and_timer():
    service = (DEPLOY / "systemd" / "scaleplan-refit.service").read_text()
    timer = (DEPLOY / "systemd" / "scaleplan-refit.timer").read_text()
    assert re.search(r"^Type=oneshot$", service, flags=re.M)
    exec_start = re.search(r"^ExecStart=\S+python -m fits (refit.*)$", service, flags=re.M)
    assert exec_start
    assert_refit_arguments_parse(shlex.split(exec_start.group(1)))
    assert re.search(r"^Unit=scaleplan-refit\.service$", timer, flags=re.M)
    assert re.search(r"^OnCalendar=", timer, flags=re.M) and "WantedBy=timers.target" in timer
    api = (DEPLOY / "systemd" / "scaleplan-api.service").read_text()
    assert "python -m api" in api and "SCALEPLAN_API_KEYS_FILE" in api


def test_kubernetes_cronjob_forbids_concurrent_refits():
    job = yaml.safe_load((DEPLOY / "k8s" / "refit-cronjob.yaml").read_text())
    assert job["kind"] == "CronJob" and job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][:4] == ["python", "-m", "fits", "refit"]
    assert_refit_arguments_parse(container["command"][3:])
    assert {"name": "SCALEPLAN_DB", "value": "/data/scaleplan.db"} in container["env"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    claim = pod["volumes"][0]["persistentVolumeClaim"]["claimName"]
    api_docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "api.yaml").read_text()))
    assert any(d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == claim for d in api_docs)
    # SQLite's locks need one node: the job is placed beside the API pod.
    affinity = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert affinity["topologyKey"] == "kubernetes.io/hostname"
