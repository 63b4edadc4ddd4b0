"""Checks: the stored record, the comparisons, bad input to the CLI, and one real check end to end."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pytest

from fits.fit import Fit, Provenance
from fits.laws import chinchilla
from fits.laws import kaplan2020 as k20
from verifier.check import items as compare
from verifier.check.records import (
    Check,
    CheckError,
    CheckItem,
    CheckNotFound,
    CheckSummary,
    create_check,
    get_check,
    list_checks,
    overall_verdict,
    save_check,
)
from verifier.runs import Run, RunPoint

REPO = Path(__file__).resolve().parents[1]
LAW = {"E": 1.2, "A": 40.0, "B": 60.0, "alpha": 0.35, "beta": 0.3}


def make_plan(db, compute: float = 1e21) -> int:
    from planner.request import PlanRequest
    from planner.service import make_plan as plan

    return plan(PlanRequest(compute_flops=compute), db).id


def fake_run(run_id: int, n: float, d: float, loss: float | None, *, role: str = "proxy", status: str = "complete",
             batch: int = 1024, warmup: int = 10) -> Run:
    return Run(id=run_id, scope="s", status=status, role=role, n_params=int(n), tokens=int(d), batch_tokens=batch,
               steps=int(d // batch), warmup_steps=warmup, final_val_loss=loss)


def chinchilla_fit(coefficients=LAW) -> Fit:
    return Fit(id=7, law="chinchilla", scope="s", coefficients=dict(coefficients),
               provenance=Provenance(source="fitted"))


# ---------------------------------------------------------------------------------------------- store


def test_check_round_trips_through_the_store(db) -> None:
    plan_id = make_plan(db)
    check = create_check(db, plan_id, "corpus:abc/bytes", CheckSummary(budget_seconds=60.0))
    assert check.id is not None and check.status == "running" and check.verdict is None
    item = CheckItem(kind="final_loss", name="run 1", predicted=2.0, observed=2.05, error=0.025,
                     metric="relative error", tolerance=0.05, rule="|error| <= 0.05", verdict="pass", run_ids=[1])
    done = msgspec.structs.replace(check, status="complete", verdict="pass", items=[item], plot_path="/x.png",
                                   refit_fit_ids=[4, 5])
    stored = save_check(db, done)
    assert stored == get_check(db, check.id)
    assert stored.items == [item] and stored.refit_fit_ids == [4, 5] and stored.summary.budget_seconds == 60.0
    other = create_check(db, plan_id, "corpus:abc/bytes")
    assert [c.id for c in list_checks(db, plan_id)] == [check.id, other.id]
    assert list_checks(db, plan_id + 1000) == []
    with pytest.raises(CheckNotFound):
        get_check(db, 99999)


def _item(verdict: str, p: float | None = None, kind: str = "final_loss") -> CheckItem:
    return CheckItem(kind=kind, name="x", predicted=1.0, observed=1.0, error=0.0, metric="m", tolerance=1.96, rule="r",
                     verdict=verdict, p_value=p)


def test_overall_verdict() -> None:
    assert overall_verdict([_item("pass", 0.5), _item("skip")]) == "pass"
    assert overall_verdict([_item("pass", 0.5), _item("fail", 0.01)]) == "fail"  # 0.01 <= 0.05 / 2 after Holm
    assert overall_verdict([_item("pass", 0.5), _item("fail")]) == "fail"  # a failed rule without a p-value
    assert overall_verdict([_item("skip")]) == "inconclusive"
    assert overall_verdict([_item("pass", 0.5), _item("inconclusive")]) == "inconclusive"
    assert overall_verdict([_item("fail", 1e-4), _item("inconclusive")]) == "fail"
    assert overall_verdict([]) == "inconclusive"
    # the plan's claims decide between pass and inconclusive once the check has them
    core = [_item("pass", 0.4, "allocation"), _item("pass", 0.3, "allocation_exponent")]
    assert overall_verdict([*core, _item("inconclusive")]) == "pass"
    assert overall_verdict([core[0], _item("inconclusive", kind="allocation_exponent")]) == "inconclusive"
    # intervals that cover significantly less than they claim fail the check
    assert overall_verdict(core, coverage_low_p=0.01) == "fail"
    assert overall_verdict(core, coverage_low_p=0.2) == "pass"


def test_holm_keeps_a_check_of_many_items_from_failing_by_chance() -> None:
    """25 items whose predictions are right: one or two land outside their 95% intervals in most checks, and
    the family-wise test fails about 5% of such checks; a single real miss (z = 5) still fails."""
    from verifier.check import stats
    from verifier.check.records import family_test

    rng = np.random.default_rng(3)
    any_outside = family_fails = 0
    repeats = 2000
    for _ in range(repeats):
        z = rng.standard_normal(25)
        items = [_item("fail" if abs(x) > 1.96 else "pass", stats.p_two_sided(float(x))) for x in z]
        any_outside += any(i.verdict == "fail" for i in items)
        family_fails += bool(family_test(items).significant)
    assert any_outside / repeats == pytest.approx(1 - 0.95**25, abs=0.04)
    assert family_fails / repeats <= 0.065
    miss = [_item("pass", 0.5)] * 24 + [_item("fail", stats.p_two_sided(5.0))]
    assert overall_verdict(miss) == "fail"
    # a tiny p on an item its own rule passes (a curve's rms over correlated points) does not fail the check
    assert overall_verdict([_item("pass", 0.5)] * 24 + [_item("pass", 1e-6, "curve")]) == "pass"
    assert [i.p_value for i in family_test(miss).significant] == [stats.p_two_sided(5.0)]


# ---------------------------------------------------------------------------------------------- comparisons


def test_predict_final_for_each_family() -> None:
    assert compare.predict_final(chinchilla_fit(), 1e4, 1e6) == pytest.approx(chinchilla.loss(1e4, 1e6, **LAW))
    nd = Fit(law="kaplan-nd", scope="s", coefficients=k20.nd_coefficients(), provenance=Provenance(source="x"))
    assert compare.predict_final(nd, 1e8, 1e10) == pytest.approx(k20.loss_nd(1e8, 1e10))
    ns = Fit(law="kaplan-ns", scope="s", coefficients=k20.ns_coefficients(), provenance=Provenance(source="x"))
    assert compare.predict_final(ns, 1e8, 0, steps=10_000, batch_tokens=2**19) == pytest.approx(
        k20.loss_after_steps(1e8, 10_000, 2**19))
    with pytest.raises(ValueError):
        compare.predict_final(ns, 1e8, 1e10)


def test_final_item_is_judged_by_z_against_its_registered_interval() -> None:
    from verifier.check import experiment, stats

    pred = stats.Predictive(mean=2.0, sigma=0.05)
    inside = experiment.final_item(fake_run(1, 1e4, 1e6, 2.09), pred, chinchilla_fit(), registered=True)
    assert inside.verdict == "pass" and inside.z == pytest.approx(1.8)
    assert inside.p_value == pytest.approx(stats.p_two_sided(1.8)) and inside.unit == "nats/byte"
    assert inside.interval95 == pytest.approx([2.0 - 1.96 * 0.05, 2.0 + 1.96 * 0.05], abs=1e-3)
    outside = experiment.final_item(fake_run(1, 1e4, 1e6, 2.2), pred, chinchilla_fit(), registered=True)
    assert outside.verdict == "fail" and outside.z == pytest.approx(4.0)
    failed = fake_run(1, 1e4, 1e6, None, status="failed")
    assert experiment.final_item(failed, pred, chinchilla_fit(), registered=True).verdict == "skip"


def test_curve_item_passes_on_its_own_law_and_fails_off_it() -> None:
    from verifier.check import experiment

    coefficients = {"alpha_N": 0.2, "alpha_S": 0.5, "N_c": 1e3, "S_c": 1e-2}
    ns = Fit(id=3, law="kaplan-ns", scope="s", coefficients=coefficients, provenance=Provenance(source="x"),
             active=True)
    run = fake_run(1, 2e4, 512 * 1000, 2.0, batch=512, warmup=50)
    steps = np.arange(0, 1001, 50)
    curve = compare.predict_curve(ns, 2e4, 512, steps[1:])
    points = [RunPoint(step=0, tokens=0, val_loss=5.5)]  # inside warm-up: ignored
    points += [RunPoint(step=int(s), tokens=int(s) * 512, val_loss=float(v))
               for s, v in zip(steps[1:], curve, strict=True)]
    item = experiment.curve_item(run, points, ns, 0.01)
    assert item.verdict == "pass" and item.error == pytest.approx(0.0, abs=1e-9) and item.p_value == 1.0
    shifted = [RunPoint(step=p.step, tokens=p.tokens, val_loss=p.val_loss * 1.03) for p in points]
    bad = experiment.curve_item(run, shifted, ns, 0.01)
    assert bad.verdict == "fail" and bad.error == pytest.approx(3.0, rel=1e-6) and bad.p_value < 1e-6


def test_early_stop_item_fails_stopping_too_early_and_too_late() -> None:
    from verifier.check import experiment

    run = fake_run(5, 2e4, 1e6, 2.4, role="early_stop")
    losses = {0: 5.0, 100: 3.0, 200: 2.5, 300: 2.3, 400: 2.35, 500: 2.5}
    points = [RunPoint(step=s, tokens=s * 1024, val_loss=v) for s, v in losses.items()]
    fit = chinchilla_fit()
    ok = experiment.early_stop_item(run, points, 200.0, fit, unique_tokens=1e5)
    assert ok.verdict == "pass" and ok.observed == 300 and ok.error == pytest.approx(math.log(1.5))
    early = experiment.early_stop_item(run, points, 900.0, fit, unique_tokens=1e5)
    assert early.verdict == "fail"  # best at 300 < half the bound: the data overfit sooner than eq. 5.7 allows
    late = experiment.early_stop_item(run, points, 50.0, fit, unique_tokens=1e5)
    assert late.verdict == "fail" and "more than" in late.note  # best at 6x the predicted stop
    assert experiment.early_stop_item(run, points, None, fit, unique_tokens=1e5).verdict == "skip"


def test_extrapolation_item_predicts_a_known_law_with_the_fitters_interval() -> None:
    """Chinchilla's form on 3 IsoFLOP profiles over 10x (0.5% noise) predicts a run at 10x their compute: the
    item is judged against the fitter's calibrated interval plus the seed noise, and it holds the truth."""
    from verifier.check import experiment

    rng = np.random.default_rng(0)
    runs = []
    for i, (c, f) in enumerate((c, f) for c in (1e11, 10**11.5, 1e12) for f in (0.25, 0.5, 1.0, 2.0, 4.0)):
        n = f * math.sqrt(c / 600)
        d = c / (6 * n)
        runs.append(fake_run(i + 1, n, d, float(chinchilla.loss(n, d, **LAW)) * (1 + 0.005 * rng.standard_normal())))
    n_big = math.sqrt(1e13 / 600)
    held = fake_run(99, n_big, 1e13 / (6 * n_big), float(chinchilla.loss(n_big, 1e13 / (6 * n_big), **LAW)),
                    role="heldout")
    item = experiment.extrapolation_item("chinchilla", runs, held, 0.005, seed=0)
    assert item.kind == "extrapolation" and item.run_ids == [99] and "10.0×" in item.name
    assert item.z is not None and abs(item.z) < 1.96 and item.verdict in ("pass", "inconclusive")
    assert item.interval95[0] < held.final_val_loss < item.interval95[1]
    assert "calibration" in item.note
    skip = experiment.extrapolation_item("chinchilla", runs[:1], held, 0.005, seed=0)
    assert skip.verdict == "skip" and "no fit" in skip.note


def test_s_stop_steps_is_eq_5_7_with_the_chinchilla_data_term() -> None:
    ns = Fit(law="kaplan-ns", scope="s", coefficients={"alpha_N": 0.1, "alpha_S": 0.8, "N_c": 1e6, "S_c": 50.0},
             provenance=Provenance(source="x"))
    fit = chinchilla_fit()
    u, n, batch = 2e5, 3e4, 1024
    excess = LAW["B"] / u ** LAW["beta"]
    s_min = 50.0 / excess ** (1 / 0.8)
    loss = chinchilla.loss(n, u, **LAW)
    expected = k20.steps_at_batch(s_min, batch, loss)
    assert compare.s_stop_steps(fit, ns, n, u, batch) == pytest.approx(expected)
    # More unique data: less overfitting excess, later stop.
    assert compare.s_stop_steps(fit, ns, n, 4 * u, batch) > compare.s_stop_steps(fit, ns, n, u, batch)


# ---------------------------------------------------------------------------------------------- CLI: bad input


def cli(*args: str) -> int:
    from verifier.cli import main

    return main(list(args))


def no_complete_runs(db) -> bool:
    return db.execute("SELECT COUNT(*) FROM runs WHERE status = 'complete'").fetchone()[0] == 0


@pytest.fixture
def plan_id(db) -> int:
    return make_plan(db)


def test_unknown_plan_is_bad_input(db, db_file, capsys) -> None:
    assert cli("check", "--plan", "424242", "--db", str(db_file), "--budget-minutes", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "424242" in err[0]
    assert no_complete_runs(db)


@pytest.mark.parametrize("case", ["missing", "empty", "binary"])
def test_unusable_corpus_is_bad_input(db, db_file, plan_id, tmp_path, capsys, case) -> None:
    path = tmp_path / f"{case}.txt"
    if case == "empty":
        path.write_text("")
    elif case == "binary":
        path.write_bytes(bytes(range(256)) * 64)
    assert cli("check", "--plan", str(plan_id), "--db", str(db_file), "--corpus", str(path),
               "--budget-minutes", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path.name) in err[0]
    assert no_complete_runs(db) and list_checks(db, plan_id) == []


def test_model_that_does_not_fit_in_memory_is_bad_input(db, db_file, plan_id, capsys) -> None:
    assert cli("check", "--plan", str(plan_id), "--db", str(db_file), "--memory", "0.0001",
               "--budget-minutes", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "memory" in err[0]
    assert no_complete_runs(db) and list_checks(db, plan_id) == []


def test_bad_budget_is_bad_input(db, db_file, plan_id, capsys) -> None:
    assert cli("check", "--plan", str(plan_id), "--db", str(db_file), "--budget-minutes", "-3") == 2
    assert "budget_minutes" in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_bad_input_in_a_real_process(db, db_file, plan_id) -> None:
    proc = subprocess.run([sys.executable, "-m", "verifier", "check", "--plan", str(plan_id), "--device", "cuda",
                           "--db", str(db_file), "--budget-minutes", "1"], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cuda" in lines[0].lower()
    assert no_complete_runs(db)


# ---------------------------------------------------------------------------------------------- end to end


@dataclass
class CheckedPlan:
    db_file: Path
    plan_id: int
    artifacts: Path
    work: Path
    proc: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def checked_plan(tmp_path_factory) -> CheckedPlan:
    """One real check of a plan on the default fit (a fresh scope, so a calibration ladder runs first), with half
    a minute of budget on the default corpus, in a working directory of its own: what the end-to-end test reads,
    and the calibrated scope the negative control starts from (a copy of this database)."""
    from fits.store import open_db

    root = tmp_path_factory.mktemp("checked")
    db_file, artifacts, work = root / "scaleplan.db", root / "artifacts", root / "work"
    work.mkdir()
    db = open_db(db_file)
    plan_id = make_plan(db)
    db.conn.close()
    proc = subprocess.run([sys.executable, "-m", "verifier", "check", "--plan", str(plan_id),
                           "--budget-minutes", "0.5"], capture_output=True, text=True, cwd=work,
                          env=_check_env(db_file, artifacts), timeout=900)
    return CheckedPlan(db_file=db_file, plan_id=plan_id, artifacts=artifacts, work=work, proc=proc)


def _check_env(db_file: Path, artifacts: Path) -> dict[str, str]:
    return {**os.environ, "SCALEPLAN_DB": str(db_file), "SCALEPLAN_ARTIFACTS": str(artifacts),
            "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}


@pytest.mark.slow
def test_check_end_to_end(checked_plan: CheckedPlan) -> None:
    """A check with half a minute of budget on the default corpus, from a plan on the default fit (a fresh
    scope, so a calibration ladder runs first): runs, points, the check, its picture and the refit are stored."""
    from fits.store import open_db

    proc, plan_id = checked_plan.proc, checked_plan.plan_id
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(checked_plan.work.iterdir()) == []  # the check leaves nothing in its working directory
    db = open_db(checked_plan.db_file)
    checks = list_checks(db, plan_id)
    assert len(checks) == 1
    check: Check = checks[0]
    assert check.status == "complete" and check.verdict in ("pass", "fail", "inconclusive")
    assert f"check {check.id} of plan {plan_id}" in proc.stdout and str(check.verdict).upper() in proc.stdout

    kinds = {i.kind for i in check.items}
    assert {"final_loss", "allocation", "extrapolation"} <= kinds
    for item in check.items:
        assert item.tolerance > 0 and item.rule and item.verdict in ("pass", "fail", "skip", "inconclusive")
        if item.verdict in ("pass", "fail"):
            assert item.predicted is not None and item.observed is not None and item.error is not None

    runs = db.execute("SELECT id, role, status, prediction, check_id FROM runs ORDER BY id").fetchall()
    roles = {r[1] for r in runs}
    assert {"calibration", "proxy", "isoflop"} <= roles
    assert all(r[4] == check.id for r in runs)
    completed = [r for r in runs if r[2] == "complete"]
    assert len(completed) >= 6
    for run_id, role, _, prediction, _ in completed:
        points = db.execute("SELECT COUNT(*) FROM run_points WHERE run_id = ? AND val_loss IS NOT NULL",
                            [run_id]).fetchone()[0]
        assert points >= 2
        if role in ("proxy", "isoflop"):
            assert msgspec.json.decode(prediction)["scope_fit"]["final_loss"] > 0  # recorded before training

    assert check.plot_path and Path(check.plot_path).is_file()
    assert Path(check.plot_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(check.plot_path).parent == checked_plan.artifacts
    assert check.summary.calibrated and check.summary.scope_fit is not None
    fits = db.execute("SELECT id, law, scope, heldout_error FROM fits WHERE scope = ?", [check.scope]).fetchall()
    assert {f[1] for f in fits} >= {"chinchilla"}
    assert set(check.refit_fit_ids) <= {f[0] for f in fits}
    assert check.summary.plan_exponents is not None and check.summary.plan_exponents.values["a"] == pytest.approx(
        0.3658 / (0.3478 + 0.3658), rel=1e-3)
    assert any(e.fit.law == "chinchilla" for e in check.summary.scope_exponents)
    db.conn.close()


@pytest.mark.slow
def test_negative_control_runs_the_same_design_for_a_plan_4x_off(checked_plan: CheckedPlan, tmp_path) -> None:
    """``--control wrong-allocation`` at a small budget: the plan's check first (it calibrates the scope; the
    end-to-end test's, on a copy of its database), then the control on the same scope; it completes, says it is
    a control, and cannot pass its allocation item (that a 4x error fails it when the profiles can tell is
    test_check_stats' allocation test)."""
    import sqlite3

    from fits.store import open_db

    assert checked_plan.proc.returncode == 0, checked_plan.proc.stderr[-3000:]
    db_file, plan_id = tmp_path / "scaleplan.db", checked_plan.plan_id
    with sqlite3.connect(checked_plan.db_file) as source, sqlite3.connect(db_file) as copy:
        source.backup(copy)
    proc = subprocess.run([sys.executable, "-m", "verifier", "check", "--plan", str(plan_id), "--budget-minutes",
                           "0.5", "--quiet", "--control", "wrong-allocation"], capture_output=True, text=True,
                          cwd=REPO, env=_check_env(db_file, tmp_path / "artifacts"), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    db = open_db(db_file)
    own, control = sorted(list_checks(db, plan_id), key=lambda c: c.id)
    assert own.summary.control is None and control.summary.control == "wrong-allocation"
    assert "negative control: wrong-allocation" in proc.stdout
    assert control.verdict in ("fail", "inconclusive")
    alloc = next(i for i in control.items if i.kind == "allocation")
    assert alloc.verdict in ("fail", "inconclusive") and "control" in alloc.name
    planned = [i.predicted for i in control.items if i.kind == "isoflop_vertex"]
    assert planned and all(p > 0 for p in planned)
    assert control.summary.seed_sigma is not None and control.summary.compute_span > 10
    db.conn.close()


def test_unknown_control_is_bad_input(db, plan_id) -> None:
    from verifier.check.orchestrate import run_check

    with pytest.raises(CheckError) as info:
        run_check(db, plan_id, budget_minutes=1, control="nope")
    assert info.value.field == "control"
    assert list_checks(db, plan_id) == []  # refused before anything was stored


@pytest.mark.slow
def test_a_check_stopped_by_sigterm_is_stored_failed_and_leaves_no_run_complete_unfinished(db, db_file,
                                                                                          tmp_path) -> None:
    """SIGTERM while the first runs train: the command exits non-zero, the check is stored "failed" with the
    signal named, no run stays pending or running, and every run marked complete has its final loss and curve."""
    import signal
    import time

    plan = make_plan(db)
    proc = subprocess.Popen([sys.executable, "-m", "verifier", "check", "--plan", str(plan), "--budget-minutes", "2",
                             "--quiet"], cwd=tmp_path, env=_check_env(db_file, tmp_path / "artifacts"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if db.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0]:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, 2), err[-2000:]
    (check,) = list_checks(db, plan)
    assert check.status == "failed" and "signal" in (check.summary.error or "")
    statuses = db.execute("SELECT status, final_val_loss, id FROM runs").fetchall()
    assert statuses and not [s for s in statuses if s[0] in ("pending", "running")]
    for status, final, run_id in statuses:
        if status == "complete":
            assert final is not None
            assert db.execute("SELECT COUNT(*) FROM run_points WHERE run_id = ?", [run_id]).fetchone()[0] >= 2


def test_a_scope_fit_is_bootstrapped_on_the_runs_it_was_made_from(db) -> None:
    """Runs that complete after a fit was stored are not its data: its spread must not shrink with them."""
    import time

    from fits.store import save_fit
    from verifier import runs as runs_mod
    from verifier.check.orchestrate import fitted_runs

    def run(loss: float) -> int:
        return runs_mod.create_ingested_run(db, [RunPoint(step=10, tokens=10240, val_loss=loss)], scope="s",
                                            config={}, n_params=1000, batch_tokens=1024, seq_len=64).id

    before = [run(2.0), run(1.9)]
    time.sleep(0.01)
    fit = save_fit(db, chinchilla_fit())
    time.sleep(0.01)
    after = run(1.8)
    assert [r.id for r in fitted_runs(db, fit)] == before
    assert after in [r.id for r in runs_mod.list_runs(db, scope="s", status="complete")]


def test_the_run_to_run_noise_pools_the_scopes_earlier_seed_pairs(db) -> None:
    """A repeat run and the proxy it repeats (same config but the seed) in an earlier check are a pair; runs of
    another precision, of the check itself, or differing in more than the seed are not."""
    from verifier import runs as runs_mod
    from verifier.check.orchestrate import earlier_seed_pairs
    from verifier.runs import RunConfig

    plan = make_plan(db)
    earlier = create_check(db, plan, "s", CheckSummary())
    current = create_check(db, plan, "s", CheckSummary())
    base = RunConfig(n_layer=2, d_model=16, n_head=2, steps=300, lr=1e-2, warmup_steps=10, seq_len=64,
                     precision="bf16")

    def run(config: RunConfig, role: str, check: int, loss: float) -> None:
        r = runs_mod.create_run(db, config, scope="s", role=role, check_id=check)
        runs_mod.update_run(db, r.id, status="complete", final_val_loss=loss)

    run(base, "proxy", earlier.id, 2.00)
    run(msgspec.structs.replace(base, seed=1), "repeat", earlier.id, 2.02)
    run(msgspec.structs.replace(base, seed=1, lr=2e-2), "repeat", earlier.id, 2.50)  # not a twin: lr differs
    run(base, "proxy", current.id, 1.90)
    run(msgspec.structs.replace(base, seed=1), "repeat", current.id, 1.95)  # this check's own pair
    assert earlier_seed_pairs(db, "s", current.id, "bf16") == [pytest.approx((2.00, 2.02))]
    assert earlier_seed_pairs(db, "s", current.id, "fp32") == []
