"""The fit store under concurrent writers, concurrent activation, and processes killed mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fits.fit import Fit, Provenance
from fits.laws import kaplan2020 as k20
from fits.store import PAUSE_IN_SAVE, active_fit, from_json, list_fits, open_db, save_fit

REPO = Path(__file__).resolve().parents[1]
COEFFS = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def fit_record(scope: str, marker: float = 0.0) -> Fit:
    return Fit(law="chinchilla", scope=scope, coefficients={**COEFFS, "E": 1.8 + marker},
               provenance=Provenance(source="imported"))


@pytest.fixture
def nd_csv(tmp_path: Path) -> Path:
    n, d = np.meshgrid(np.logspace(6, 9, 4), np.logspace(8, 10, 4))
    loss = k20.loss_nd(n.ravel(), d.ravel(), **k20.nd_coefficients())
    rows = [f"{a},{b},{c}" for a, b, c in zip(n.ravel(), d.ravel(), loss, strict=True)]
    path = tmp_path / "nd.csv"
    path.write_text("N,D,loss\n" + "\n".join(rows) + "\n")
    return path


SAVER = """
    import sys
    from fits.fit import Fit, Provenance
    from fits.fitting import fit
    from fits.csvio import read_columns
    from fits.store import open_db, save_fit
    db_path, data, tag, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    result = fit("kaplan-nd", read_columns(data, "kaplan-nd"))
    db = open_db(db_path)
    for i in range(count):
        save_fit(db, Fit(law="kaplan-nd", scope="race", coefficients=result.coefficients,
                         provenance=Provenance(source="fitted", note=f"{tag}-{i}")))
"""


def test_two_processes_fitting_and_saving_at_once_lose_nothing(db_file: Path, nd_csv: Path):
    open_db(db_file).conn.close()
    savers = [spawn(SAVER, os.fspath(db_file), os.fspath(nd_csv), tag, "40") for tag in ("p", "q")]
    for p in savers:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    fits = list_fits(open_db(db_file), law="kaplan-nd", scope="race")
    assert len(fits) == 80
    assert sorted(f.version for f in fits) == list(range(1, 81))
    notes = [f.provenance.note for f in fits]
    assert sorted(notes) == sorted(f"{tag}-{i}" for tag in ("p", "q") for i in range(40))


ACTIVATOR = """
    import random, sys
    from fits.store import activate_fit, open_db
    db = open_db(sys.argv[1])
    ids = [int(x) for x in sys.argv[2].split(",")]
    rng = random.Random(0)
    for _ in range(int(sys.argv[3])):
        activate_fit(db, rng.choice(ids))
"""


def test_readers_never_see_zero_or_two_active_fits(db_file: Path):
    db = open_db(db_file)
    ids = [save_fit(db, fit_record("switch", i), activate=(i == 0)).id for i in range(4)]
    writer = spawn(ACTIVATOR, os.fspath(db_file), ",".join(map(str, ids)), "300")
    reader = open_db(db_file, seed=False)
    seen, reads = set(), 0
    while writer.poll() is None or reads < 50:
        (count,) = reader.execute(
            "SELECT COUNT(*) FROM fits WHERE law = 'chinchilla' AND scope = 'switch' AND active = 1"
        ).fetchone()
        assert count == 1
        current = active_fit(reader, "chinchilla", "switch")
        assert current is not None
        seen.add(current.id)
        reads += 1
    _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert len(seen) > 1  # the reader really did watch activations happen


def test_process_killed_during_a_fit_leaves_the_previous_active_fit(db_file: Path, tmp_path: Path):
    db = open_db(db_file)
    previous = save_fit(db, fit_record("kill"), activate=True)
    rng = np.random.default_rng(0)
    n, d = np.exp(rng.uniform(16, 22, 40)), np.exp(rng.uniform(19, 25, 40))
    data = tmp_path / "points.csv"
    data.write_text("N,D,loss\n" + "\n".join(f"{a},{b},{1.8 + 480 / a**0.35 + 2100 / b**0.37}"
                                             for a, b in zip(n, d, strict=True)) + "\n")
    # The save pauses inside its transaction, after writing the new version and its activation: the kill
    # lands there, not in the fitting before it.
    marker = tmp_path / "in-save"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fits", "fit", "--law", "chinchilla", "--data", os.fspath(data), "--save",
         "--activate", "--scope", "kill", "--db", os.fspath(db_file)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, PAUSE_IN_SAVE: os.fspath(marker)},
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, "the fit ended without reaching the save"
        assert time.monotonic() < deadline, "the save was not reached within two minutes"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    db = open_db(db_file)
    assert active_fit(db, "chinchilla", "kill").id == previous.id
    assert [f.id for f in list_fits(db, scope="kill")] == [previous.id]
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


SAVE_LOOP = """
    import sys
    from fits.fit import Fit, Provenance
    from fits.store import open_db, save_fit
    db = open_db(sys.argv[1])
    i = 0
    while True:
        i += 1
        save_fit(db, Fit(law="chinchilla", scope="crash", coefficients={"E": 1.0 + i * 1e-6, "A": 1.0, "B": 1.0,
                 "alpha": 0.3, "beta": 0.3}, provenance=Provenance(source="imported")), activate=True)
        print(i, flush=True)
"""


@pytest.mark.parametrize("saves_before_kill", [5, 23, 61])
def test_process_killed_during_saves_leaves_one_consistent_active_fit(db_file: Path, saves_before_kill: int):
    db = open_db(db_file)
    save_fit(db, fit_record("crash"), activate=True)
    proc = spawn(SAVE_LOOP, os.fspath(db_file))
    for _ in range(saves_before_kill):
        assert proc.stdout.readline(), proc.stderr.read()
    proc.send_signal(signal.SIGKILL)  # lands somewhere inside the next save: before, in or after its commit
    proc.wait(timeout=30)
    db = open_db(db_file)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = list(db.query("SELECT id, version, active, coefficients FROM fits WHERE scope = 'crash' ORDER BY id"))
    assert len(rows) >= saves_before_kill + 1
    assert [r["version"] for r in rows] == list(range(1, len(rows) + 1))
    assert sum(r["active"] for r in rows) == 1
    assert rows[-1]["active"] == 1  # every completed save activated its fit; a half-done one left no trace
    for r in rows:
        assert set(from_json(r["coefficients"], dict[str, float])) == set(COEFFS)
