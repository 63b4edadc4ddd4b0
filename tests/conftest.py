from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SCALEPLAN_SHARED") or REPO.parent / "shared")
"""The read-only spec and data beside the checkout (``../shared``); the product never needs it."""


def shared_file(*parts: str) -> Path:
    """A file under SHARED; the calling test is skipped (not failed) when the checkout has no ../shared."""
    path = SHARED.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"needs {path} (the shared data beside the checkout; set SCALEPLAN_SHARED to point elsewhere)")
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private corpus cache ($SCALEPLAN_CACHE), so tokenised corpora never leak between tests."""
    path = tmp_path / "cache"
    monkeypatch.setenv("SCALEPLAN_CACHE", str(path))
    return path


@pytest.fixture
def text(tmp_path: Path) -> Path:
    """~100 kB of real text: a standard-library module."""
    import argparse
    import shutil

    path = tmp_path / "text.txt"
    shutil.copy(argparse.__file__, path)
    return path


@pytest.fixture
def db_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh database path, also exported as SCALEPLAN_DB for subprocesses and default-path code."""
    path = tmp_path / "scaleplan.db"
    monkeypatch.setenv("SCALEPLAN_DB", os.fspath(path))
    return path


@pytest.fixture
def db(db_file: Path):
    from fits.store import open_db

    database = open_db(db_file)
    yield database
    database.conn.close()


# CI explores a fixed set of examples (the same on every run, so a red build is reproducible);
# local runs keep exploring new ones.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    _hypothesis_settings.load_profile("ci")
