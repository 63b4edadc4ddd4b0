"""A plan is durable once its 201 is sent: SIGKILL the server (two workers on one SQLite file) in the middle
of a stream of plan POSTs, restart it, and find every acknowledged plan, intact, in a consistent database."""

from __future__ import annotations

import sqlite3
import threading
import time

import httpx
import msgspec

from api.testing import ServerProcess
from planner import Plan

WRITERS = 16
KILL_AFTER = 400
"""Acknowledged plans before the kill; the writers keep posting while it happens (group commits in flight)."""


def _stream(url: str, acked: dict[int, bytes], stop: threading.Event, lock: threading.Lock, seed: int) -> None:
    budget = 1e19 * (1 + seed)
    with httpx.Client(base_url=url, timeout=10) as client:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                response = client.post("/v1/plans", json={"compute_flops": budget * (1 + i / 997)})
            except httpx.HTTPError:
                return  # the server is gone
            if response.status_code == 201:
                with lock:
                    acked[response.json()["id"]] = response.content


def test_acknowledged_plans_survive_sigkill(tmp_path):
    db = tmp_path / "durable.db"
    acked: dict[int, bytes] = {}
    stop, lock = threading.Event(), threading.Lock()
    server = ServerProcess(db, workers=2, env={"SCALEPLAN_RATE_LIMIT": "0"}).start()
    writers = [threading.Thread(target=_stream, args=(server.url, acked, stop, lock, i)) for i in range(WRITERS)]
    try:
        for writer in writers:
            writer.start()
        began = time.monotonic()
        deadline = began + 60
        while len(acked) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()  # SIGKILL to the server and both workers, with requests in flight
        print(f"{len(acked)} plans acknowledged in {time.monotonic() - began:.2f} s "
              f"({len(acked) / (time.monotonic() - began):.0f}/s) by {WRITERS} writers before the kill")
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
        server.kill()
    assert len(acked) >= KILL_AFTER

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    restarted = ServerProcess(db, env={"SCALEPLAN_RATE_LIMIT": "0"}).start()
    try:
        with httpx.Client(base_url=restarted.url, timeout=10) as client:
            for plan_id, body in acked.items():
                response = client.get(f"/v1/plans/{plan_id}")
                assert response.status_code == 200, (plan_id, response.text)
                assert msgspec.json.decode(response.content, type=Plan) == msgspec.json.decode(body, type=Plan)
            # The restarted service still takes plans, numbered after everything stored before the kill.
            new = client.post("/v1/plans", json={"compute_flops": 1e21})
            assert new.status_code == 201 and new.json()["id"] > max(acked)
    finally:
        restarted.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {row[0] for row in conn.execute("SELECT id FROM plans")}
    assert set(acked) <= stored
