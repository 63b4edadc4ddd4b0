"""``python -m api``: serve the planning API with uvicorn.

    python -m api [--host 127.0.0.1] [--port 8000] [--workers N] [--db PATH]

The database (``--db``, else ``SCALEPLAN_DB``, else ./scaleplan.db) is created, migrated and seeded with
the published fits before the workers start, so several workers never race to seed it. SIGTERM or
Ctrl-C stops accepting connections, lets requests in flight finish (up to 20 s), and closes the database.
Workers stop when the supervising process dies, even by ``kill -9`` (api.lifecycle), and a restart waits
briefly for the port that a previous server's last workers are releasing.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import time
from typing import Any

from fits import cliutil
from fits.cliutil import UsageError


def _parser() -> argparse.ArgumentParser:
    parser = cliutil.Parser(prog="python -m api", description="Serve the scaleplan planning API.")
    parser.add_argument("--host", default=os.environ.get("SCALEPLAN_HOST", "127.0.0.1"),
                        help="interface to bind (default 127.0.0.1; 0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SCALEPLAN_PORT", "8000")),
                        help="TCP port (default 8000)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("SCALEPLAN_WORKERS", "1")),
                        help="worker processes sharing the SQLite file (default 1)")
    cliutil.add_db_option(parser)
    parser.add_argument("--rate-limit", type=float, default=None,
                        help="requests per second per client (default $SCALEPLAN_RATE_LIMIT or 100; 0 = off)")
    parser.add_argument("--rate-burst", type=int, default=None,
                        help="burst size per client (default $SCALEPLAN_RATE_BURST or 200)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                        help="server log level (info)")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False,
                        help="log every request (default off)")
    parser.set_defaults(run=_check_and_prepare)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    # bad settings (ValueError from api.settings) and an unusable database path (OSError) are bad input too
    code = cliutil.dispatch(args, prefix="python -m api: ", bad_input=(ValueError, OSError))
    if code:
        raise SystemExit(code)

    import uvicorn

    from api.lifecycle import SUPERVISOR_PID, reuse_port_socket
    from api.protocol import NoDelayH11Protocol

    os.environ[SUPERVISOR_PID] = str(os.getpid())
    _wait_for_port(args.host, args.port)
    # Workers are separate processes that rebuild the app from the environment.
    options: dict[str, Any] = dict(factory=True, http=NoDelayH11Protocol, host=args.host, port=args.port,
                                   log_level=args.log_level, access_log=args.access_log, timeout_graceful_shutdown=20)
    sock = reuse_port_socket(args.host, args.port) if args.workers > 1 else None
    if sock is None:
        uvicorn.run("api.app:create_app", workers=args.workers if args.workers > 1 else None, **options)
        return
    # uvicorn.run with workers, but with a listening socket per worker (api.lifecycle.ReusePortSocket)
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config("api.app:create_app", workers=args.workers, **options)
    logging.getLogger("uvicorn.error").info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", args.host,
                                            args.port)
    Multiprocess(config, sockets=[sock]).run()


def _wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Return once ``host:port`` can be bound, waiting up to ``timeout`` for workers of a server that just died
    to finish and let go of it; after that uvicorn's own bind reports the error."""
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind((host, port))
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    return
        time.sleep(0.1)


def _check_and_prepare(args: argparse.Namespace) -> None:
    _check(args)
    _prepare(args)


def _check(args: argparse.Namespace) -> None:
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a TCP port", field="port")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers} must be at least 1", field="workers")
    if args.rate_limit is not None and args.rate_limit < 0:
        raise UsageError("--rate-limit must not be negative", field="rate_limit")
    if args.rate_burst is not None and args.rate_burst < 1:
        raise UsageError("--rate-burst must be at least 1", field="rate_burst")


def _prepare(args: argparse.Namespace) -> None:
    """Export the settings for the workers, check them once, and seed the database before serving."""
    from api.settings import load_settings
    from fits.store import open_db

    if args.db is not None:
        os.environ["SCALEPLAN_DB"] = os.path.abspath(args.db)
    if args.rate_limit is not None:
        os.environ["SCALEPLAN_RATE_LIMIT"] = repr(args.rate_limit)
    if args.rate_burst is not None:
        os.environ["SCALEPLAN_RATE_BURST"] = str(args.rate_burst)
    settings = load_settings()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.api_keys:
        logging.getLogger("api").warning(
            "no API keys configured (SCALEPLAN_API_KEYS / SCALEPLAN_API_KEYS_FILE): write endpoints will answer 403"
        )
    open_db(settings.db_path).conn.close()
