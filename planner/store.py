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


def _row_to_plan(row: dict) -> Plan:
    return msgspec.structs.replace(_plan_decoder.decode(row["plan"]), id=row["id"], created=row["created"])


def _by_key(db: sqlite_utils.Database, key: str) -> Plan | None:
    rows = list(db["plans"].rows_where("idempotency_key = ?", [key], limit=1))
    return _row_to_plan(rows[0]) if rows else None


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
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key.strip()):
        raise PlanError("idempotency_key", "must be a non-empty string")
    created = now()
    stored = msgspec.structs.replace(plan, id=None, created=created)
    row = {
        "fit_id": plan.fit.id,
        "created": created,
        "compute_flops": plan.compute_flops,
        "idempotency_key": idempotency_key,
        "request": _encoder.encode(plan.request).decode(),
        "plan": _encoder.encode(stored).decode(),
    }
    try:
        with transaction(db):
            plan_id = db["plans"].insert(row).last_pk
    except sqlite3.IntegrityError:
        # The key is taken (stored before, or by another writer between a look-up and this insert).
        if idempotency_key is not None:
            existing = find_by_key(db, idempotency_key, plan.request)
            if existing is not None:
                return existing, True
        raise
    return msgspec.structs.replace(plan, id=plan_id, created=created), False


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
