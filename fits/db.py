"""The SQLite file every package shares: connection, write transactions, and the one migration mechanism.

Each package owns its tables and declares them in its own ``schema`` module (``fits/schema.py``: fits;
``planner/schema.py``: plans; ``verifier/schema.py``: checks, runs, run_points) as numbered migrations::

    from fits.db import migration

    @migration("planner", 1, "plans")
    def _plans(db): db["plans"].create(...)

Opening the file applies every pending migration, all of them in one ``BEGIN IMMEDIATE`` transaction, in
layer order (fits, planner, verifier; by version within a package) and records each in
``schema_migrations``. The file is one schema whichever program opens it first (``python -m fits`` may
create the database the API serves later), so the opener knows the schema modules by name
(``SCHEMA_MODULES``) and imports them when it first migrates; those modules import only this one, so the
import graph stays ``api → verifier → planner → fits``. To add a table: a migration in your package's
schema module with the next version; a new package adds its schema module to ``SCHEMA_MODULES``.

Concurrency: WAL mode lets readers run beside one writer; a busy timeout makes writers queue instead of
failing; every read-check-write runs inside ``transaction(db)`` (``BEGIN IMMEDIATE``), which takes the
write lock up front so two processes cannot both decide on the same state.

Light on purpose (msgspec and the standard library; sqlite-utils only when a file is opened), so the
packages' record modules can import ``transaction`` and the JSON helpers without the cost of sqlite-utils.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

if TYPE_CHECKING:
    import sqlite_utils

DEFAULT_DB = "scaleplan.db"
BUSY_TIMEOUT_MS = 30_000
SCHEMA_MODULES = ("fits.schema", "planner.schema", "verifier.schema")
"""The schema module of each package that owns tables, lowest layer first (the order tables are created)."""
LAYERS = tuple(name.split(".")[0] for name in SCHEMA_MODULES)

T = TypeVar("T")
_Apply = Callable[[Any], None]
_encoder = msgspec.json.Encoder()


def db_path(path: str | os.PathLike[str] | None = None) -> str:
    """Resolve the database path: the argument, else ``SCALEPLAN_DB``, else ``./scaleplan.db``."""
    return os.fspath(path) if path is not None else os.environ.get("SCALEPLAN_DB", DEFAULT_DB)


def now() -> str:
    """UTC timestamp with microseconds; sorts lexically in time order."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def to_json(obj: Any) -> str:
    return _encoder.encode(obj).decode()


def from_json(text: str | bytes | None, type_: type[T]) -> T:
    return msgspec.json.decode(text or "null", type=type_)


def from_row(row: dict[str, Any], type_: type[T], json_columns: dict[str, Any]) -> T:
    """A stored row as the struct it was written from: the ``json_columns`` decoded to their types, and NULL
    columns left to the struct's defaults (columns the struct lacks are ignored)."""
    fields = {k: v for k, v in row.items() if v is not None and k in type_.__struct_fields__}
    for name, column_type in json_columns.items():
        if fields.get(name) is not None:
            fields[name] = from_json(fields[name], column_type)
    return msgspec.convert(fields, type_, strict=False)


def where(*conditions: tuple[str, Any]) -> tuple[str | None, list[Any]]:
    """A WHERE clause ANDing the ``(sql, value)`` conditions whose value is given (not None), and its args:
    ``where(("law = ?", law), ("id < ?", before))``."""
    given = [(sql, value) for sql, value in conditions if value is not None]
    return " AND ".join(sql for sql, _ in given) or None, [value for _, value in given]


# ---------------------------------------------------------------------------------------------- opening


def _connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: sqlite3 never opens transactions behind our back; transaction() does it.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL is durable across process crashes in WAL mode; only an OS crash can lose the last commits.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def connect(path: str | os.PathLike[str] | None = None) -> sqlite_utils.Database:
    """Open (creating if needed) the database file and bring its schema up to date; no seeding."""
    import sqlite_utils

    resolved = db_path(path)
    if resolved != ":memory:":
        parent = Path(resolved).expanduser().resolve().parent
        if not parent.is_dir():
            raise FileNotFoundError(f"database directory does not exist: {parent}")
    db = sqlite_utils.Database(_connect(resolved))
    migrations.apply(db)
    return db


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """One write transaction that takes the write lock up front (BEGIN IMMEDIATE); nested use joins it."""
    conn = db.conn
    if conn.in_transaction:
        yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# ---------------------------------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class Migration:
    package: str
    """The package that owns the tables this creates or changes (one of ``LAYERS``)."""
    version: int
    """1, 2, ... within the package; applied in this order."""
    name: str
    apply: Callable[[Any], None]
    """Called with the ``sqlite_utils.Database`` inside the migrating transaction."""

    @property
    def key(self) -> tuple[str, int]:
        return (self.package, self.version)


class Migrations:
    """The registry of every package's migrations, and what a database has applied of them."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int], Migration] = {}
        self._loaded = False

    def register(self, package: str, version: int, name: str) -> Callable[[_Apply], _Apply]:
        """Decorator: ``fn(db)`` is migration ``version`` of ``package``."""
        if package not in LAYERS:
            raise ValueError(f"package: {package!r} has no schema module in fits.db.SCHEMA_MODULES")

        def add(fn: _Apply) -> _Apply:
            known = self._known.get((package, version))
            if known is not None and known.apply is not fn:
                raise ValueError(f"migration {package} {version} is registered twice ({known.name}, {name})")
            self._known[(package, version)] = Migration(package, version, name, fn)
            return fn

        return add

    def all(self) -> list[Migration]:
        """Every migration, in the order they apply."""
        if not self._loaded:
            for module in SCHEMA_MODULES:
                importlib.import_module(module)
            self._loaded = True
        return sorted(self._known.values(), key=lambda m: (LAYERS.index(m.package), m.version))

    def applied(self, db: sqlite_utils.Database) -> list[tuple[str, int]]:
        """(package, version) of each migration recorded in this database, in the order applied."""
        if "schema_migrations" not in db.table_names():
            return []
        return [(r[0], r[1]) for r in db.execute("SELECT package, version FROM schema_migrations ORDER BY rowid")]

    def pending(self, db: sqlite_utils.Database) -> list[Migration]:
        done = set(self.applied(db))
        return [m for m in self.all() if m.key not in done]

    def apply(self, db: sqlite_utils.Database) -> list[Migration]:
        """Apply what is pending, all in one write transaction; returns what was applied."""
        if not self.pending(db):
            return []
        # Under the write lock the applied set is read again, so two processes starting at once migrate once.
        with transaction(db):
            _adopt_legacy(db)
            todo = self.pending(db)
            for m in todo:
                m.apply(db)
                db.execute("INSERT INTO schema_migrations (package, version, name, applied) VALUES (?, ?, ?, ?)",
                           [m.package, m.version, m.name, now()])
        return todo


def _adopt_legacy(db: sqlite_utils.Database) -> None:
    """Create ``schema_migrations``; a file made before it (one sqlite-utils migration, "0001_initial", that
    created every table) gets every package's first migration recorded as applied."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (package TEXT NOT NULL, version INTEGER NOT NULL, "
               "name TEXT NOT NULL, applied TEXT NOT NULL, PRIMARY KEY (package, version))")
    if "_sqlite_migrations" not in db.table_names() or migrations.applied(db):
        return
    legacy = db.execute("SELECT 1 FROM _sqlite_migrations WHERE migration_set = 'scaleplan' AND name = '0001_initial'")
    if legacy.fetchone() is None:
        return
    for m in migrations.all():
        if m.version == 1:
            db.execute("INSERT INTO schema_migrations (package, version, name, applied) VALUES (?, ?, ?, ?)",
                       [m.package, m.version, f"{m.name} (as 0001_initial)", now()])


migrations = Migrations()
migration = migrations.register
"""``@migration(package, version, name)``: register a migration of a package's tables."""
