"""``OPTIONS`` answers with every method of the path.

litestar builds a path's automatic OPTIONS handler with the first route registered for that path; when a
second handler on the same path (``GET /v1/plans`` beside ``POST /v1/plans``) makes it rebuild the route, the
old OPTIONS handler is kept and keeps listing the first route's methods only. ``fix_allow`` points each
automatic OPTIONS handler at the route that serves it now.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute


def fix_allow(app: Litestar) -> None:
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            fn = getattr(handler.fn, "__wrapped__", handler.fn)
            if getattr(fn, "__name__", "") != "options_handler" or not fn.__closure__:
                continue
            for cell in fn.__closure__:
                if isinstance(cell.cell_contents, HTTPRoute):
                    cell.cell_contents = route
