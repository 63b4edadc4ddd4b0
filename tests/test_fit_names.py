"""A fit's name resolves to the active fit of that name, in the store, the CLIs and the service; published
names cannot be imported over (issue 11: `fits export kaplan2020 > k.json && fits import k.json`)."""

from __future__ import annotations

import json

import msgspec
from litestar.testing import TestClient

from api.app import create_app
from fits.cli import main as fits_main
from fits.store import get_fit, open_db
from planner import Plan
from planner.cli import main as planner_main


def test_export_then_import_of_a_published_fit_is_refused_and_the_name_keeps_resolving(db_file, tmp_path, capsys):
    assert fits_main(["export", "kaplan2020"]) == 0
    exported = tmp_path / "k.json"
    exported.write_text(capsys.readouterr().out)
    assert json.loads(exported.read_text())["name"] == "kaplan2020"
    assert fits_main(["import", str(exported)]) == 2
    err = capsys.readouterr().err
    assert "'kaplan2020' is the name of a published fit and is reserved" in err
    db = open_db(db_file)
    try:
        assert [f.id for f in db_rows(db, "kaplan2020")] == [1]
    finally:
        db.conn.close()


def db_rows(db, name):
    from fits.store import list_fits

    return [f for f in list_fits(db) if f.name == name]


def test_a_name_resolves_to_its_active_version_not_its_newest(db_file, tmp_path, capsys):
    assert fits_main(["export", "kaplan2020"]) == 0
    exported = tmp_path / "k.json"
    exported.write_text(capsys.readouterr().out)
    assert fits_main(["import", str(exported), "--name", "mine", "--activate"]) == 0
    assert fits_main(["import", str(exported), "--name", "mine"]) == 0  # a newer version, left inactive
    capsys.readouterr()
    db = open_db(db_file)
    try:
        versions = sorted(db_rows(db, "mine"), key=lambda f: f.version)
        active, newer = versions
        assert active.active and not newer.active and newer.version > active.version
        assert get_fit(db, "mine").id == active.id
    finally:
        db.conn.close()

    assert planner_main(["plan", "--compute", "1e21", "--fit", "mine", "--json"]) == 0
    plan = msgspec.json.decode(capsys.readouterr().out, type=Plan)
    assert plan.fit.id == active.id

    assert fits_main(["show", "mine", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == active.id

    with TestClient(create_app(db_file, rate_limit=0)) as client:
        response = client.get("/v1/fits/mine")
    assert response.status_code == 200 and response.json()["id"] == active.id
