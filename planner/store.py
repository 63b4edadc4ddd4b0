"""Plans in the shared SQLite file (table ``plans``, declared in planner.schema).

A plan is stored with the id of the fit it used, so it can be re-read and re-explained after refits.
An idempotency key makes a retried request return the plan the first attempt stored.
"""

from __future__ import annotations

import sqlite3

import msgspec
import sqlite_utils

from fits.db import now, transaction, where
from planner.errors import IdempotencyConflict, PlanError, PlanNotFound
from planner.plan import Plan
from planner.request import PlanRequest

_encoder = msgspec.json.Encoder()
_plan_decoder = msgspec.json.Decoder(Plan)


_STORED_PREFIX = b'{"id":null,'
"""How a stored plan's JSON starts (``Plan.id`` is its first field, stored as null): the served JSON is that
text with the row's id spliced in, so reading a plan does not decode and re-encode it."""


def _row_to_plan(row: dict) -> Plan:
    return msgspec.structs.replace(_plan_decoder.decode(row["plan"]), id=row["id"], created=row["created"])


def plan_json(stored: str | bytes, plan_id: int, created: str | None = None) -> bytes:
    """The JSON of a plan as served, from its stored text and row id (``created`` is stored in the text)."""
    raw = stored.encode() if isinstance(stored, str) else stored
    if raw.startswith(_STORED_PREFIX):
        return b'{"id":%d,' % plan_id + raw[len(_STORED_PREFIX):]
    plan = _plan_decoder.decode(raw)  # written by an older version: decode once to be sure of the shape
    return _encoder.encode(msgspec.structs.replace(plan, id=plan_id, created=created or plan.created))


def _by_key(db: sqlite_utils.Database, key: str) -> Plan | None:
    row = db.conn.execute("SELECT id, created, plan FROM plans WHERE idempotency_key = ?", [key]).fetchone()
    return _row_to_plan({"id": row[0], "created": row[1], "plan": row[2]}) if row else None


def _same_request(a: PlanRequest, b: PlanRequest) -> bool:
    return _encoder.encode(a) == _encoder.encode(b)


def find_by_key(db: sqlite_utils.Database, key: str, request: PlanRequest | None = None) -> Plan | None:
    """The plan stored under ``key``; PlanError if it was made from a different request."""
    plan = _by_key(db, key)
    if plan is not None and request is not None and not _same_request(plan.request, request):
        raise IdempotencyConflict(
            "idempotency_key",
            f"{key!r} was already used for a different request (plan {plan.id}); use a new key",
        )
    return plan


def save_plan(db: sqlite_utils.Database, plan: Plan, *, idempotency_key: str | None = None) -> Plan:
    """Store ``plan`` and return it with its id and created time.

    With an idempotency key already in the table, nothing is written and the stored plan comes back (a
    PlanError if that plan answered a different request).
    """
    return store_plan(db, plan, idempotency_key=idempotency_key)[0]


def store_plan(db: sqlite_utils.Database, plan: Plan, *, idempotency_key: str | None = None) -> tuple[Plan, bool]:
    """``save_plan`` that also says whether the key was already taken (the stored plan came back instead).

    The key is not looked up before the insert: the unique index on ``idempotency_key`` refuses a second
    row, and only then is the stored plan read (so the usual path reads nothing).
    """
    stored, replayed, _ = store_plan_json(db, plan, idempotency_key=idempotency_key)
    return stored, replayed


_INSERT = ("INSERT INTO plans (fit_id, created, compute_flops, idempotency_key, request, plan) "
           "VALUES (?, ?, ?, ?, ?, ?)")


def store_plan_json(
    db: sqlite_utils.Database, plan: Plan, *, idempotency_key: str | None = None
) -> tuple[Plan, bool, bytes]:
    """``store_plan`` that also returns the plan's JSON as served (encoded once, for the row and the answer).

    Inside an open transaction (a group commit) it joins it: the plan is durable when that commits.
    """
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key.strip()):
        raise PlanError("idempotency_key", "must be a non-empty string")
    created = now()
    stored = msgspec.structs.replace(plan, id=None, created=created)
    text = _encoder.encode(stored)
    row = [plan.fit.id, created, plan.compute_flops, idempotency_key, _encoder.encode(plan.request).decode(),
           text.decode()]
    try:
        with transaction(db):
            plan_id = db.conn.execute(_INSERT, row).lastrowid
    except sqlite3.IntegrityError:
        # The key is taken (stored before, or by another writer between a look-up and this insert).
        if idempotency_key is not None:
            existing = find_by_key(db, idempotency_key, plan.request)
            if existing is not None:
                return existing, True, _encoder.encode(existing)
        raise
    return msgspec.structs.replace(plan, id=plan_id, created=created), False, plan_json(text, plan_id)


def get_plan(db: sqlite_utils.Database, plan_id: int) -> Plan:
    """A stored plan by id; PlanNotFound if there is none."""
    if isinstance(plan_id, bool) or not isinstance(plan_id, int):
        try:
            plan_id = int(plan_id)
        except (TypeError, ValueError):
            raise PlanNotFound(f"no plan with id {plan_id!r}", field="plan_id") from None
    rows = list(db["plans"].rows_where("id = ?", [plan_id], limit=1))
    if not rows:
        raise PlanNotFound(f"no plan with id {plan_id}", field="plan_id")
    return _row_to_plan(rows[0])


def get_plan_json(db: sqlite_utils.Database, plan_id: int) -> bytes:
    """``get_plan`` as the served JSON, without decoding the stored plan."""
    row = db.conn.execute("SELECT plan, created FROM plans WHERE id = ?", [plan_id]).fetchone()
    if row is None:
        raise PlanNotFound(f"no plan with id {plan_id}", field="plan_id")
    return plan_json(row[0], plan_id, row[1])


def list_plans(
    db: sqlite_utils.Database,
    *,
    fit_id: int | None = None,
    since: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Plan]:
    """Stored plans, newest first. ``since``: created at or after this ISO time; ``before_id``: next page."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise PlanError("limit", f"must be a whole number from 1 to 1000, got {limit!r}")
    clause, args = where(("fit_id = ?", fit_id), ("created >= ?", since), ("id < ?", before_id))
    rows = db["plans"].rows_where(clause, args, order_by="id desc", limit=limit)
    return [_row_to_plan(r) for r in rows]
