from __future__ import annotations

import sqlite3

import pytest

from fits.fit import Fit, Provenance
from fits.store import (
    FitNotFound,
    activate_fit,
    active_fit,
    get_fit,
    list_fits,
    migrations,
    open_db,
    save_fit,
    transaction,
)


def _fit(scope: str = "s", **coeffs: float) -> Fit:
    return Fit(
        law="chinchilla",
        scope=scope,
        coefficients=coeffs or {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37},
        provenance=Provenance(source="fitted", data="test"),
    )


def test_open_creates_wal_schema_and_seeds_published(db):
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"fits", "plans", "runs", "run_points", "checks"} <= set(db.table_names())
    assert not migrations.pending(db)
    names = {f.name for f in list_fits(db)}
    assert {"kaplan2020", "hoffmann2022", "besiroglu2024"} <= names
    massive = active_fit(db, "chinchilla", "massivetext")
    assert massive is not None and massive.name == "besiroglu2024"
    assert get_fit(db, "hoffmann2022").active is False
    assert get_fit(db, "kaplan2020").law == "kaplan"


def test_reopen_is_idempotent(db_file):
    first = open_db(db_file)
    count = first["fits"].count
    first.conn.close()
    again = open_db(db_file)
    assert again["fits"].count == count
    assert len(migrations.applied(again)) == len(migrations.applied(again)) >= 1


def test_versions_increment_and_one_active(db):
    a = save_fit(db, _fit(), activate=True)
    b = save_fit(db, _fit(), activate=False)
    assert (a.version, b.version) == (1, 2)
    assert active_fit(db, "chinchilla", "s").id == a.id
    activate_fit(db, b.id)
    assert active_fit(db, "chinchilla", "s").id == b.id
    assert [f.active for f in list_fits(db, scope="s")] == [False, True]


def test_database_refuses_two_active_fits(db):
    a = save_fit(db, _fit(), activate=True)
    b = save_fit(db, _fit())
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE fits SET active = 1 WHERE id = ?", [b.id])
    assert active_fit(db, "chinchilla", "s").id == a.id


def test_failed_transaction_leaves_previous_active_fit(db):
    a = save_fit(db, _fit(), activate=True)
    with pytest.raises(RuntimeError), transaction(db):
        save_fit(db, _fit(), activate=True)
        raise RuntimeError("crash midway")
    assert active_fit(db, "chinchilla", "s").id == a.id
    assert len(list_fits(db, scope="s")) == 1


def test_lookup_errors_name_what_is_known(db):
    with pytest.raises(FitNotFound, match="no fit with id 999"):
        get_fit(db, 999)
    with pytest.raises(FitNotFound, match="besiroglu2024"):
        get_fit(db, "nonesuch")
    with pytest.raises(FitNotFound):
        activate_fit(db, 12345)


def test_open_db_in_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_db(tmp_path / "nope" / "x.db")


def test_save_version_keeps_published_names_reserved_and_a_name_with_one_law_and_scope(db):
    from fits.errors import Conflict
    from fits.store import save_version

    with pytest.raises(Conflict) as reserved:
        save_version(db, msgspec_replace(_fit(), name="besiroglu2024"))
    assert reserved.value.field == "name" and "reserved" in str(reserved.value)
    first = save_version(db, msgspec_replace(_fit("a"), name="mine"))
    second = save_version(db, msgspec_replace(_fit("a"), name="mine"))
    assert (first.version, second.version) == (1, 2) and get_fit(db, "mine").id == second.id
    with pytest.raises(Conflict, match="a name stays with one"):
        save_version(db, msgspec_replace(_fit("b"), name="mine"))
    assert [f.scope for f in list_fits(db) if f.name == "mine"] == ["a", "a"]


def msgspec_replace(fit: Fit, **changes: object) -> Fit:
    import msgspec

    return msgspec.structs.replace(fit, **changes)


def test_each_package_migrates_its_own_tables_once_in_one_recorded_transaction(db):
    recorded = db.execute("SELECT package, version FROM schema_migrations ORDER BY rowid").fetchall()
    assert recorded == [("fits", 1), ("planner", 1), ("verifier", 1)]
    owners = {m.package for m in migrations.all()}
    assert owners == {"fits", "planner", "verifier"}
    assert migrations.apply(db) == []


def test_a_file_made_by_the_single_legacy_migration_is_adopted(tmp_path):
    import sqlite_utils

    path = tmp_path / "old.db"
    legacy = sqlite_utils.Database(path)
    for migration in migrations.all():  # the tables as the one "0001_initial" migration created them
        migration.apply(legacy)
    legacy["_sqlite_migrations"].insert({"migration_set": "scaleplan", "name": "0001_initial", "applied_at": "x"})
    legacy.conn.close()
    db = open_db(path)
    assert [k for k in migrations.applied(db)] == [("fits", 1), ("planner", 1), ("verifier", 1)]
    assert not migrations.pending(db) and db["fits"].count >= 3
