"""python -m planner: readable tables, --json Plans, and one-line errors with exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import pytest

from planner import Frontier, Plan, Prediction
from planner.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_table_and_json(db_file, capsys):
    code, out, err = run(capsys, "plan", "--compute", "1e21")
    assert code == 0 and err == ""
    assert "Plan 1" in out and "besiroglu2024" in out and "predicted loss" in out and "alternatives" in out
    code, out, _ = run(capsys, "plan", "--pf-days", "11.574", "--fit", "kaplan2020", "--json")
    plan = msgspec.json.decode(out, type=Plan)
    assert code == 0 and plan.id == 2 and plan.fit.name == "kaplan2020"


def test_plan_hardware_and_constraints(db_file, capsys):
    code, out, _ = run(
        capsys,
        "plan",
        "--gpu",
        "H100",
        "--gpus",
        "64",
        "--hours",
        "72",
        "--mfu",
        "0.45",
        "--price",
        "2.5",
        "--unique-tokens",
        "300B",
        "--max-params",
        "70B",
        "--json",
    )
    plan = msgspec.json.decode(out, type=Plan)
    assert code == 0 and plan.time.gpus == 64 and plan.time.mfu == 0.45 and plan.time.cost > 0
    assert plan.request.unique_tokens == 3e11 and plan.request.max_params == 7e10
    code, out, _ = run(capsys, "plan", "--target-loss", "2.5", "--inference-tokens", "1e12", "--json")
    assert code == 0 and msgspec.json.decode(out, type=Plan).predicted_loss.mean == pytest.approx(2.5, abs=1e-4)


def test_show_and_list(db_file, capsys):
    run(capsys, "plan", "--compute", "1e20")
    code, out, _ = run(capsys, "show", "1", "--json")
    assert code == 0 and msgspec.json.decode(out, type=Plan).id == 1
    code, out, _ = run(capsys, "show", "1")
    assert code == 0 and out.startswith("Plan 1")
    code, out, _ = run(capsys, "list")
    assert code == 0 and "besiroglu2024" in out


def test_idempotency_key(db_file, capsys):
    _, first, _ = run(capsys, "plan", "--compute", "1e20", "--idempotency-key", "k1", "--json")
    _, again, _ = run(capsys, "plan", "--compute", "1e20", "--idempotency-key", "k1", "--json")
    assert msgspec.json.decode(first, type=Plan).id == msgspec.json.decode(again, type=Plan).id


def test_frontier_table_json_and_plot(db_file, capsys, tmp_path):
    png = tmp_path / "f.png"
    code, out, _ = run(capsys, "frontier", "--from", "1e18", "--to", "1e24", "--plot", str(png))
    assert code == 0 and out.count("\n") >= 8 and png.stat().st_size > 10_000
    code, out, _ = run(
        capsys, "frontier", "--from", "1e18", "--to", "1e20", "--per-decade", "2", "--fit", "kaplan2020", "--json"
    )
    result = msgspec.json.decode(out, type=Frontier)
    assert code == 0 and len(result.rows) == 5 and result.fit.name == "kaplan2020"


def test_predict(db_file, capsys):
    code, out, _ = run(capsys, "predict", "--params", "1e9", "--tokens", "2e10", "--json")
    assert code == 0 and msgspec.json.decode(out, type=Prediction).params == 1e9
    code, out, _ = run(
        capsys, "predict", "--params", "1e9", "--steps", "6.5e4", "--batch", "524288", "--fit", "kaplan2020"
    )
    assert code == 0 and "predicted loss  2.599" in out  # spec §19 Q3: 6.5e4 steps reach 2.6


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["plan", "--compute", "0"], "compute_flops (--compute)"),
        (["plan", "--compute", "-1e21"], "compute_flops (--compute)"),
        (["plan", "--compute", "nan"], "compute_flops (--compute)"),
        (["plan", "--compute", "inf"], "compute_flops (--compute)"),
        (["plan", "--compute", "lots"], "compute_flops (--compute)"),
        (["plan"], "compute_flops (--compute)"),
        (["plan", "--compute", "1e21", "--fit", "nonesuch"], "fit (--fit)"),
        (["plan", "--target-loss", "1.5"], "target_loss (--target-loss)"),
        (["plan", "--compute", "1e21", "--min-batch", "4e6", "--max-batch", "1e6"], "min_batch_tokens (--min-batch)"),
        (["plan", "--hours", "10"], "hardware (--gpu)"),
        (["plan", "--compute", "1e21", "--gpus", "8"], "hardware.gpu (--gpu)"),
        (["plan", "--compute", "1e21", "--gpu", "H100", "--gpus", "2.5"], "hardware.count (--gpus)"),
        (["plan", "--compute", "1e21", "--gpu", "TPU"], "hardware.gpu (--gpu)"),
        (["show", "999"], "no plan with id 999"),
        (["show", "abc"], "id"),
        (["predict", "--params", "1e9"], "tokens (--tokens)"),
        (["frontier", "--from", "1e22", "--to", "1e18"], "stop (--to)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(db_file, capsys, argv, field):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and field in err


def test_argument_errors_are_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--compute", "1e21", "--hyperparams", "adam"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "invalid choice" in err


def test_module_entry_point_exit_code(db_file):
    env = {**os.environ, "SCALEPLAN_DB": str(db_file)}
    bad = subprocess.run(
        [sys.executable, "-m", "planner", "plan", "--compute", "-5"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == "error: compute_flops (--compute): must be > 0, got -5.0"
