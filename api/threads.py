"""A background thread that runs calls one at a time, for CPU-heavy work that must not block the event loop
or the database thread (fitting, plotting) and that should not run many copies at once."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class SerialThread:
    """Started on first use, stopped by the app's lifespan (``close``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"scaleplan-{self.name}")
            executor = self._executor
        return await asyncio.wrap_future(executor.submit(functools.partial(fn, *args, **kwargs)))

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
