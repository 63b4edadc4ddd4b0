"""Variable projection, outliers, --law auto by backtest, predictive intervals and their command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fits.errors import BadInput
from fits.fitting.auto import Candidate, calibrate, fit_auto, noise_scale, predict_interval
from fits.fitting.chinchilla_fit import ChinchillaForm
from fits.fitting.engine import fit_form
from fits.fitting.form import nd_points
from fits.fitting.linear_forms import BrokenDLinear, ChinchillaLinear, KaplanNDLinear
from fits.fitting.varpro import _Problem, batched_nnls, fit_linear
from fits.laws import chinchilla as chin
from fits.laws.registry import get_law

REPO = Path(__file__).resolve().parents[1]
TRUTH = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}


def synthetic(seed: int, sizes=(5e7, 1e8, 2e8, 4e8, 8e8), per=6, noise=0.01, truth=TRUTH):
    rng = np.random.default_rng(seed)
    N = np.repeat(np.array(sizes), per)
    D = np.concatenate([np.geomspace(5 * n, 80 * n, per) for n in sizes])
    L = np.asarray(chin.loss(N, D, **truth)) * np.exp(rng.normal(0, noise, N.size))
    return N, D, L


def test_batched_nnls_is_exact():
    from scipy.optimize import nnls

    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, (40, 12, 3))
    y = rng.normal(0, 1, (40, 12))
    w = rng.uniform(0.5, 2, (40, 12))
    c, sse = batched_nnls(X, y, w)
    for p in range(40):
        s = np.sqrt(w[p])
        _ref, rnorm = nnls(X[p] * s[:, None], y[p] * s)
        assert sse[p] == pytest.approx(rnorm**2, rel=1e-8, abs=1e-10)
        assert np.all(c[p] >= 0)


@pytest.mark.parametrize("form", [ChinchillaLinear(), KaplanNDLinear(), BrokenDLinear()])
def test_analytic_jacobian_matches_differences(form):
    N, D, L = synthetic(0)
    bound = form.prepare(N, D, L)
    prob = _Problem(bound, N, D, L, None, 1.0)
    lo, hi = prob.bounds()
    theta = lo + (np.minimum(hi, 3.0) - lo) * 0.4
    J = prob.jacobian(theta)
    eye = np.eye(theta.size) * 1e-6
    Jn = np.array([(prob.data_residuals(theta + e) - prob.data_residuals(theta - e)) / 2e-6 for e in eye]).T
    assert np.max(np.abs(J - Jn)) <= 1e-5 * max(1.0, np.max(np.abs(Jn)))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), alpha=st.floats(0.2, 0.6), beta=st.floats(0.2, 0.6),
       noise=st.sampled_from([0.002, 0.01, 0.03]))
def test_varpro_no_worse_than_the_grid(seed, alpha, beta, noise):
    """On the same objective and bounds, the VarPro optimum is at or below the 4,500-start grid's."""
    truth = {**TRUTH, "alpha": alpha, "beta": beta}
    N, D, L = synthetic(seed, sizes=(1e8, 3e8, 1e9), per=5, noise=noise, truth=truth)
    points = nd_points(N, D, L)
    form = ChinchillaForm.for_points(points)
    grid = fit_form(form, points, starts=form.grid(), keep_outliers=True)
    vp = fit_linear(ChinchillaLinear(), N, D, L)
    assert vp.objective <= grid.objective * (1 + 1e-6) + 1e-12


def test_outlier_is_excluded_and_named_and_can_be_kept():
    N, D, L = synthetic(1, noise=0.005)
    L = L.copy()
    L[7] *= 1.3  # a mis-read point
    res = get_law("chinchilla").fit({"N": N, "D": D, "loss": L})
    assert [e.row for e in res.excluded] == [8]
    assert "robust standard deviations" in res.excluded[0].reason
    kept = get_law("chinchilla").fit({"N": N, "D": D, "loss": L}, keep_outliers=True)
    assert kept.excluded == [] and kept.n_points == L.size
    assert res.n_points == L.size - 1
    assert abs(res.coefficients["beta"] - TRUTH["beta"]) < abs(kept.coefficients["beta"] - TRUTH["beta"]) + 0.02


def test_auto_reports_candidates_and_intervals_cover():
    N, D, L = synthetic(2)
    auto = fit_auto(N, D, L, bootstrap=15, seed=1)
    rep = auto.report
    names = [c.law for c in rep.candidates]
    assert {"chinchilla", "kaplan-nd", "chinchilla-e", "broken-d"} <= set(names)
    assert sum(c.chosen for c in rep.candidates) == 1 and rep.law in names
    assert all(c.backtest is not None and c.folds for c in rep.candidates)
    pred = predict_interval(auto, np.array([2e9, 4e9]), np.array([4e10, 8e10]), 0.8)
    truth = np.asarray(chin.loss(np.array([2e9, 4e9]), np.array([4e10, 8e10]), **TRUTH))
    for p, t in zip(pred, truth, strict=True):
        assert p.low < p.mean < p.high
        assert p.low <= t <= p.high  # 5× beyond the largest size fitted, the 80% interval still holds the truth
        assert abs(p.mean / t - 1) < 0.06
    wider = predict_interval(auto, np.array([2e9]), np.array([4e10]), 0.95)[0]
    assert wider.high - wider.low > pred[0].high - pred[0].low


def test_interval_of_the_mean_leaves_out_one_runs_noise():
    N, D, L = synthetic(3)
    auto = fit_auto(N, D, L, laws=["chinchilla"], bootstrap=15, seed=2)
    run = predict_interval(auto, [2e9], [4e10], 0.8, of="run")[0]
    mean = predict_interval(auto, [2e9], [4e10], 0.8, of="mean")[0]
    assert run.mean == pytest.approx(mean.mean)
    assert mean.low > run.low and mean.high < run.high
    with pytest.raises(BadInput):
        predict_interval(auto, [2e9], [4e10], 0.8, of="median")


def test_noise_scale_corrects_for_the_coefficients_fitted():
    rng = np.random.default_rng(0)
    r = rng.normal(0.0, 0.01, 30)
    assert noise_scale(r, 5) == pytest.approx(noise_scale(r, 0) * np.sqrt(30 / 25))
    wild = r.copy()
    wild[0] = 0.5  # one wild residual moves the winsorised scale by little
    assert noise_scale(wild, 5) < 1.5 * noise_scale(r, 5)


def test_calibration_widens_an_overconfident_bootstrap():
    """Fold errors five times what the fold bootstraps predict: the factor comes out near 5; errors the
    bootstrap explains leave it at 1."""
    rng = np.random.default_rng(1)
    var = [(np.full(40, 0.01**2), 0.0) for _ in range(4)]
    cand = Candidate(law=None, form=None, fit=None)  # type: ignore[arg-type]
    cand.fold_errors = [rng.normal(0.0, 0.05, 40) for _ in range(4)]
    k = calibrate(cand, var, noise=1e-4)
    assert 3.5 < k < 7.0
    cand.fold_errors = [rng.normal(0.0, 0.008, 40) for _ in range(4)]
    assert calibrate(cand, var, noise=1e-4) == 1.0


def test_a_bend_in_the_data_term_is_flagged_and_averaged():
    """A broken power law in D (β 0.37 → 0.55 above 3e10 tokens) on a dense isoFLOP grid: the nested test
    finds that the Chinchilla form leaves structure, both forms then weigh fully in the prediction."""
    rng = np.random.default_rng(5)
    budgets = np.geomspace(1e18, 3e21, 12)
    n_opt = 0.1 * np.sqrt(budgets / 6)
    N = (n_opt[:, None] * np.geomspace(0.2, 5.0, 12)[None, :]).ravel()
    D = np.repeat(budgets, 12) / (6 * N)
    t = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478}
    data = np.where(D <= 3e10, t["B"] / D**0.37, t["B"] / 3e10**0.37 * (D / 3e10) ** -0.55)
    L = (t["E"] + t["A"] / N ** t["alpha"] + data) * np.exp(rng.normal(0, 0.01, N.size))
    auto = fit_auto(N, D, L, laws=["chinchilla", "broken-d"], bootstrap=0)
    assert auto.report.misspecified
    assert any("broken-d fits the points better than chinchilla" in w for w in auto.report.warnings)
    assert all(c.competitive and c.weight == 1.0 for c in auto.candidates)


def test_isoflop_points_get_an_approach2_allocation_next_to_the_form():
    rng = np.random.default_rng(7)
    budgets = np.geomspace(1e18, 1e20, 5)
    opt = chin.optimal_allocation(budgets, **TRUTH)
    N = (opt.N[:, None] * np.geomspace(0.25, 4.0, 7)[None, :]).ravel()
    D = np.repeat(budgets, 7) / (6 * N)
    L = np.asarray(chin.loss(N, D, **TRUTH)) * np.exp(rng.normal(0, 0.005, N.size))
    alloc = fit_auto(N, D, L, laws=["chinchilla"], bootstrap=0).report.allocation
    truth = TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])
    assert alloc is not None and len(alloc.vertices) == 5
    assert abs(alloc.exponent - truth) < 0.05 and alloc.law_exponent == pytest.approx(truth, abs=0.05)
    assert set(alloc.backtest) == {"approach2", "chinchilla"} and alloc.method in alloc.backtest
    assert alloc.n_opt[1] < alloc.n_opt[0] < alloc.n_opt[2]
    # A grid of 5 sizes × 6 token counts has no profile of 3 sizes at one compute: no Approach 2.
    assert fit_auto(*synthetic(1), laws=["chinchilla"], bootstrap=0).report.allocation is None


def test_few_sizes_warn_undetermined():
    N, D, L = synthetic(4, sizes=(1e8, 1.5e8, 2e8), per=5)
    auto = fit_auto(N, D, L, laws=["chinchilla"], bootstrap=20)
    assert any(w.startswith("undetermined") for w in auto.report.warnings)


# ------------------------------------------------------------------------------------------ command line


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SCALEPLAN_DB": str(cwd / "fits.db")}
    return subprocess.run([sys.executable, "-m", "fits", *args], capture_output=True, text=True, env=env, cwd=cwd)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    N, D, L = synthetic(5)
    group = np.repeat(np.arange(5), 6)
    rows = "".join(f"{n:.17g},{d:.17g},{l:.17g},run{g}\n" for n, d, l, g in zip(N, D, L, group, strict=True))
    (tmp_path / "train.csv").write_text("N,D,loss,group\n" + rows)
    (tmp_path / "targets.csv").write_text("N,D,note\n4e9,8e10,big\n1e9,2e10,mid\n")
    return tmp_path


def test_cli_predictions_json(files: Path, monkeypatch, capsys):
    code, out, err = run_in_process(["fit", "--law", "auto", "--data", "train.csv", "--predict", "targets.csv",
                                     "--interval", "0.9", "--bootstrap", "20", "--json"], files, monkeypatch, capsys)
    assert code == 0, err
    out = json.loads(out)
    assert out["law"] in {c["law"] for c in out["candidates"]}
    assert list(out["coefficients"]) == ["E", "A", "B", "alpha", "beta"]
    preds = out["predictions"]
    assert [set(p) for p in preds] == [{"N", "D", "mean", "low", "high"}] * 2
    assert [(p["N"], p["D"]) for p in preds] == [(4e9, 8e10), (1e9, 2e10)]
    assert all(p["low"] < p["mean"] < p["high"] for p in preds)
    assert not (files / "fits.db").exists()


def test_cli_table_save_and_predict(files: Path, monkeypatch, capsys):
    code, out, err = run_in_process(["fit", "--law", "chinchilla", "--data", "train.csv", "--predict", "targets.csv",
                                     "--bootstrap", "20", "--save", "--name", "mine"], files, monkeypatch, capsys)
    assert code == 0, err
    assert "80% interval" in out and "saved: fit" in out
    code, out, err = run_in_process(["predict", "--fit", "mine", "--points", "targets.csv", "--interval", "0.5",
                                     "--json"], files, monkeypatch, capsys)
    assert code == 0, err
    preds = json.loads(out)["predictions"]
    assert len(preds) == 2 and all(p["low"] < p["mean"] < p["high"] for p in preds)


def test_cli_subprocess_end_to_end(files: Path):
    """One real process: python -m fits fit --predict FILE --json prints exactly one JSON object."""
    proc = run_cli("fit", "--law", "chinchilla", "--data", "train.csv", "--predict", "targets.csv", "--bootstrap",
                   "10", "--json", cwd=files)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["predictions"]) == 2


def run_in_process(args: list[str], files: Path, monkeypatch, capsys) -> tuple[int, str, str]:
    """The command line in this process (no interpreter start-up): exit status, stdout, stderr."""
    from fits.cli import main

    monkeypatch.chdir(files)
    monkeypatch.setenv("SCALEPLAN_DB", str(files / "fits.db"))
    try:
        code = main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("N,D\n4e9,8e10\n1e9,-2\n", "targets.csv line 3, column D: must be > 0"),
        ("N,X\n4e9,8e10\n", "missing column D"),
        ("N,D\n4e9,abc\n", "line 2, column D: not a number"),
    ],
)
def test_cli_bad_targets_exit_2_nothing_written(files: Path, content: str, needle: str, monkeypatch, capsys):
    (files / "targets.csv").write_text(content)
    code, out, err = run_in_process(["fit", "--law", "chinchilla", "--data", "train.csv", "--predict", "targets.csv",
                                     "--save"], files, monkeypatch, capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
    assert not (files / "fits.db").exists()


def test_cli_bad_interval_and_unfittable_law(files: Path, monkeypatch, capsys):
    code, _, err = run_in_process(["fit", "--law", "chinchilla", "--data", "train.csv", "--predict", "targets.csv",
                                   "--interval", "1.5"], files, monkeypatch, capsys)
    assert code == 2 and "interval" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_in_process(["fit", "--law", "kaplan-ns", "--data", "train.csv", "--predict", "targets.csv"],
                                  files, monkeypatch, capsys)
    assert code == 2 and "kaplan-ns" in err and len(err.strip().splitlines()) == 1
    assert not (files / "fits.db").exists()
