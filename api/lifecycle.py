"""Workers that do not outlive their supervisor.

With ``--workers N`` uvicorn's supervisor process binds the socket and starts N worker processes that inherit
it. If the supervisor is killed outright (``kill -9``, the OOM killer) nothing tells the workers: they keep
serving as orphans, holding the port, so a restarted service fails with "Address already in use".
``python -m api`` therefore exports its pid as ``SCALEPLAN_SUPERVISOR_PID``, and each worker, when it builds
the app, asks to be sent SIGTERM when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``; elsewhere a daemon
thread watches the parent pid). SIGTERM is uvicorn's graceful stop: the worker stops accepting, finishes the
requests in flight and exits, freeing the port.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

SUPERVISOR_PID = "SCALEPLAN_SUPERVISOR_PID"
PR_SET_PDEATHSIG = 1
log = logging.getLogger("api")


def _parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` when the parent exits; False where prctl is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        log.warning("supervisor %d is gone; worker %d stopping", parent, os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="scaleplan-parent-watch", daemon=True).start()


def follow_supervisor() -> None:
    """In a worker started by ``python -m api --workers N``: stop when the supervisor dies. Elsewhere nothing."""
    raw = os.environ.get(SUPERVISOR_PID)
    if not raw or not raw.isdigit():
        return
    supervisor = int(raw)
    if os.getpid() == supervisor:
        return  # one worker: the supervisor serves itself
    if not _parent_death_signal(signal.SIGTERM):
        _watch_parent(supervisor)
    if os.getppid() != supervisor:
        # The supervisor died before the request above was made (or this process belongs to another one).
        log.warning("supervisor %d is gone; worker %d stopping", supervisor, os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)
