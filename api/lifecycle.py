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
import socket
import sys
import threading
import time
from typing import Any

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


# ------------------------------------------------------------------------------- one listening socket per worker

def _reuse_port_socket(family: int, address: tuple[Any, ...]) -> socket.socket:
    sock = ReusePortSocket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


class ReusePortSocket(socket.socket):
    """A bound TCP socket that reaches each worker as a socket of its own on the same address.

    uvicorn's supervisor binds one socket and hands it to every worker; they all listen on it, and whichever
    worker's event loop wakes first accepts every connection waiting (asyncio accepts up to the backlog per
    wake-up), so a few keep-alive clients can all land on one worker while the other idles. Pickled for a
    worker (the way multiprocessing passes it), this socket is instead re-created there with SO_REUSEPORT and
    bound to the same address: each worker listens on its own socket and the kernel spreads new connections
    across them. The supervisor's copy, bound with SO_REUSEPORT but never listening, only holds the port.
    (SO_REUSEPORT lets only processes of the same user share the port.)
    """

    def __reduce_ex__(self, protocol: object) -> tuple[Any, ...]:
        return _reuse_port_socket, (self.family, self.getsockname())


def reuse_port_socket(host: str, port: int) -> socket.socket | None:
    """The supervisor's socket for ``host:port`` (see ReusePortSocket); None where SO_REUSEPORT is missing."""
    if not hasattr(socket, "SO_REUSEPORT"):
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return _reuse_port_socket(family, (host, port))
