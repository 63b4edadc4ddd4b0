"""``python -m fits``: fitting from CSV, the store commands, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_file

from fits.cli import main
from fits.laws import kaplan2020 as k20
from fits.laws.chinchilla import BESIROGLU2024_INTERVALS

REPO = Path(__file__).resolve().parents[1]
EPOCH_POINTS = ("data", "chinchilla-epoch", "points.csv")
"""Under ../shared: the tests that read it skip without it."""


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fits", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def nd_csv(tmp_path: Path) -> Path:
    n, d = np.meshgrid(np.logspace(6, 9, 4), np.logspace(8, 10, 4))
    n, d = n.ravel(), d.ravel()
    loss = k20.loss_nd(n, d, **k20.nd_coefficients())
    rows = [f"{a},{b},{c},x" for a, b, c in zip(n, d, loss, strict=True)]
    return write_csv(tmp_path / "nd.csv", "N,D,loss,comment", rows)


@pytest.fixture
def epoch_csv(tmp_path: Path) -> Path:
    lines = shared_file(*EPOCH_POINTS).read_text().splitlines()
    rows = sorted(lines[1:], key=lambda r: float(r.split(",")[-1]))[:-5]  # drop the 5 highest-loss rows
    return write_csv(tmp_path / "epoch240.csv", lines[0], rows)


def test_epoch_fit_through_the_cli(epoch_csv: Path):
    proc = run_cli("fit", "--law", "chinchilla", "--data", str(epoch_csv), "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = json.loads(proc.stdout)  # exactly one JSON object
    for key in ("law", "coefficients", "intervals", "objective", "n_points", "starts", "seconds", "converged",
                "warnings", "diagnostics"):
        assert key in out
    assert list(out["coefficients"]) == ["E", "A", "B", "alpha", "beta"]
    for name, (lo, hi) in BESIROGLU2024_INTERVALS.items():
        assert lo <= out["coefficients"][name] <= hi
    assert out["objective"] <= 1.03e-3
    assert out["n_points"] == 240 and out["starts"] >= 4500 and out["converged"]


def test_human_output_is_a_table(nd_csv: Path, capsys):
    assert main(["fit", "--law", "kaplan-nd", "--data", str(nd_csv), "--budget", "1e20"]) == 0
    out = capsys.readouterr().out
    assert "kaplan-nd fit of 16 points from nd.csv" in out
    assert "coefficient" in out and "alpha_N" in out and "objective" in out
    assert "N_opt(C=1e+20)" in out


def test_bootstrap_json_has_intervals_and_no_progress_off_a_terminal(nd_csv: Path):
    proc = run_cli("fit", "--law", "kaplan-nd", "--data", str(nd_csv), "--bootstrap", "40", "--seed", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # stderr is a pipe here: no progress bar
    out = json.loads(proc.stdout)
    assert out["bootstrap"] == 40 and out["seed"] == 3
    for name, (lo, hi) in out["intervals"].items():
        assert lo <= out["coefficients"][name] <= hi


def test_save_list_show_export_import_activate(nd_csv: Path, tmp_path: Path, capsys):
    db = str(tmp_path / "s.db")
    assert main(["fit", "--law", "kaplan-nd", "--data", str(nd_csv), "--save", "--scope", "tiny", "--db", db,
                 "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["scope"] == "tiny" and saved["version"] == 1 and saved["active"] is False

    assert main(["list", "--db", db, "--scope", "tiny", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [f["id"] for f in listed] == [saved["id"]]
    assert listed[0]["provenance"]["data"].startswith("nd.csv (sha256 ")

    assert main(["show", str(saved["id"]), "--db", db]) == 0
    assert "kaplan-nd, scope 'tiny', version 1" in capsys.readouterr().out

    exported = tmp_path / "fit.json"
    assert main(["export", str(saved["id"]), "--db", db, "-o", str(exported)]) == 0
    assert json.loads(exported.read_text())["coefficients"] == saved["coefficients"]

    assert main(["import", str(exported), "--db", db, "--activate", "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["version"] == 2 and imported["active"] is True
    assert imported["coefficients"] == saved["coefficients"]

    assert main(["activate", str(saved["id"]), "--db", db]) == 0
    assert "is now the active kaplan-nd fit of 'tiny'" in capsys.readouterr().out
    assert main(["list", "--db", db, "--json"]) == 0
    active = [f for f in json.loads(capsys.readouterr().out) if f["scope"] == "tiny" and f["active"]]
    assert [f["id"] for f in active] == [saved["id"]]

    assert main(["show", "besiroglu2024", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["coefficients"]["E"] == pytest.approx(1.8172)


def test_import_accepts_a_minimal_object(tmp_path: Path, capsys):
    db = str(tmp_path / "s.db")
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"law": "chinchilla", "coefficients": {"E": 1.7, "A": 400, "B": 400, "alpha": 0.34,
                                                                   "beta": 0.28}}))
    assert main(["import", str(f), "--db", db, "--scope", "mine", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scope"] == "mine" and out["provenance"]["source"] == "imported"


BAD_CSV = [
    ("N,loss\n1e9,3.0\n", "missing column D"),
    ("N,D,loss\n1e9,2e10,3.1\n2e9,abc,3.0\n", "line 3, column D: not a number: 'abc'"),
    ("N,D,loss\n1e9,2e10,nan\n", "line 2, column loss: not a finite number"),
    ("N,D,loss\n1e9,2e10,inf\n", "line 2, column loss: not a finite number"),
    ("N,D,loss\n1e9,2e10,3.0\n0,2e10,3.0\n", "line 3, column N: must be > 0"),
    ("N,D,loss\n1e9,-2e10,3.0\n", "line 2, column D: must be > 0"),
    ("N,D,loss\n1e9,,3.0\n", "line 2, column D: empty value"),
    ("N,D,loss\n1e9,2e10,3.0\n2e9,3e10,2.9\n4e9,5e10,2.8\n", "3 points, fewer than the 5 coefficients"),
    ("N,D,loss\n" + "".join(f"1e9,{d},3.0\n" for d in (1e9, 2e9, 4e9, 8e9, 1.6e10, 3.2e10)), "same model size"),
    ("", "empty file"),
    ("N,D,loss\n", "no data rows"),
]


@pytest.mark.parametrize(("content", "message"), BAD_CSV)
def test_bad_csv_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, content: str, message: str, capsys):
    data = tmp_path / "bad.csv"
    data.write_text(content)
    db = tmp_path / "never.db"
    rc = main(["fit", "--law", "chinchilla", "--data", str(data), "--save", "--db", str(db)])
    err = capsys.readouterr()
    assert rc == 2
    assert err.out == ""
    assert err.err.count("\n") == 1 and message in err.err, err.err
    assert not db.exists()


def test_bad_input_leaves_an_existing_database_untouched(tmp_path: Path, capsys):
    db = tmp_path / "s.db"
    assert main(["list", "--db", str(db)]) == 0
    before = sqlite3.connect(db).execute("SELECT COUNT(*) FROM fits").fetchone()[0]
    bad = write_csv(tmp_path / "bad.csv", "N,D,loss", ["1e9,2e10,-1"])
    assert main(["fit", "--law", "chinchilla", "--data", str(bad), "--save", "--db", str(db)]) == 2
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM fits").fetchone()[0] == before
    capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "--law", "kaplan", "--data", "x.csv"], "invalid choice: 'kaplan'"),
        (["fit", "--law", "nope", "--data", "x.csv"], "argument --law: invalid choice"),
        (["fit", "--law", "chinchilla", "--data", "/nonexistent/x.csv"], "cannot read"),
        (["fit", "--law", "chinchilla", "--data", "x.csv", "--bootstrap", "-3"], "--bootstrap: must be >= 0"),
        (["fit", "--law", "chinchilla", "--data", "x.csv", "--predict", "1e9"], "expected N,X"),
        (["show", "no-such-fit"], "no fit named 'no-such-fit'"),
        (["activate", "999999"], "no fit with id 999999"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(args: list[str], message: str, tmp_path: Path):
    proc = run_cli(*args, "--db", str(tmp_path / "s.db"))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_kaplan_ns_needs_its_columns_and_accepts_warmup(tmp_path: Path, capsys):
    missing = write_csv(tmp_path / "ns.csv", "N,step,loss", ["1e7,100,4.0"])
    assert main(["fit", "--law", "kaplan-ns", "--data", str(missing)]) == 2
    assert "missing column B for kaplan-ns" in capsys.readouterr().err
    bad_warmup = write_csv(tmp_path / "w.csv", "N,B,step,loss,warmup", ["1e7,512,100,4.0,-5"])
    assert main(["fit", "--law", "kaplan-ns", "--data", str(bad_warmup)]) == 2
    assert "column warmup: must be >= 0" in capsys.readouterr().err
    assert main(["fit", "--law", "chinchilla", "--data", str(bad_warmup), "--warmup", "10"]) == 2
    assert "--warmup applies to kaplan-ns only" in capsys.readouterr().err


def test_import_rejects_incomplete_coefficients(tmp_path: Path, capsys):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"law": "chinchilla", "coefficients": {"E": 1.7, "A": 400}}))
    db = tmp_path / "s.db"
    assert main(["import", str(f), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "B, alpha, beta missing for chinchilla" in err and err.count("\n") == 1


def test_help_texts_describe_the_commands():
    proc = run_cli("fit", "--help")
    assert proc.returncode == 0
    for words in ("--bootstrap", "N,D,loss", "N,B,step,loss", "held-out", "--scope", "'default'"):
        assert words in proc.stdout
    top = run_cli("--help")
    for command in ("fit", "refit", "list", "show", "activate", "import", "export"):
        assert command in top.stdout


def test_bootstrap_progress_shows_on_a_terminal(nd_csv: Path):
    import pty

    controller, terminal = pty.openpty()
    proc = subprocess.run(
        [sys.executable, "-m", "fits", "fit", "--law", "kaplan-nd", "--data", str(nd_csv), "--bootstrap", "150",
         "--json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=terminal, text=True, timeout=300,
    )
    os.close(terminal)
    shown = b""
    try:
        while chunk := os.read(controller, 4096):
            shown += chunk
    except OSError:
        pass
    os.close(controller)
    assert proc.returncode == 0
    assert b"bootstrap [" in shown and b"150/150" in shown
    assert json.loads(proc.stdout)["bootstrap"] == 150


def test_kaplan_ns_fit_from_csv_with_a_warmup_column(tmp_path: Path):
    rows = []
    for n in (3e6, 1e7, 3e7, 1e8):
        for step in (20, 40, 100, 200, 400, 800, 1600, 3200, 6400):
            loss = float(k20.loss_after_steps(n, step, 65536.0, **k20.ns_coefficients())) if step > 50 else 10.0
            rows.append(f"{n},65536,{step},{loss},50")
    data = write_csv(tmp_path / "curves.csv", "N,B,step,loss,warmup", rows)
    proc = run_cli("fit", "--law", "kaplan-ns", "--data", str(data), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["law"] == "kaplan-ns" and out["n_points"] == 4 * 7
    assert out["coefficients"]["alpha_S"] == pytest.approx(0.76, rel=0.05)


def test_kaplan_ns_fitted_batch_and_group_column_from_csv(tmp_path: Path, capsys):
    rows = []
    for run, (n, batch) in enumerate((n, b) for n in (6e3, 2e4, 6e4) for b in (512, 2048, 8192)):
        for step in range(40, 401, 40):
            loss = float(k20.loss_after_steps(n, step, batch, alpha_N=0.5, alpha_S=0.2, N_c=2e3, S_c=1e4,
                                              B_star=3000.0, alpha_B=100.0))
            rows.append(f"{n},{batch},{step},{loss},run-{run}")
    data = write_csv(tmp_path / "curves.csv", "N,B,step,loss,group", rows)
    proc = run_cli("fit", "--law", "kaplan-ns", "--data", str(data), "--batch", "fitted", "--bootstrap", "50",
                   "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert 2000 < k20.b_crit(2.0, **k20.batch_coefficients(out["coefficients"])) < 4500
    assert "batch profiled" in out["message"] and out["bootstrap"] == 50
    empty_group = write_csv(tmp_path / "g.csv", "N,D,loss,group", ["1e9,2e10,3.0,"])
    assert main(["fit", "--law", "chinchilla", "--data", str(empty_group)]) == 2
    assert "column group: empty value" in capsys.readouterr().err
    assert main(["fit", "--law", "chinchilla", "--data", str(empty_group), "--batch", "fitted"]) == 2
    assert "--batch applies to kaplan-ns only" in capsys.readouterr().err
