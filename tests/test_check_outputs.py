"""Where `verifier check` writes (issue 11): its picture under --out or beside the database, the corpus slice
in the cache, nothing in the working directory unless asked; --fail-on-verdict makes a fail verdict exit 1."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from fits.cliutil import EXIT_FAILED, EXIT_OK
from verifier.check import orchestrate
from verifier.check.cli import add_parsers, verdict_exit
from verifier.check.picture import artifacts_dir
from verifier.check.records import Check, CheckSummary
from verifier.corpus import load_corpus


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SCALEPLAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SCALEPLAN_ARTIFACTS", raising=False)
    return work


def test_the_corpus_slice_goes_to_the_cache_not_the_working_directory(workdir: Path, tmp_path: Path):
    text = tmp_path / "text.txt"
    shutil.copy(argparse.__file__, text)
    corpus = load_corpus(text)
    session = SimpleNamespace(corpus=corpus, db_path=os.fspath(workdir / "scaleplan.db"))
    path = orchestrate._write_slice(session, 20_000, None)
    assert path.parent == tmp_path / "cache" / "slices" and path.is_file()
    assert list(workdir.iterdir()) == []  # before: checks/slices/*.txt here, beside ./scaleplan.db
    # The slice is exactly the first 20,000 training bytes when loaded as a corpus.
    assert len(load_corpus(path).train) == 20_000


def test_the_picture_goes_beside_the_database_or_the_cache_never_the_working_directory(workdir, tmp_path):
    assert artifacts_dir(tmp_path / "db" / "x.db") == tmp_path / "db" / "checks"
    assert artifacts_dir(":memory:") == tmp_path / "cache" / "checks"
    assert artifacts_dir(None) == tmp_path / "cache" / "checks"


def _check_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers())
    return parser.parse_args(["check", "--plan", "1", *argv])


def test_out_and_fail_on_verdict_flags():
    assert _check_args("--out", "somewhere").artifacts == "somewhere"
    assert _check_args("--artifacts", "elsewhere").artifacts == "elsewhere"  # the older spelling still works
    assert _check_args().fail_on_verdict is False and _check_args("--fail-on-verdict").fail_on_verdict is True


@pytest.mark.parametrize(
    ("verdict", "flag", "status"),
    [("fail", True, EXIT_FAILED), ("fail", False, EXIT_OK), ("pass", True, EXIT_OK), ("inconclusive", True, EXIT_OK)],
)
def test_a_failed_verdict_exits_1_only_when_asked(verdict, flag, status):
    check = Check(id=1, plan_id=1, scope="s", created="now", status="complete", verdict=verdict, items=[],
                  summary=CheckSummary())
    assert verdict_exit(check, flag) == status
