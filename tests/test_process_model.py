"""The service's processes: workers do not outlive a supervisor killed with SIGKILL, a restart on the same port
binds at once, and SIGTERM lets requests in flight finish. Real ``python -m api`` processes (api.testing)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from api.testing import ServerProcess, alive

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads processes from /proc")
ENV = {"SCALEPLAN_RATE_LIMIT": "0"}
SLOW = "/v1/frontier.png?start=1e18&stop=9e27&per_decade=20"
"""200 plans and a plot: a request that takes a few seconds."""


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_workers_exit_when_the_supervisor_is_killed_and_a_restart_binds(tmp_path):
    server = ServerProcess(tmp_path / "pm.db", workers=2, env=ENV).start()
    workers: list[int] = []
    try:
        assert _wait(lambda: len(server.worker_pids()) == 2, 10), server.worker_pids()
        workers = server.worker_pids()
        os.kill(server.process.pid, signal.SIGKILL)  # the supervisor only: nothing of it runs again
        server.process.wait()
        assert _wait(lambda: not any(alive(pid) for pid in workers), 15), "orphaned workers still running"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/healthz", timeout=2)
        restarted = ServerProcess(tmp_path / "pm.db", env=ENV, port=server.port).start(timeout=30)
        try:
            assert httpx.get(f"{restarted.url}/healthz", timeout=5).json() == {"status": "ok"}
        finally:
            restarted.stop()
    finally:
        server.kill()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_sigterm_lets_requests_in_flight_finish(tmp_path):
    server = ServerProcess(tmp_path / "drain.db", workers=2, env=ENV).start()
    answers: list[httpx.Response | BaseException] = []

    def slow() -> None:
        try:
            answers.append(httpx.get(server.url + SLOW, timeout=60))
        except BaseException as exc:  # reported below
            answers.append(exc)

    try:
        httpx.get(server.url + SLOW.replace("per_decade=20", "per_decade=1"), timeout=60)  # warm the plotter
        caller = threading.Thread(target=slow)
        caller.start()
        time.sleep(0.25)  # the request is being answered
        os.kill(server.process.pid, signal.SIGTERM)
        caller.join(60)
        # uvicorn re-raises the signal once it has shut down gracefully
        assert server.process.wait(30) in (0, -signal.SIGTERM)
    finally:
        server.kill()
    (answer,) = answers
    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code == 200 and answer.content.startswith(b"\x89PNG")


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[len("socket:["):-1])
    return out


def _tcp(port: int, state: str) -> set[str]:
    """Inodes of the IPv4 TCP sockets on local ``port`` in ``state`` (0A listening, 01 established)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in list(table)[1:]]
    return {row[9] for row in rows if row[3] == state and int(row[1].split(":")[1], 16) == port}


def test_each_worker_listens_on_its_own_socket_and_connections_reach_both(tmp_path):
    # One shared socket let the first worker to wake accept every waiting connection: 16 keep-alive clients
    # all landed on one worker while the other idled.
    import socket

    with ServerProcess(tmp_path / "rp.db", workers=2, env=ENV) as server:
        assert _wait(lambda: len(server.worker_pids()) == 2, 10), server.worker_pids()
        workers = server.worker_pids()
        assert _wait(lambda: all(_socket_inodes(p) & _tcp(server.port, "0A") for p in workers), 30)
        listening = {pid: _socket_inodes(pid) & _tcp(server.port, "0A") for pid in workers}
        first, second = listening.values()
        assert first and second and not first & second, listening  # a socket each
        assert not _socket_inodes(server.process.pid) & _tcp(server.port, "0A")  # the supervisor only binds
        clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(16)]
        try:
            def spread() -> list[int]:
                established = _tcp(server.port, "01")
                return [len(_socket_inodes(pid) & established) for pid in workers]

            assert _wait(lambda: sum(spread()) == 16, 10), spread()
            assert min(spread()) >= 1, spread()  # all 16 on one worker: 2 × 2^-16 by chance
        finally:
            for client in clients:
                client.close()
