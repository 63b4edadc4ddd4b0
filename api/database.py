"""The worker's one SQLite connection, owned by the app's lifespan.

Every database call runs on one dedicated thread, so the connection is never used by two threads at
once and the event loop never waits on SQLite (or on the planner work that goes with a write).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import sqlite_utils

T = TypeVar("T")


class Database:
    """A ``fits.store.open_db`` connection plus the single thread that uses it.

    ``open`` (called by the lifespan) opens it up front so a bad path fails at start; ``run`` also opens
    it on first use, for ASGI harnesses that skip the lifespan.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._opened: Future[sqlite_utils.Database] | None = None
        self._lock = threading.Lock()

    def _start(self) -> tuple[ThreadPoolExecutor, Future[sqlite_utils.Database]]:
        with self._lock:
            failed = self._opened is not None and self._opened.done() and self._opened.exception() is not None
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scaleplan-db")
            if self._opened is None or failed:
                # A failed open is retried on the next call, so the service recovers when the file appears.
                from fits.store import open_db

                self._opened = self._executor.submit(open_db, self.path)
            return self._executor, self._opened

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        assert self._opened is not None
        return fn(self._opened.result(), *args, **kwargs)

    async def open(self) -> None:
        _, opened = self._start()
        await asyncio.wrap_future(opened)

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(db, *args, **kwargs)`` on the database thread."""
        executor, _ = self._start()
        return await asyncio.wrap_future(executor.submit(self._call, fn, args, kwargs))

    async def close(self) -> None:
        with self._lock:
            executor, opened = self._executor, self._opened
            self._executor, self._opened = None, None
        if executor is None or opened is None:
            return
        if opened.done() and opened.exception() is None:
            await asyncio.wrap_future(executor.submit(opened.result().conn.close))
        executor.shutdown(wait=True)
