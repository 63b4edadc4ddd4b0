"""API keys for the write endpoints: ``Authorization: Bearer <key>``, compared in constant time.

Keys come from ``SCALEPLAN_API_KEYS`` (comma-separated) and/or ``SCALEPLAN_API_KEYS_FILE`` (one per line,
``#`` comments allowed). Reads and plans stay open; only writes that change shared state need a key.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

BEARER_SCHEME = "bearerAuth"
"""Name of the security scheme in the OpenAPI document."""


def load_api_keys(
    keys: str | None = None,
    keys_file: str | os.PathLike[str] | None = None,
) -> tuple[bytes, ...]:
    """Keys from the arguments, else from ``SCALEPLAN_API_KEYS`` / ``SCALEPLAN_API_KEYS_FILE``."""
    keys = keys if keys is not None else os.environ.get("SCALEPLAN_API_KEYS", "")
    keys_file = keys_file if keys_file is not None else os.environ.get("SCALEPLAN_API_KEYS_FILE") or None
    found = [k.strip() for k in keys.split(",")]
    if keys_file:
        path = Path(keys_file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"SCALEPLAN_API_KEYS_FILE points at {path}, which is not a file")
        found += [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return tuple(dict.fromkeys(k.encode() for k in found if k))


def key_matches(presented: bytes, keys: Iterable[bytes]) -> bool:
    """Constant-time comparison against every key, so timing reveals neither which key nor how much matched."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key)
    return matched


def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for write endpoints: 401 without a bearer key, 403 with one that is not configured."""
    header = connection.headers.get("authorization")
    if not header:
        raise NotAuthorizedException("this endpoint changes stored state; send 'Authorization: Bearer <api key>'")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException("the Authorization header must be 'Bearer <api key>'")
    keys: tuple[bytes, ...] = connection.app.state.api_keys
    if not keys:
        raise PermissionDeniedException(
            "the server has no API keys configured; set SCALEPLAN_API_KEYS or SCALEPLAN_API_KEYS_FILE on the server"
        )
    if not key_matches(token.encode(), keys):
        raise PermissionDeniedException("the API key is not valid for this server")
