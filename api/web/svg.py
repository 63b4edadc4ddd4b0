"""Charts drawn on the server as inline SVG: log or linear axes, point series, interval bands and markers.

Every data point is a ``<circle class="pt">`` carrying its values in ``data-x``/``data-y`` and a ``<title>``
that browsers show on hover, so the pictures need no script and no external library. Axes are computed from
the data (whole decades on log axes), so any range from 1e9 to 1e40 FLOPs lands inside the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 34, 52


@dataclass
class Point:
    x: float
    y: float
    label: str


@dataclass
class Series:
    name: str
    points: list[Point]
    style: int = 0
    """Index of the colour class (``s0`` …) in the stylesheet."""
    line: bool = True
    """Join the points (a curve); False for separate items."""


@dataclass
class Band:
    name: str
    xs: list[float]
    lows: list[float]
    highs: list[float]
    style: int = 0


@dataclass
class Marker:
    name: str
    x: float
    y: float
    label: str
    kind: str = "plan"
    """CSS class of the marker: ``plan``, ``optimum`` or ``alt``."""


@dataclass
class Chart:
    key: str
    """Stable id of the chart (``frontier``, ``isoflop``, ``compare``, ``check``)."""
    title: str
    x_label: str
    y_label: str
    x_log: bool = True
    y_log: bool = True
    series: list[Series] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    note: str = ""


def _finite(v: float, log: bool) -> bool:
    return math.isfinite(v) and (v > 0 or not log)


class Axis:
    """Maps data values onto pixels; log axes span whole decades, linear ones round steps of 1, 2 or 5."""

    def __init__(self, values: list[float], log: bool, lo_px: float, hi_px: float) -> None:
        self.log = log
        vals = [v for v in values if _finite(v, log)] or ([1.0, 10.0] if log else [0.0, 1.0])
        lo, hi = min(vals), max(vals)
        if log:
            a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
            if b <= a:
                b = a + 1
            self.lo, self.hi = float(a), float(b)
            step = max(1, math.ceil((b - a) / 8))
            self.ticks = [10.0 ** k for k in range(a, b + 1, step)]
        else:
            if hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
            pad = (hi - lo) * 0.06
            lo, hi = lo - pad, hi + pad
            raw = (hi - lo) / 6
            mag = 10 ** math.floor(math.log10(raw))
            step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
            first = math.ceil(lo / step) * step
            self.lo, self.hi = lo, hi
            self.ticks = [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]
            self.step = step
        self.lo_px, self.hi_px = lo_px, hi_px

    def __call__(self, v: float) -> float:
        t = (math.log10(v) if self.log else v)
        return self.lo_px + (t - self.lo) / (self.hi - self.lo) * (self.hi_px - self.lo_px)

    def tick_text(self, v: float) -> str:
        if self.log:
            return f"1e{round(math.log10(v))}"
        digits = max(0, -math.floor(math.log10(self.step)))
        return f"{v:.{digits}f}"


def _num(v: float) -> str:
    return f"{v:.1f}"


def render(chart: Chart) -> str:
    """The chart as an ``<svg>`` element (a string of markup, every text escaped)."""
    xs = [p.x for s in chart.series for p in s.points] + [m.x for m in chart.markers]
    xs += [x for b in chart.bands for x in b.xs]
    ys = [p.y for s in chart.series for p in s.points] + [m.y for m in chart.markers]
    ys += [y for b in chart.bands for y in b.lows + b.highs]
    X = Axis(xs, chart.x_log, LEFT, WIDTH - RIGHT)
    Y = Axis(ys, chart.y_log, HEIGHT - BOTTOM, TOP)
    key = escape(chart.key)
    out = [f'<svg class="chart" id="chart-{key}" data-chart="{key}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-labelledby="chart-{key}-title" xmlns="http://www.w3.org/2000/svg">',
           f'<title id="chart-{key}-title">{escape(chart.title)}</title>',
           f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
           f'height="{HEIGHT - TOP - BOTTOM}"/>']
    for t in X.ticks:
        px = _num(X(t))
        out.append(f'<line class="grid" x1="{px}" x2="{px}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>')
        out.append(f'<text class="tick" x="{px}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                   f'{escape(X.tick_text(t))}</text>')
    for t in Y.ticks:
        py = _num(Y(t))
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py}" y2="{py}"/>')
        out.append(f'<text class="tick" x="{LEFT - 6}" y="{py}" text-anchor="end" dominant-baseline="middle">'
                   f'{escape(Y.tick_text(t))}</text>')
    out.append(f'<text class="axis-label" x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 10}" '
               f'text-anchor="middle">{escape(chart.x_label)}</text>')
    out.append(f'<text class="axis-label" transform="translate(16 {(TOP + HEIGHT - BOTTOM) / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{escape(chart.y_label)}</text>')
    for band in chart.bands:
        rows = [(x, lo, hi) for x, lo, hi in zip(band.xs, band.lows, band.highs, strict=True)
                if _finite(x, X.log) and _finite(lo, Y.log) and _finite(hi, Y.log)]
        if len(rows) < 2:
            continue
        upper = " ".join(f"{_num(X(x))},{_num(Y(hi))}" for x, _, hi in rows)
        lower = " ".join(f"{_num(X(x))},{_num(Y(lo))}" for x, lo, _ in reversed(rows))
        out.append(f'<polygon class="band b{band.style % 4}" data-band="{escape(band.name)}" '
                   f'points="{upper} {lower}"><title>{escape(band.name)}</title></polygon>')
    for series in chart.series:
        pts = [p for p in series.points if _finite(p.x, X.log) and _finite(p.y, Y.log)]
        name = escape(series.name)
        out.append(f'<g class="series s{series.style % 4}" data-series="{name}">')
        if series.line and len(pts) > 1:
            path = " ".join(f"{'M' if i == 0 else 'L'}{_num(X(p.x))},{_num(Y(p.y))}" for i, p in enumerate(pts))
            out.append(f'<path class="line" d="{path}"/>')
        for p in pts:
            out.append(f'<circle class="pt" cx="{_num(X(p.x))}" cy="{_num(Y(p.y))}" r="3.5" '
                       f'data-x="{p.x!r}" data-y="{p.y!r}"><title>{escape(p.label)}</title></circle>')
        out.append("</g>")
    for m in chart.markers:
        if not (_finite(m.x, X.log) and _finite(m.y, Y.log)):
            continue
        cx, cy = X(m.x), Y(m.y)
        kind = escape(m.kind)
        size = 7 if m.kind == "plan" else 5
        out.append(f'<g class="marker {kind}" data-marker="{escape(m.name)}">'
                   f'<rect x="{_num(cx - size)}" y="{_num(cy - size)}" width="{2 * size}" height="{2 * size}" '
                   f'transform="rotate(45 {_num(cx)} {_num(cy)})" data-x="{m.x!r}" data-y="{m.y!r}">'
                   f'<title>{escape(m.label)}</title></rect></g>')
    out.append("</svg>")
    return "".join(out)


def legend(chart: Chart) -> str:
    """The chart's key as HTML (it wraps at phone widths, unlike text inside the SVG)."""
    items = [(f"key s{s.style % 4}", s.name) for s in chart.series]
    items += [(f"key band b{b.style % 4}", b.name) for b in chart.bands if len(b.xs) > 1]
    items += [(f"key marker {m.kind}", m.name) for m in chart.markers]
    names = dict.fromkeys(items)
    return "".join(f'<li><span class="{escape(c)}"></span>{escape(t)}</li>' for c, t in names)
