"""Service settings: arguments to ``create_app`` win, then environment variables, then defaults."""

from __future__ import annotations

import os
from typing import TypedDict, Unpack

import msgspec

from api.ratelimit import DEFAULT_BURST, DEFAULT_RATE

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024


class Settings(msgspec.Struct, kw_only=True):
    db_path: str | None = None
    """SQLite file; None means fits.store's default (SCALEPLAN_DB, else ./scaleplan.db)."""
    api_keys: tuple[bytes, ...] = ()
    rate_limit: float = DEFAULT_RATE
    """Requests per second per client; 0 turns the limiter off."""
    rate_burst: int = DEFAULT_BURST
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


def _env_number(name: str, default: float, kind: type[float] | type[int]) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a {kind.__name__}") from None
    if value < 0:
        raise ValueError(f"{name}={raw!r} must not be negative")
    return value


class Overrides(TypedDict, total=False):
    """Settings given as arguments (to ``create_app`` or ``load_settings``); None or absent: the environment's."""

    api_keys: str | None
    """Comma-separated, like SCALEPLAN_API_KEYS."""
    api_keys_file: str | os.PathLike[str] | None
    rate_limit: float | None
    rate_burst: int | None
    max_body_bytes: int | None


def load_settings(db_path: str | os.PathLike[str] | None = None, **overrides: Unpack[Overrides]) -> Settings:
    from api.auth import load_api_keys

    rate_limit, rate_burst = overrides.get("rate_limit"), overrides.get("rate_burst")
    max_body_bytes = overrides.get("max_body_bytes")
    path = os.fspath(db_path) if db_path is not None else os.environ.get("SCALEPLAN_DB") or None
    settings = Settings(
        db_path=path,
        api_keys=load_api_keys(overrides.get("api_keys"), overrides.get("api_keys_file")),
        rate_limit=rate_limit if rate_limit is not None else _env_number("SCALEPLAN_RATE_LIMIT", DEFAULT_RATE, float),
        rate_burst=int(rate_burst if rate_burst is not None
                       else _env_number("SCALEPLAN_RATE_BURST", DEFAULT_BURST, int)),
        max_body_bytes=int(max_body_bytes if max_body_bytes is not None
                           else _env_number("SCALEPLAN_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, int)),
    )
    if settings.rate_limit < 0 or settings.rate_burst < 1 or settings.max_body_bytes < 1:
        raise ValueError("rate_limit must be >= 0, rate_burst >= 1 and max_body_bytes >= 1")
    return settings
