"""The worker's SQLite connections, owned by the app's lifespan: a database thread, and one on the loop.

``run`` calls go to one dedicated thread with its own connection (fits, runs, checks: whatever manages its
own transactions), so that connection is never used by two threads at once and the event loop never waits on
a long write.

Plan writes (``write``) are group-committed on the event loop: every write submitted in one turn of the loop
runs in its own SAVEPOINT inside one ``BEGIN IMMEDIATE`` transaction on the loop's connection, which commits
once and only then answers them all. An answered write is a committed one (WAL with ``synchronous=NORMAL``
keeps commits across a process crash), a burst of plans costs one commit, and a write that fails rolls back
to its savepoint alone. Handing each write to a thread and back cost more than the write (two GIL hand-offs
per request); a commit of a few rows without fsync takes tens of microseconds. If another connection holds
the write lock (another worker process, or this one's database thread), the loop does not wait for it: the
batch goes to the database thread, which does the same group commit there and waits with the busy timeout.
The loop's connection does not checkpoint (that fsyncs); the database thread checkpoints every
``CHECKPOINT_EVERY`` loop commits.

Point reads (``read``: a plan by id, an idempotency key, the fit) run inline on the loop's connection: an
indexed SQLite read takes microseconds, less than a thread hop, and in WAL mode it never waits for a writer,
so reads do not queue behind writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import sqlite_utils

from planner.cache import SolveCache

T = TypeVar("T")
MAX_BATCH = 256
"""Most writes in one group commit."""
READ_BUSY_TIMEOUT_MS = 2000
"""A read on the loop never waits long: WAL readers do not wait for writers, only for rare recovery."""
CHECKPOINT_EVERY = 500
"""Loop commits between two WAL checkpoints on the database thread."""


class _Job:
    __slots__ = ("args", "error", "fn", "future", "grouped", "kwargs", "loop", "result")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 loop: asyncio.AbstractEventLoop | None, grouped: bool) -> None:
        self.fn, self.args, self.kwargs, self.loop, self.grouped = fn, args, kwargs, loop, grouped
        self.future: asyncio.Future[Any] | Future[Any] = loop.create_future() if loop else Future()
        self.result: Any = None
        self.error: BaseException | None = None


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        future = job.future
        if future.done():  # the awaiting request was cancelled
            continue
        if job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.result)


def _checkpoint(db: sqlite_utils.Database) -> None:
    db.execute("PRAGMA wal_checkpoint(PASSIVE)")


class Database:
    """A ``fits.store.open_db`` connection on a writer thread, plus a read connection for the event loop.

    ``open`` (called by the lifespan) opens it up front so a bad path fails at start; ``run`` also opens it on
    first use, for ASGI harnesses that skip the lifespan.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = path
        self.cache = SolveCache()
        """Fit resolutions and solved plans of this database, used on the event loop (planner.cache)."""
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._db: sqlite_utils.Database | None = None
        self._open_error: BaseException | None = None
        self._opened = threading.Event()
        self._reader: sqlite_utils.Database | None = None
        self._pending: list[_Job] = []
        self._commits = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ writer

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._opened.clear()
            self._thread = threading.Thread(target=self._serve, name="scaleplan-db", daemon=True)
            self._thread.start()
        self._opened.wait()

    def _open(self) -> sqlite_utils.Database:
        from fits.store import open_db

        return open_db(self.path)

    def _serve(self) -> None:
        try:
            self._db = self._open()
            self._open_error = None
        except BaseException as exc:
            self._db, self._open_error = None, exc
        finally:
            self._opened.set()
        while True:
            job = self._queue.get()
            if job is None:
                break
            batch = [job]
            while job.grouped and len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None or not nxt.grouped:
                    self._queue.put(nxt)  # handled after this batch, in order enough: a plain call or close
                    break
                batch.append(nxt)
            self._execute(batch)
        if self._db is not None:
            self._db.conn.close()
            self._db = None

    def _execute(self, batch: list[_Job]) -> None:
        db = self._db
        if db is None:
            try:  # a failed open is retried, so the service recovers when the file appears
                db = self._db = self._open()
            except BaseException as exc:
                for job in batch:
                    job.error = exc
                self._deliver(batch)
                return
        if batch[0].grouped:
            self._group_commit(db, batch)
        else:
            job = batch[0]
            try:
                job.result = job.fn(db, *job.args, **job.kwargs)
            except BaseException as exc:
                job.error = exc
        self._deliver(batch)

    @staticmethod
    def _group_commit(db: sqlite_utils.Database, batch: list[_Job], *, begun: bool = False) -> None:
        conn = db.conn
        try:
            if not begun:
                conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for job in batch:
                job.error = exc
            return
        for job in batch:
            conn.execute("SAVEPOINT job")
            try:
                job.result = job.fn(db, *job.args, **job.kwargs)
            except BaseException as exc:
                job.error = exc
                conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for job in batch:
                job.error, job.result = exc, None

    @staticmethod
    def _deliver(batch: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop | None, list[_Job]] = {}
        for job in batch:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            if loop is None:
                for job in jobs:
                    future = job.future
                    if job.error is not None:
                        future.set_exception(job.error)
                    else:
                        future.set_result(job.result)
                continue
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_settle, jobs)  # one wake-up of the loop per batch

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                grouped: bool) -> _Job:
        self._start()
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        job = _Job(fn, args, kwargs, loop, grouped)
        self._queue.put(job)
        return job

    async def open(self) -> None:
        self._start()
        if self._open_error is not None:
            raise self._open_error

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(db, *args, **kwargs)`` on the database thread, alone (it manages its own transactions)."""
        return await self._submit(fn, args, kwargs, grouped=False).future  # type: ignore[misc]

    async def write(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(db, *args, **kwargs)`` inside a group commit (see the module docstring); returns once committed.

        ``fn`` must not take long (it runs on the loop): solve first, then write."""
        if self._memory():
            return await self._submit(fn, args, kwargs, grouped=True).future  # type: ignore[misc]
        loop = asyncio.get_running_loop()
        job = _Job(fn, args, kwargs, loop, grouped=True)
        self._pending.append(job)
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await job.future  # type: ignore[misc]

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            db = self._loop_db()
        except BaseException as exc:
            for job in batch:
                job.error = exc
            _settle(batch)
            return
        conn = db.conn
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            for job in batch:  # the lock is taken: the database thread waits for it instead of the loop
                self._queue.put(job)
            return
        finally:
            conn.execute(f"PRAGMA busy_timeout = {READ_BUSY_TIMEOUT_MS}")
        self._group_commit(db, batch, begun=True)
        _settle(batch)
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0:
            self._queue.put(_Job(_checkpoint, (), {}, None, grouped=False))

    # ------------------------------------------------------------------------------------------ reader

    def read(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(db, *args, **kwargs)`` now, on the loop's connection: for indexed point reads."""
        if self._reader is None and self._memory():
            # no second connection sees an in-memory database: ask its thread, and wait
            return self._submit(fn, args, kwargs, grouped=False).future.result()  # type: ignore[union-attr]
        return fn(self._loop_db(), *args, **kwargs)

    def _memory(self) -> bool:
        from fits.db import db_path

        return db_path(self.path) == ":memory:"

    def _loop_db(self) -> sqlite_utils.Database:
        reader = self._reader
        if reader is None:
            self._start()
            if self._open_error is not None and self._db is None:
                raise self._open_error
            from fits.db import connect

            reader = self._reader = connect(self.path)  # the database thread has migrated it already
            reader.conn.execute(f"PRAGMA busy_timeout = {READ_BUSY_TIMEOUT_MS}")
            reader.conn.execute("PRAGMA wal_autocheckpoint = 0")
        return reader

    async def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            await asyncio.to_thread(thread.join)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.conn.close()
