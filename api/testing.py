"""Run the service as a real ``python -m api`` process on a free port, for tests and benchmarks.

    with ServerProcess(db="/tmp/x.db") as server:
        Client(server.url).fits()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie, exited but not yet reaped, is not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


class ServerProcess:
    """``python -m api --port <free port> --db <db>`` in a subprocess; ``start`` waits for /readyz."""

    def __init__(
        self,
        db: str | os.PathLike[str],
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        log: str | os.PathLike[str] | None = None,
        port: int | None = None,
    ) -> None:
        self.db = os.fspath(db)
        self.workers = workers
        self.env = env or {}
        self.args = args or []
        self.log = Path(log) if log else Path(self.db).with_suffix(".log")
        self.port = port or 0
        """The port; 0 until ``start`` picks a free one (a given port is kept, to restart on the same one)."""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.port = self.port or free_port()
        command = [sys.executable, "-m", "api", "--port", str(self.port), "--db", self.db,
                   "--workers", str(self.workers), *self.args]
        env = {**os.environ, **self.env}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; log:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s; log:\n{self.log.read_text()}")

    def worker_pids(self) -> list[int]:
        """Pids of the worker processes (children of the server process; Linux /proc)."""
        if self.process is None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            pids = [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []
        # uvicorn's supervisor also starts multiprocessing's resource tracker; workers run spawn_main
        return [pid for pid in pids if b"spawn_main" in _cmdline(pid)]

    def kill(self) -> None:
        """SIGKILL the server and its workers: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 20.0) -> int | None:
        """Graceful stop (SIGTERM), then SIGKILL if it does not exit in time; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
