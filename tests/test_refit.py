"""The refit job: new fit versions from complete runs, idempotence, the activation rule, concurrent runners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fits.fit import Fit, Provenance
from fits.laws import chinchilla
from fits.laws import kaplan2020 as k20
from fits.refit import refit, untrusted
from fits.store import active_fit, fit_points, list_fits, now, open_db, save_fit

REPO = Path(__file__).resolve().parents[1]
TRUTH = {"E": 2.5, "A": 300.0, "B": 800.0, "alpha": 0.3, "beta": 0.3}
NS = {"alpha_N": 0.08, "alpha_S": 0.7, "N_c": 1e14, "S_c": 300.0}
BATCH = 16384.0
WARMUP = 50


def add_run(db, scope: str, n_params: float, tokens: float, *, seed: int = 0, curve: bool = True) -> int:
    rng = np.random.default_rng(seed)
    steps = int(tokens / BATCH)
    final = float(chinchilla.loss(n_params, tokens, **TRUTH)) * float(np.exp(rng.normal(0, 0.002)))
    stamp = now()
    run_id = db["runs"].insert(
        {
            "scope": scope, "status": "complete", "source": "ingested", "role": "proxy",
            "n_params": int(n_params), "params_total": int(n_params * 1.3), "batch_tokens": int(BATCH),
            "seq_len": 256, "tokens": int(tokens), "steps": steps, "warmup_steps": WARMUP,
            "final_val_loss": final, "created": stamp, "updated": stamp,
        }
    ).last_pk
    if curve:
        points = []
        for step in np.unique(np.geomspace(10, steps, 25).astype(int)):
            loss = float(k20.loss_after_steps(n_params, step, BATCH, **NS)) if step > WARMUP else 11.0
            points.append({"run_id": run_id, "step": int(step), "tokens": int(step * BATCH), "val_loss": loss})
        db["run_points"].insert_all(points)
    return int(run_id)


def add_grid_of_runs(db, scope: str, sizes=(2e6, 5e6, 1.2e7, 3e7), tokens=(4e7, 1.6e8, 6.4e8)) -> list[int]:
    ids = []
    for i, n in enumerate(sizes):
        for j, d in enumerate(tokens):
            ids.append(add_run(db, scope, n, d, seed=10 * i + j))
    return ids


def seed_active(db, scope: str, heldout_error: float):
    """An active chinchilla fit for ``scope`` whose stored held-out error is ``heldout_error``."""
    fit = Fit(
        law="chinchilla", scope=scope, coefficients=dict(TRUTH), provenance=Provenance(source="imported"),
        heldout_error=heldout_error,
    )
    return save_fit(db, fit, activate=True)


def test_refit_records_a_version_per_law_then_does_nothing(db):
    ids = add_grid_of_runs(db, "tiny")
    fits = refit(db)
    assert sorted(f.law for f in fits) == ["chinchilla", "kaplan-nd", "kaplan-ns"]
    for f in fits:
        assert f.scope == "tiny" and f.version == 1
        assert f.provenance.run_ids == ids
        assert f.heldout_error is not None and f.heldout_error < 0.05
        assert f.active  # the first fit of a scope has nothing to be worse than
        assert f.provenance.source == "fitted"
    chin = next(f for f in fits if f.law == "chinchilla")
    assert chin.n_points == 12
    assert chin.coefficients["alpha"] == pytest.approx(0.3, abs=0.1)
    ns = next(f for f in fits if f.law == "kaplan-ns")
    assert ns.coefficients["alpha_S"] == pytest.approx(NS["alpha_S"], rel=0.05)
    assert ns.diagnostics.residual_max < 0.05  # the warm-up points (loss 11) were left out
    # the critical batch it converted steps with is stored with it (these curves follow Kaplan's)
    assert {k: ns.coefficients[k] for k in ("B_star", "alpha_B")} == k20.batch_coefficients()

    before = len(list_fits(db))
    assert refit(db) == []  # idempotent: no new runs, nothing recorded
    assert len(list_fits(db)) == before


def test_activation_follows_heldout_error(db):
    add_grid_of_runs(db, "tiny")
    perfect = seed_active(db, "tiny", heldout_error=0.0)
    fits = {f.law: f for f in refit(db, scope="tiny")}
    # An active fit that predicted its held-out runs perfectly is not replaced ...
    assert fits["chinchilla"].version == 2 and not fits["chinchilla"].active
    assert active_fit(db, "chinchilla", "tiny").id == perfect.id
    # ... one that predicted them badly is.
    db.execute("UPDATE fits SET heldout_error = 1.0 WHERE id = ?", [perfect.id])
    add_run(db, "tiny", 8e6, 3e8, seed=99, curve=False)
    again = refit(db, scope="tiny")
    chin = next(f for f in again if f.law == "chinchilla")
    assert (chin.version, chin.active) == (3, True)
    assert sorted(f.law for f in again) == ["chinchilla", "kaplan-nd"]  # no new curve, no new kaplan-ns
    assert active_fit(db, "chinchilla", "tiny").id == chin.id


def test_activate_flag_activates_regardless(db):
    add_grid_of_runs(db, "tiny", tokens=(4e7, 1.6e8, 6.4e8))
    seed_active(db, "tiny", heldout_error=0.0)
    forced = {f.law: f for f in refit(db, activate=True)}
    assert forced["chinchilla"].active


def test_scope_filter_and_too_few_runs(db):
    for i, n in enumerate((2e6, 5e6, 1.2e7)):
        add_run(db, "b", n, 1e8, seed=i, curve=False)
    assert refit(db, scope="b") == []  # three runs: fewer than the five coefficients
    assert refit(db, scope="elsewhere") == []
    assert list_fits(db, scope="b") == []


def test_published_active_fit_is_compared_on_the_new_heldout_points(db):
    # A scope whose active chinchilla fit is the published one: it is scored on the held-out runs.
    add_grid_of_runs(db, "massivetext")
    before = active_fit(db, "chinchilla", "massivetext")
    assert before.name == "besiroglu2024" and before.heldout_error is None
    fits = {f.law: f for f in refit(db, scope="massivetext")}
    # These runs follow TRUTH, far from Epoch's coefficients, so the refit predicts them far better.
    assert fits["chinchilla"].active
    assert active_fit(db, "chinchilla", "massivetext").id == fits["chinchilla"].id


def test_two_runners_at_once_record_one_version(db_file):
    db = open_db(db_file)
    add_grid_of_runs(db, "race")
    db.conn.close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fits", "refit", "--db", os.fspath(db_file)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    db = open_db(db_file)
    versions = [(f.law, f.version) for f in list_fits(db, scope="race")]
    assert sorted(versions) == [("chinchilla", 1), ("kaplan-nd", 1), ("kaplan-ns", 1)]
    assert sum("nothing to refit" in out for out, _ in outs) >= 1 or sum(out.count("race:") for out, _ in outs) == 3


def test_bootstrap_gives_every_new_fit_intervals(db):
    add_grid_of_runs(db, "tiny")
    fits = {f.law: f for f in refit(db, bootstrap=50)}
    assert set(fits) == {"chinchilla", "kaplan-nd", "kaplan-ns"}
    for f in fits.values():
        assert f.provenance.bootstrap == 50
        for name in ("alpha", "beta") if f.law == "chinchilla" else ("alpha_N",):
            low, high = f.intervals[name]
            assert low <= f.coefficients[name] * (1 + 1e-9) and f.coefficients[name] <= high * (1 + 1e-9)


def test_a_fit_the_data_do_not_determine_is_recorded_but_not_activated(db):
    # Two model sizes: the N exponent is not determined. Even as the scope's first fit it stays inactive ...
    add_grid_of_runs(db, "two", sizes=(2e6, 3e7), tokens=(4e7, 1.6e8, 6.4e8))
    fits = {f.law: f for f in refit(db, scope="two")}
    chin = fits["chinchilla"]
    assert untrusted(chin) and any("not determined" in w for w in chin.warnings)
    assert not chin.active and active_fit(db, "chinchilla", "two") is None
    # ... unless asked: --activate activates it anyway.
    add_run(db, "two", 3e7, 1e9, seed=7, curve=False)
    forced = {f.law: f for f in refit(db, scope="two", activate=True)}
    assert forced["chinchilla"].active and active_fit(db, "chinchilla", "two").id == forced["chinchilla"].id


def test_untrusted_names_wide_intervals_and_degenerate_fits():
    base = Fit(law="chinchilla", scope="s", coefficients=dict(TRUTH), provenance=Provenance(source="fitted"),
               intervals={"A": [100.0, 400.0], "B": [50.0, 5000.0]})
    assert untrusted(base) == ["B's interval spans a factor 100"]
    tight = Fit(law="chinchilla", scope="s", coefficients=dict(TRUTH), provenance=Provenance(source="fitted"),
                intervals={"A": [100.0, 400.0]})
    assert untrusted(tight) == []
    tight.diagnostics.degenerate = True
    assert untrusted(tight) == ["degenerate"]


def test_each_family_is_fitted_on_the_n_its_conventions_count(db):
    """Chinchilla counts every parameter, Kaplan non-embedding ones: the refit feeds each its own N, and
    falls back to non-embedding counts for all runs when one run lacks its total (an ingested run)."""
    ids = add_grid_of_runs(db, "counts")
    fits = {f.law: f for f in refit(db, scope="counts")}
    runs = {r["id"]: r for r in db["runs"].rows_where("id in ({})".format(",".join(map(str, ids))))}
    totals = sorted(float(r["params_total"]) for r in runs.values())
    non_embedding = sorted(float(r["n_params"]) for r in runs.values())
    assert sorted(p["N"] for p in fit_points(db, fits["chinchilla"].id)) == totals
    assert sorted(p["N"] for p in fit_points(db, fits["kaplan-nd"].id)) == non_embedding
    assert {p["N"] for p in fit_points(db, fits["kaplan-ns"].id)} <= set(non_embedding)
    db.execute("UPDATE runs SET params_total = NULL WHERE id = ?", [ids[0]])
    add_run(db, "counts", 7e6, 3e8, seed=99)  # a new run, so the scope is refitted
    fits = {f.law: f for f in refit(db, scope="counts")}
    every = sorted(float(r["n_params"]) for r in db["runs"].rows_where("scope = 'counts'"))
    assert sorted(p["N"] for p in fit_points(db, fits["chinchilla"].id)) == every
