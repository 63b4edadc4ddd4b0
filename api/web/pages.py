"""The HTML pages: plan form and result, stored plans, fits and checks, and the static assets they use.

Pages are rendered on the server (Jinja2 templates in this package) from the same records and the same code
paths as the JSON API under /v1, and carry strict headers: a content security policy that allows only this
origin's stylesheet and script, no framing, and caching rules per kind of page.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from markupsafe import Markup

from api.body import decode
from api.database import Database
from api.metrics import Registry
from api.problems import ApiProblem, _msgspec_value_problem, library_problem, outside_the_law, problem_type
from api.schemas import MAX_ID, Problem
from api.web import fields, pictures, svg, units
from api.web.form import BUDGET_KINDS, PlanForm, field_errors
from fits.errors import ScaleplanError
from fits.fit import Fit, fit_ref
from planner import Plan, PlanRequest
from planner.hardware import PEAK_TFLOPS
from verifier.check.records import Check

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
PAGE_CACHE = "no-cache"
"""HTML is revalidated on every visit (cheap: an ETag answers 304), so new plans, fits and checks show at once."""
STATIC_CACHE = "public, max-age=3600"
PLAN_DECODER = msgspec.json.Decoder(PlanRequest)
COMPARED_FITS = 3

_env = Environment(loader=PackageLoader("api.web", "templates"), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
_env.globals.update(units=units, budget_kinds=BUDGET_KINDS)


def _static_bytes(name: str) -> bytes | None:
    if "/" in name or name.startswith("."):
        return None
    item = resources.files("api.web").joinpath("static", name)
    return item.read_bytes() if item.is_file() else None


def asset_version() -> str:
    """A hash of the static assets, appended to their URLs so a new release is fetched despite the cache."""
    digest = hashlib.sha256()
    for item in sorted(resources.files("api.web").joinpath("static").iterdir(), key=lambda p: p.name):
        digest.update(item.name.encode() + item.read_bytes())
    return digest.hexdigest()[:12]


_env.globals["asset_version"] = asset_version()


def _respond(request: Request[Any, Any, Any], body: bytes, media_type: str, status: int = 200,
             cache: str = PAGE_CACHE) -> Response[bytes]:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {**SECURITY_HEADERS, "Cache-Control": cache, "ETag": etag, "Vary": "Accept-Encoding"}
    if status == 200 and request.headers.get("if-none-match") == etag:
        return Response(b"", status_code=304, headers=headers)
    return Response(body, status_code=status, media_type=media_type, headers=headers)


def render(request: Request[Any, Any, Any], template: str, status: int = 200, **context: Any) -> Response[bytes]:
    context.setdefault("path", request.url.path)  # the page the navigation marks as current
    html = _env.get_template(template).render(**context)
    return _respond(request, html.encode(), "text/html; charset=utf-8", status)


def _problem(exc: Exception) -> Problem:
    """The problem-details body the JSON API sends for this failure."""
    if isinstance(exc, ScaleplanError):
        exc = library_problem(exc)
    elif isinstance(exc, msgspec.ValidationError):
        exc = _msgspec_value_problem(exc)
    assert isinstance(exc, ApiProblem)
    return Problem(type=problem_type(exc.status_code), title=exc.title, status=exc.status_code, detail=exc.detail,
                   instance="/v1/plans", field=exc.field, errors=exc.errors)


# ---------------------------------------------------------------------------------------------- data


@outside_the_law
def _make(db: Any, request: PlanRequest) -> Plan:
    from planner.service import make_or_replay_plan

    return make_or_replay_plan(request, db)[0]


def _form_data(db: Any) -> list[Fit]:
    from fits.store import list_fits

    return list_fits(db)


def _plan_data(db: Any, plan_id: int) -> tuple[Plan, Fit, list[Fit], list[Check]]:
    from fits.store import active_fits, get_fit, list_fits
    from planner import get_plan
    from verifier.check.records import list_checks

    plan = get_plan(db, plan_id)
    fit = get_fit(db, plan.fit.id)
    # Active fits first (what people plan with), then the other stored sets, for two or three on one chart.
    candidates = [*active_fits(db), *list_fits(db)]
    others = list({f.id: f for f in candidates if f.id != fit.id}.values())[: COMPARED_FITS - 1]
    return plan, fit, others, list_checks(db, plan_id)


def _plans(db: Any, fit_id: int | None) -> list[Plan]:
    from planner import list_plans

    return list_plans(db, fit_id=fit_id, limit=50)


def _fit_data(db: Any, ref: str) -> tuple[Fit, list[Plan]]:
    from fits.store import get_fit
    from planner import list_plans

    fit = get_fit(db, fit_ref(ref))
    return fit, list_plans(db, fit_id=fit.id, limit=20)


def _checks(db: Any) -> list[Check]:
    from verifier.check.records import get_check

    ids = [row["id"] for row in db["checks"].rows_where(select="id", order_by="id desc", limit=100)] \
        if "checks" in db.table_names() else []
    return [get_check(db, i) for i in ids]


def _check(db: Any, check_id: int) -> Check:
    from verifier.check.records import get_check

    return get_check(db, check_id)


def _plan_pictures(plan: Plan, fit: Fit, others: list[Fit]) -> list[tuple[svg.Chart, Markup, Markup]]:
    charts = [pictures.frontier_chart(plan, fit), pictures.isoflop_chart(plan, fit),
              pictures.compare_chart(plan, [fit, *others])]
    return [(c, Markup(svg.render(c)), Markup(svg.legend(c))) for c in charts]


# ---------------------------------------------------------------------------------------------- pages


class WebController(Controller):
    """Human-facing pages beside the JSON API; same origin, same database, same code paths."""

    include_in_schema = False
    dto = None
    return_dto = None

    @get("/")
    async def plan_form(self, request: Request[Any, Any, Any], database: NamedDependency[Database]) -> Response[bytes]:
        fits_ = await database.run(_form_data)
        return render(request, "form.html", form=PlanForm({"budget": "compute_flops"}), fits=fits_,
                      gpus=list(PEAK_TFLOPS), errors={}, loose=[], problem=None)

    @post("/plans", status_code=303)
    async def plan_submit(self, request: Request[Any, Any, Any], database: NamedDependency[Database],
                          registry: NamedDependency[Registry]) -> Response[bytes]:
        data = await request.form()
        form = PlanForm.parse({key: data.get(key) for key in data})
        try:
            plan_request = decode(PLAN_DECODER, form.encoded())
            plan = await database.run(_make, plan_request)
        except (ApiProblem, ScaleplanError, msgspec.ValidationError) as exc:
            problem = _problem(exc)
            errors, loose = field_errors(problem)
            fits_ = await database.run(_form_data)
            return render(request, "form.html", status=problem.status, path="/", form=form, fits=fits_,
                          gpus=list(PEAK_TFLOPS),
                          errors=errors, loose=loose, problem=problem)
        registry.plan_created()
        return Response(b"", status_code=303, headers={**SECURITY_HEADERS, "Location": f"/plans/{plan.id}"})

    @get("/plans")
    async def plans(self, request: Request[Any, Any, Any], database: NamedDependency[Database]) -> Response[bytes]:
        items = await database.run(_plans, None)
        return render(request, "plans.html", plans=items)

    @get("/plans/{plan_id:int}")
    async def plan_page(self, request: Request[Any, Any, Any], database: NamedDependency[Database],
                        plan_id: int) -> Response[bytes]:
        if not 1 <= plan_id <= MAX_ID:
            raise ApiProblem(404, f"no plan with id {plan_id}", field="plan_id", source="path")
        plan, fit, others, checks = await database.run(_plan_data, plan_id)
        charts = await asyncio.to_thread(_plan_pictures, plan, fit, others)
        rows, sections = fields.rows_of(plan, skip=fields.PLAN_SPECIAL)
        return render(request, "plan.html", plan=plan, fit=fit, checks=checks, charts=charts, rows=rows,
                      sections=sections, request_rows=fields.request_rows(plan.request))

    @get("/fits")
    async def fits(self, request: Request[Any, Any, Any], database: NamedDependency[Database]) -> Response[bytes]:
        return render(request, "fits.html", fits=await database.run(_form_data))

    @get("/fits/{ref:str}")
    async def fit_page(self, request: Request[Any, Any, Any], database: NamedDependency[Database],
                       ref: str) -> Response[bytes]:
        fit, plans_ = await database.run(_fit_data, ref)
        rows, sections = fields.rows_of(fit, skip=frozenset({"coefficients", "intervals", "provenance", "warnings"}))
        return render(request, "fit.html", fit=fit, plans=plans_, rows=rows, sections=sections)

    @get("/checks")
    async def checks(self, request: Request[Any, Any, Any], database: NamedDependency[Database]) -> Response[bytes]:
        return render(request, "checks.html", checks=await database.run(_checks))

    @get("/checks/{check_id:int}")
    async def check_page(self, request: Request[Any, Any, Any], database: NamedDependency[Database],
                         check_id: int) -> Response[bytes]:
        if not 1 <= check_id <= MAX_ID:
            raise ApiProblem(404, f"no check with id {check_id}", field="check_id", source="path")
        check = await database.run(_check, check_id)
        chart = pictures.check_chart(check)
        has_png = bool(check.plot_path) and Path(check.plot_path).is_file()
        return render(request, "check.html", check=check, chart=chart, chart_svg=Markup(svg.render(chart)),
                      chart_legend=Markup(svg.legend(chart)), has_png=has_png,
                      summary=[r for r in fields.rows_of(check.summary, "summary.")[0] if r.text not in ("—", "none")])

    @get("/checks/{check_id:int}/picture.png")
    async def check_png(self, request: Request[Any, Any, Any], database: NamedDependency[Database],
                        check_id: int) -> Response[bytes]:
        check = await database.run(_check, check_id)
        path = Path(check.plot_path) if check.plot_path else None
        if path is None or path.suffix != ".png" or not path.is_file():
            raise ApiProblem(404, f"check {check_id} has no picture", field="check_id", source="path")
        return _respond(request, await asyncio.to_thread(path.read_bytes), "image/png", cache=STATIC_CACHE)

    @get("/static/{name:str}")
    async def static(self, request: Request[Any, Any, Any], name: str) -> Response[bytes]:
        body = _static_bytes(name)
        if body is None:
            raise ApiProblem(404, f"no static file {name!r}", field="name", source="path")
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if media.startswith("text/") or media.endswith("javascript"):
            media += "; charset=utf-8"
        return _respond(request, body, media, cache=STATIC_CACHE)
