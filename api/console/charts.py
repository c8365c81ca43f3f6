"""Charts as inline SVG, drawn here: no script library, no CDN, nothing to build.

Each chart is a figure whose numbers also appear as text (a screen reader reads the
labels and values, and the SVG carries a title); colours come from the stylesheet by
class, so a new status or outcome gets a colour of its own class or the default.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

ROW = 22
LABEL_WIDTH = 140
BAR_WIDTH = 220


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def bars(title: str, rows: Sequence[tuple[str, float | None]], unit: str = "") -> Markup:
    """Horizontal bars, one per (label, value); None is drawn as 'n/a'."""
    top = max([v for _, v in rows if v] or [1.0])
    height = max(ROW * len(rows), ROW)
    width = LABEL_WIDTH + BAR_WIDTH + 80
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, (label, value) in enumerate(rows):
        y = i * ROW
        length = 0 if not value else max(1, round(BAR_WIDTH * value / top))
        shown = "n/a" if value is None else f"{_number(value)}{unit}"
        parts.append(
            f'<text x="0" y="{y + 15}" class="chart-label">{escape(label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 4}" width="{length}" height="{ROW - 8}" '
            f'class="bar bar-{escape(_slug(label))}"></rect>'
            f'<text x="{LABEL_WIDTH + length + 6}" y="{y + 15}" class="chart-value">'
            f"{escape(shown)}</text>"
        )
    if not rows:
        parts.append('<text x="0" y="15" class="chart-label">nothing yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def columns(title: str, points: Sequence[tuple[str, float, str]], unit: str = "") -> Markup:
    """Vertical columns oldest to newest, one per (label, value, class), e.g. a rule's
    evaluations: duration as height, outcome as colour."""
    height, gap = 90, 4
    width = max(len(points), 1) * 14
    top = max([v for _, v, _ in points] or [1.0]) or 1.0
    parts = [
        f'<svg class="chart columns" viewBox="0 0 {width} {height + 2}" width="100%" '
        f'preserveAspectRatio="none" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
    ]
    for i, (label, value, kind) in enumerate(points):
        h = max(2, round(height * value / top))
        parts.append(
            f'<rect x="{i * 14 + gap / 2}" y="{height - h}" width="{14 - gap}" height="{h}" '
            f'class="bar bar-{escape(_slug(kind))}"><title>{escape(label)}: '
            f"{escape(_number(value))}{escape(unit)} ({escape(kind)})</title></rect>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _slug(value: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in value.lower())
