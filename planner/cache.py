"""Work a planning service need not repeat: which fit a request names, and the plan a fit gives a request.

One ``SolveCache`` belongs to one database (fit ids are per file) and is used from one thread. A resolved fit
is kept while the fits table is unchanged (same rows, same active set: one indexed query checks it per
request), so an import, a new version or an activation is seen at once. A solved plan is a pure function of
the request and the fit's stored row (coefficients never change under an id), so it is kept by (request, fit
id) in a bounded LRU and comes back without solving again; storing gives it its own id and time.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import msgspec
import sqlite_utils

from fits.fit import Fit
from planner.plan import Plan
from planner.request import PlanRequest

_encoder = msgspec.json.Encoder()
_SIGNATURE = "SELECT COUNT(*), MAX(id), (SELECT group_concat(id) FROM fits WHERE active = 1) FROM fits"


class SolveCache:
    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._signature: Any = None
        self._fits: dict[tuple[Any, ...], tuple[Fit, bool]] = {}
        self._plans: OrderedDict[tuple[bytes, int | None], Plan] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def resolve_fit(self, db: sqlite_utils.Database, fit: str | int | None, law: str | None,
                    scope: str | None) -> tuple[Fit, bool]:
        """``planner.service.resolve_fit``, remembered until the fits table changes."""
        from planner.service import resolve_fit

        signature = db.conn.execute(_SIGNATURE).fetchone()
        if signature != self._signature:
            self._fits.clear()
            self._signature = signature
        key = (type(fit), fit, law, scope)
        found = self._fits.get(key)
        if found is None:
            found = self._fits[key] = resolve_fit(db, fit, law, scope)
        return found

    def plan(self, request: PlanRequest, fit: Fit) -> Plan | None:
        key = (_encoder.encode(request), fit.id)
        plan = self._plans.get(key)
        if plan is None:
            self.misses += 1
            return None
        self.hits += 1
        self._plans.move_to_end(key)
        return plan

    def keep(self, request: PlanRequest, fit: Fit, plan: Plan) -> None:
        self._plans[(_encoder.encode(request), fit.id)] = plan
        if len(self._plans) > self.size:
            self._plans.popitem(last=False)
