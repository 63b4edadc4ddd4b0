"""The web pages: server-rendered HTML and SVG checked over HTTP, and the whole flow in headless Chromium.

The browser tests need Chromium (Debian's ``chromium``; ``SCALEPLAN_CHROMIUM`` names another binary) and the
``playwright`` package from the test extra; without either they skip and say which. They drive a real
``python -m api`` process on 127.0.0.1 and save screenshots under the test's temporary folder
(``SCALEPLAN_SCREENSHOTS`` copies them to another folder as well).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from api.schemas import FieldError, Problem
from api.testing import ServerProcess
from api.web import pictures, svg, units
from api.web.form import PlanForm, field_errors
from api.web.pages import CSP

SVG_NS = "{http://www.w3.org/2000/svg}"
PLAN_BODY = {"compute_flops": 1e21, "hardware": {"gpu": "H100-SXM", "count": 64, "price_per_gpu_hour": 2.5}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("web")
    with ServerProcess(directory / "scaleplan.db", env={"SCALEPLAN_RATE_LIMIT": "0"}) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _points(markup: str) -> dict[str, list[tuple[float, float]]]:
    """Pixel centres of each series' points in one chart."""
    root = ET.fromstring(markup)
    out: dict[str, list[tuple[float, float]]] = {}
    for group in root.iter(f"{SVG_NS}g"):
        if "series" in (group.get("class") or ""):
            out[group.get("data-series")] = [(float(c.get("cx")), float(c.get("cy")))
                                             for c in group.iter(f"{SVG_NS}circle")]
    return out


# ---------------------------------------------------------------------------------------------- no browser


@pytest.mark.parametrize("budget", [1e17, 1e21, 1e27])
def test_pictures_stay_inside_the_frame_from_1e17_to_1e27_flops(budget: float) -> None:
    from fits.store import list_fits, open_db
    from planner import PlanRequest
    from planner.solve import solve_plan

    db = open_db(":memory:")
    fits = list_fits(db)
    fit = next(f for f in fits if f.name == "besiroglu2024")
    plan = solve_plan(PlanRequest(compute_flops=budget), fit)
    grid = pictures.budget_grid(plan.compute_flops, pictures.FRONTIER_DECADES, pictures.FRONTIER_PER_DECADE)
    charts = {
        "frontier": (pictures.frontier_chart(plan, fit), {"N (parameters)": len(grid), "D (tokens)": len(grid)}),
        "isoflop": (pictures.isoflop_chart(plan, fit), {"loss at this budget": pictures.ISOFLOP_POINTS}),
        "compare": (pictures.compare_chart(plan, fits), None),
    }
    for key, (chart, expected) in charts.items():
        markup = svg.render(chart)
        series = _points(markup)
        if expected is not None:
            assert {name: len(pts) for name, pts in series.items()} == expected, key
        else:
            assert len(series) == 3 and all(len(p) >= 10 for p in series.values()), (key, series.keys())
        for name, pts in series.items():
            for x, y in pts:
                assert svg.LEFT - 0.1 <= x <= svg.WIDTH - svg.RIGHT + 0.1, (key, name, x)
                assert svg.TOP - 0.1 <= y <= svg.HEIGHT - svg.BOTTOM + 0.1, (key, name, y)
        assert all(math.isfinite(float(v)) for v in re.findall(r'data-[xy]="([^"]+)"', markup)), key
    frontier = charts["frontier"][0]
    assert frontier.bands and all(lo <= hi for lo, hi in zip(frontier.bands[0].lows, frontier.bands[0].highs,
                                                             strict=True))
    iso = charts["isoflop"][0]
    assert all(lo <= p.y <= hi for p, lo, hi in zip(iso.series[0].points, iso.bands[0].lows, iso.bands[0].highs,
                                                    strict=True))
    # The plan sits at the bottom of its own profile (an unconstrained plan is the optimum).
    best = min(iso.series[0].points, key=lambda p: p.y)
    assert abs(math.log10(best.x / plan.params)) < 0.15


def test_units_people_read() -> None:
    assert units.params(2.78e9) == "2.78 B params"
    assert units.count(6.0e13) == "60 T"
    assert units.count(5.2e16) == "52,000 T"
    assert units.flops(8.64e20) == "8.64e20 FLOPs (10 PF-days)"
    assert units.hours(72) == "72 h (3 days)"
    assert units.dollars(1.5e7) == "$15 M" and units.dollars(4321.0) == "$4,321"
    assert units.percent(0.4) == "40%"


def test_a_problem_lands_on_the_input_it_names() -> None:
    problem = Problem(type="t", title="Validation failed", status=422, detail="hardware: needs one",
                      field="hardware", errors=[FieldError(field="hardware", message="needs one")])
    assert field_errors(problem) == ({"hardware.gpu": "needs one"}, [])
    problem = Problem(type="t", title="x", status=422, detail="the request is outside the range")
    assert field_errors(problem) == ({}, ["the request is outside the range"])
    form = PlanForm.parse({"budget": "hours", "hours": "72", "compute_flops": "1e21", "hardware.gpu": "H100",
                           "hardware.count": "64", "seq_len": "4096", "fit": "3"})
    assert form.body() == {"hours": 72, "seq_len": 4096, "hardware": {"gpu": "H100", "count": 64}, "fit": 3}


def test_pages_render_without_javascript_with_strict_headers(http: httpx.Client) -> None:
    api = http.post("/v1/plans", json=PLAN_BODY).json()
    posted = http.post("/plans", data={"budget": "compute_flops", "compute_flops": "1e21", "hardware.gpu": "H100-SXM",
                                       "hardware.count": "64", "hardware.price_per_gpu_hour": "2.5"})
    assert posted.status_code == 303 and re.fullmatch(r"/plans/\d+", posted.headers["location"])
    page = http.get(posted.headers["location"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-cache"
    html = page.text
    assert f'data-value="{api["params"]!r}"' in html and units.count(api["params"]) in html
    assert units.loss(api["predicted_loss"]["low"]) in html and units.dollars(api["time"]["cost"]) in html
    # Nothing is fetched from another origin: every src/href is a path on this server or a fragment.
    assert not re.findall(r'(?:src|href|action)="(?!/|#)[^"]*"', html)
    again = http.get(posted.headers["location"], headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    css = http.get("/static/style.css")
    assert css.status_code == 200 and "max-age" in css.headers["cache-control"]
    assert http.get("/static/../pages.py").status_code == 404
    for path in ("/", "/plans", "/fits", "/fits/besiroglu2024", "/checks"):
        assert http.get(path).status_code == 200, path
    assert http.get("/plans/999999").status_code == 404


def test_bad_form_input_gets_the_api_problem_at_its_field(http: httpx.Client) -> None:
    for form, body, field in [
        ({"budget": "compute_flops", "compute_flops": "-5"}, {"compute_flops": -5}, "compute_flops"),
        ({"budget": "hours", "hours": "10"}, {"hours": 10}, "hardware.gpu"),
        ({"budget": "compute_flops", "compute_flops": "1e21", "hardware.gpu": "H100", "hardware.count": "lots"},
         {"compute_flops": 1e21, "hardware": {"gpu": "H100", "count": "lots"}}, "hardware.count"),
    ]:
        problem = http.post("/v1/plans", json=body).json()
        page = http.post("/plans", data=form)
        assert page.status_code == problem["status"] == 422
        message = re.search(rf'data-error-for="{re.escape(field)}"[^>]*>([^<]*)<', page.text)
        assert message, (field, page.text[:2000])
        assert msgspec.json.decode(msgspec.json.encode(message.group(1))) == _html_text(problem["errors"][0]["message"])


def _html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;").replace(
        "'", "&#39;")


# ---------------------------------------------------------------------------------------------- browser


def _chromium() -> str:
    path = os.environ.get("SCALEPLAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path or not Path(path).is_file():
        pytest.skip(f"browser tests need Chromium ({path or 'chromium not on PATH'}): apt-get install -y chromium "
                    "(or set SCALEPLAN_CHROMIUM to its path)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    path = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (the test extra)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


class Tab:
    """A page with every console error and uncaught exception recorded, and screenshots kept."""

    def __init__(self, browser: object, folder: Path, width: int = 1280, height: int = 900) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.folder = folder
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def shot(self, name: str, selector: str | None = None, full: bool = True) -> Path:
        path = self.folder / f"{name}.png"
        if selector:
            self.page.locator(selector).screenshot(path=path)
        else:
            self.page.screenshot(path=path, full_page=full)
        assert path.stat().st_size > 2000, f"{name}: blank screenshot"
        copy = os.environ.get("SCALEPLAN_SCREENSHOTS")
        if copy:
            Path(copy).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(copy) / path.name)
        return path

    def close(self) -> None:
        self.context.close()


def _circles(page: object, chart: str) -> dict[str, int]:
    return page.evaluate(
        """key => Object.fromEntries([...document.querySelectorAll(`#chart-${key} g.series`)].map(
               g => [g.dataset.series, g.querySelectorAll('circle.pt').length]))""", chart)


def test_browser_plan_form_result_pictures_and_share_link(browser: object, server: ServerProcess,
                                                          http: httpx.Client, tmp_path: Path) -> None:
    api = http.post("/v1/plans", json=PLAN_BODY).json()
    tab = Tab(browser, tmp_path)
    page = tab.page
    page.goto(f"{server.url}/")
    page.keyboard.press("Tab")  # the first stop is the skip link, then the navigation
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_label("FLOPs", exact=True).check()
    page.get_by_label("Compute (FLOPs)").fill("1e21")
    page.get_by_label("Accelerator", exact=True).select_option("H100-SXM")
    page.get_by_label("Number of accelerators").fill("64")
    page.get_by_label("Price per accelerator-hour ($)").fill("2.5")
    tab.shot("form")
    page.get_by_label("Compute (FLOPs)").press("Enter")  # submitting from the keyboard
    page.wait_for_url(re.compile(r".*/plans/\d+$"))
    for name, key in [("params", "params"), ("tokens", "tokens")]:
        card = page.locator(f'.card[data-field="{name}"] .big')
        assert float(card.get_attribute("data-value")) == pytest.approx(api[key], rel=1e-12)
        assert card.inner_text() == units.count(api[key])
    loss = page.locator('.card[data-field="predicted_loss"]')
    assert loss.locator(".big").inner_text() == units.loss(api["predicted_loss"]["mean"])
    assert units.loss(api["predicted_loss"]["high"]) in loss.inner_text()
    for field in ("steps", "batch_tokens", "learning_rate", "time.wall_clock_hours", "time.cost", "shape.n_layer"):
        cell = page.locator(f'tr[data-field="{field}"] td')
        value = api
        for part in field.split("."):
            value = value[part]
        assert float(cell.get_attribute("data-value")) == pytest.approx(value, rel=1e-12), field
    assert page.locator("section.warnings li").count() == len(api["warnings"])
    assert page.locator("ul.assumptions li").count() == len(api["assumptions"])
    grid = len(pictures.budget_grid(api["compute_flops"], pictures.FRONTIER_DECADES, pictures.FRONTIER_PER_DECADE))
    assert _circles(page, "frontier") == {"N (parameters)": grid, "D (tokens)": grid}
    assert _circles(page, "isoflop") == {"loss at this budget": pictures.ISOFLOP_POINTS}
    compared = _circles(page, "compare")
    assert len(compared) == 3 and all(n >= 10 for n in compared.values())
    assert page.locator("#chart-isoflop g.marker.alt").count() == len(api["alternatives"])
    assert page.locator("#chart-frontier polygon.band").count() == 2
    hover = page.locator("#chart-frontier g.series circle.pt").first.locator("title").text_content()
    assert hover.startswith("C = ") and "N = " in hover
    for key in ("frontier", "isoflop", "compare"):
        box = page.locator(f"#chart-{key}").bounding_box()
        assert box and box["width"] > 250 and box["height"] > 150, key
    tab.shot("plan-desktop")
    tab.shot("frontier", "#figure-frontier")
    tab.shot("isoflop", "#figure-isoflop")
    tab.shot("compare", "#figure-compare")
    share = page.locator("#share").get_attribute("href")
    page.locator("#share").click()
    page.wait_for_load_state()
    assert page.url.endswith(share)
    assert page.locator('.card[data-field="params"] .big').inner_text() == units.count(api["params"])
    assert tab.errors == []
    assert all(url.startswith(server.url) for url in tab.requests), tab.requests
    tab.close()

    phone = Tab(browser, tmp_path, width=390, height=844)
    phone.page.goto(f"{server.url}{share}")
    width = phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the plan page scrolls sideways at phone width ({width} px)"
    phone.shot("plan-phone-top", None, full=False)
    phone.shot("plan-phone")
    assert phone.errors == []
    phone.close()


def test_browser_bad_input_shows_the_error_at_the_field(browser: object, server: ServerProcess,
                                                        http: httpx.Client, tmp_path: Path) -> None:
    problem = http.post("/v1/plans", json={"compute_flops": 5.0}).json()
    tab = Tab(browser, tmp_path)
    page = tab.page
    page.goto(f"{server.url}/")
    page.get_by_label("Compute (FLOPs)").fill("5")
    page.get_by_role("button", name="Make the plan").click()
    page.wait_for_load_state()
    field = page.get_by_label("Compute (FLOPs)")
    assert field.get_attribute("aria-invalid") == "true" and field.input_value() == "5"
    error = page.locator('[data-error-for="compute_flops"]')
    assert error.inner_text() == problem["errors"][0]["message"]
    assert problem["detail"] in page.locator("#problem").inner_text()
    tab.shot("form-error")
    # 422 for the document is the one console message Chromium writes; nothing else may be there.
    assert [e for e in tab.errors if "422" not in e] == []
    tab.close()


def test_browser_fit_and_check_pages_linked_from_the_plan(browser: object, server: ServerProcess,
                                                          http: httpx.Client, tmp_path: Path) -> None:
    from fits.store import open_db
    from verifier.check.records import CheckItem, CheckSummary, create_check, overall_verdict, save_check

    plan = http.post("/v1/plans", json={"compute_flops": 3e20}).json()
    db = open_db(server.db)
    items = [
        CheckItem(kind="final_loss", name=f"run {i}", predicted=4.0 + i / 10, observed=4.0 + i / 10 + err,
                  error=err / (4.0 + i / 10), metric="relative error (obs - pred)/pred", tolerance=0.05,
                  rule="|error| <= 0.05", verdict="pass" if abs(err / (4.0 + i / 10)) <= 0.05 else "fail",
                  unit="nats/token")
        for i, err in enumerate([0.05, -0.08, 0.3, 0.01])
    ]
    check = create_check(db, plan["id"], "corpus:test", CheckSummary(passed=3, failed=1))
    check.items, check.status, check.verdict = items, "complete", overall_verdict(items)
    check = save_check(db, check)
    db.conn.close()

    tab = Tab(browser, tmp_path)
    page = tab.page
    page.goto(f"{server.url}/plans/{plan['id']}")
    page.get_by_role("link", name=f"check {check.id}").click()
    page.wait_for_url(re.compile(rf".*/checks/{check.id}$"))
    assert page.locator("h1 .verdict").inner_text() == "fail"
    assert page.locator("table.items tbody tr").count() == len(items)
    assert sum(_circles(page, "check").values()) == len(items)
    tab.shot("check")
    page.goto(f"{server.url}/plans/{plan['id']}")
    page.locator(".muted a").first.click()  # the fit the plan used
    page.wait_for_url(re.compile(rf".*/fits/{plan['fit']['id']}$"))
    assert plan["fit"]["name"] in page.locator("h1").inner_text()
    assert page.locator("table.coefficients tbody tr").count() >= 5
    assert page.get_by_role("link", name=f"plan {plan['id']}").count() == 1
    tab.shot("fit")
    page.goto(f"{server.url}/fits")
    assert page.locator("tr[data-fit]").count() >= 3
    assert tab.errors == []
    tab.close()


def test_templates_and_assets_ship_in_the_package_and_the_image() -> None:
    """pyproject's package data covers every template and asset, and .dockerignore keeps them in the image
    (the Dockerfile copies api/ and pip-installs the package, so the image serves what the wheel holds)."""
    import fnmatch
    import tomllib

    repo = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["api.web"]
    web = repo / "api" / "web"
    shipped = [p.relative_to(web).as_posix() for p in web.rglob("*") if p.is_file() and p.suffix != ".py"
               and "__pycache__" not in p.parts]
    assert shipped and all(any(fnmatch.fnmatch(name, pat) for pat in patterns) for name in shipped), shipped
    ignored = [line.strip() for line in (repo / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert not [n for n in shipped for pat in ignored if fnmatch.fnmatch(Path(n).name, pat.lstrip("*/"))]
    dockerfile = (repo / "Dockerfile").read_text()
    assert "COPY api ./api" in dockerfile and "RUN pip install ." in dockerfile
