"""Charts as server-rendered SVG: horizontal bars, a series by hour or day (columns or a line, with an optional
target line) and a small distribution bar. No JavaScript and nothing from a CDN: a deployment may be offline.

Every chart is one `<svg>` with a `viewBox` and no fixed width, so it scales with its container (a phone
included); colours and sizes are SVG attributes, not inline styles, so the console's Content-Security-Policy
(`style-src 'self'`) lets them through and a printed page keeps them. Each chart is an image for assistive
technology (`role="img"`, `<title>` and `<desc>` named by `aria-labelledby`), its numbers are written as text
beside the marks, and `<desc>` repeats them all in one sentence. Every label is escaped.

The functions return `markupsafe.Markup`, ready for `{{ chart }}` in a Jinja template.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

INK, MUTED, GRID = "#1d2329", "#5b6670", "#e3e8ec"
BAR, BAR_ALT, TARGET = "#0b7a6c", "#6aa9d8", "#b3261e"
PARTS = (BAR, BAR_ALT, "#9aa5ad")  # the parts of a distribution that is not a 1-5 scale
# CSAT 1..5: from bad (red) to good (green)
SCALE_COLOURS = ("#c62828", "#ef6c00", "#f9a825", "#7cb342", "#2e7d32")
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"

@dataclass(frozen=True)
class Bar:
    """One bar: what it is, its value (drawn against the largest value or `scale_max`) and the text shown."""

    label: str
    value: float
    text: str  # the number as the reader reads it: "65 %", "248"
    note: str = ""  # a second, smaller text after the number: "reglas 90 % · IA 10 %"


@dataclass(frozen=True)
class Point:
    """One step of a series: its axis label ("14 h", "05/12") and value (None: no data, drawn as a gap)."""

    label: str
    value: float | None


def _open(kind: str, width: int, height: int, title: str, desc: str) -> tuple[str, str]:
    # ids from the content: the same chart is the same markup (pages can be compared), different ones differ
    n = hashlib.sha256(f"{kind}\n{title}\n{desc}".encode()).hexdigest()[:10]
    title_id, desc_id = f"chart-{kind}-{n}-t", f"chart-{kind}-{n}-d"
    head = (f'<svg class="chart chart-{kind}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-labelledby="{title_id} {desc_id}" preserveAspectRatio="xMinYMin meet" '
            f'xmlns="http://www.w3.org/2000/svg" font-family="{FONT}">'
            f'<title id="{title_id}">{escape(title)}</title><desc id="{desc_id}">{escape(desc)}</desc>')
    return head, "</svg>"


def _text(x: float, y: float, text: str, *, size: int = 14, fill: str = INK, anchor: str = "start",
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}" text-anchor="{anchor}"'
            f' font-weight="{weight}">{escape(text)}</text>')


def _fit(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def hbars(title: str, bars: Sequence[Bar], *, scale_max: float | None = None, empty: str = "Sin datos") -> Markup:
    """Horizontal bars, one per row, label above its bar and the number at the bar's end (top intents)."""
    width, row_h, top = 400, 44, 4
    height = top + max(1, len(bars)) * row_h
    head, tail = _open("bars", width, height, title, _describe(title, [(b.label, b.text) for b in bars], empty))
    parts = [head]
    if not bars:
        parts.append(_text(0, 26, empty, fill=MUTED))
    largest = scale_max if scale_max is not None else max((b.value for b in bars), default=0.0)
    track = width - 110  # the rest of the row holds the number
    for i, bar in enumerate(bars):
        y = top + i * row_h
        parts.append(_text(0, y + 14, _fit(bar.label, 44), size=14))
        length = 0.0 if largest <= 0 else max(0.0, min(1.0, bar.value / largest)) * track
        parts.append(f'<rect x="0" y="{y + 20}" width="{track}" height="14" rx="3" fill="{GRID}"/>')
        if length > 0:
            parts.append(f'<rect x="0" y="{y + 20}" width="{max(length, 2):.1f}" height="14" rx="3" fill="{BAR}"/>')
        parts.append(_text(track + 8, y + 32, bar.text, size=14, weight="600"))
        if bar.note:
            parts.append(_text(width, y + 14, _fit(bar.note, 30), size=12, fill=MUTED, anchor="end"))
    parts.append(tail)
    return Markup("".join(parts))  # noqa: S704 - every piece of text in it went through escape()


def series(title: str, points: Sequence[Point], *, value_text: str = "{:g}", line: bool = False,
           target: float | None = None, target_text: str = "", empty: str = "Sin datos") -> Markup:
    """A series by hour or by day: columns (or a line with dots), with a dashed target line when given.

    `value_text` formats a value for the numbers written above the columns and in the description; with many
    steps only every few axis labels are written so that they stay readable on a phone.
    """
    width, height, left, right, top, bottom = 600, 240, 8, 8, 24, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [p.value for p in points if p.value is not None]
    described = [(p.label, value_text.format(p.value)) for p in points if p.value is not None]
    desc = _describe(title, described, empty)
    if target is not None:
        desc += f" {target_text or 'Objetivo'}: {value_text.format(target)}."
    head, tail = _open("series", width, height, title, desc)
    parts = [head, f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
                   f'stroke="{MUTED}" stroke-width="1"/>']
    if not values:
        parts += [_text(width / 2, top + plot_h / 2, empty, fill=MUTED, anchor="middle"), tail]
        return Markup("".join(parts))  # noqa: S704 - escaped pieces
    largest = max([*values, target or 0.0]) or 1.0
    step = plot_w / max(1, len(points))

    def y_of(value: float) -> float:
        return top + plot_h - (value / largest) * plot_h

    label_every = max(1, -(-len(points) // 12))
    largest_value = max(values)  # with many steps only the highest carries its number (all are in <desc>)
    show_numbers = len(points) <= 16
    coords: list[tuple[float, float]] = []
    for i, point in enumerate(points):
        x = left + i * step
        centre = x + step / 2
        if i % label_every == 0:
            parts.append(_text(centre, height - 12, point.label, size=15, fill=MUTED, anchor="middle"))
        if point.value is None:
            continue
        y = y_of(point.value)
        if line:
            coords.append((centre, y))
        else:
            bar_w = max(2.0, step * 0.7)
            parts.append(f'<rect x="{centre - bar_w / 2:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                         f'height="{max(0.0, top + plot_h - y):.1f}" rx="2" fill="{BAR}"/>')
        if point.value and (show_numbers or point.value == largest_value):
            parts.append(_text(centre, y - 5, value_text.format(point.value), size=14, anchor="middle"))
    if line and coords:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{BAR}" stroke-width="2.5"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{BAR}"/>' for x, y in coords]
    if target is not None:
        ty = y_of(target)
        parts.append(f'<line x1="{left}" y1="{ty:.1f}" x2="{width - right}" y2="{ty:.1f}" stroke="{TARGET}" '
                     f'stroke-width="1.5" stroke-dasharray="6 4"/>')
        label = f"{target_text or 'Objetivo'}: {value_text.format(target)}"
        parts.append(_text(width - right, max(12.0, ty - 5), label, size=12, fill=TARGET, anchor="end"))
    parts.append(tail)
    return Markup("".join(parts))  # noqa: S704 - escaped pieces


def distribution(title: str, counts: Sequence[tuple[str, int]], *, empty: str = "Sin calificaciones") -> Markup:
    """One stacked bar of counts (CSAT 1 to 5), each part's label and count written under it."""
    width, height = 400, 64
    total = sum(n for _, n in counts)
    described = [(label, f"{n} ({_share(n, total)})") for label, n in counts]
    head, tail = _open("dist", width, height, title, _describe(title, described, empty))
    parts = [head]
    if total == 0:
        parts += [f'<rect x="0" y="4" width="{width}" height="22" rx="4" fill="{GRID}"/>',
                  _text(width / 2, 50, empty, fill=MUTED, anchor="middle"), tail]
        return Markup("".join(parts))  # noqa: S704 - escaped pieces
    x = 0.0
    slot = width / max(1, len(counts))
    for i, (label, n) in enumerate(counts):
        colour = SCALE_COLOURS[i] if len(counts) == len(SCALE_COLOURS) else PARTS[i % len(PARTS)]
        part = width * n / total
        if part > 0:
            parts.append(f'<rect x="{x:.1f}" y="4" width="{part:.1f}" height="22" fill="{colour}"/>')
        x += part
        centre = slot * i + slot / 2  # the labels sit in even slots, whatever each part's width
        parts.append(f'<rect x="{centre - 34:.1f}" y="38" width="10" height="10" rx="2" fill="{colour}"/>')
        parts.append(_text(centre - 20, 48, f"{label}: {n}", size=13))
    parts.append(tail)
    return Markup("".join(parts))  # noqa: S704 - escaped pieces


def _share(n: int, total: int) -> str:
    return f"{round(100 * n / total)} %" if total else "0 %"


def _describe(title: str, items: Sequence[tuple[str, str]], empty: str) -> str:
    """The chart's numbers in one sentence: "Intenciones: Rastreo 65 %; Horarios 15 %."."""
    if not items:
        return f"{title}: {empty.lower()}."
    return f"{title}: " + "; ".join(f"{label} {text}" for label, text in items) + "."
