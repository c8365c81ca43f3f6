"""Charts as inline SVG: the geometry is computed here, `_charts.html` draws it (escaped
like any template), so there is no script library, no CDN and nothing to build.

Each chart carries a title (the SVG's accessible name) and its numbers as text; colours
come from the stylesheet by class, so a new status or outcome gets its own class's colour
or the default one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

ROW = 22
LABEL_WIDTH = 120
BAR_WIDTH = 150
COLUMN = 14
COLUMN_HEIGHT = 90


@dataclass(frozen=True)
class Mark:
    """One bar or column: where it is, its label, the value as shown, its class."""

    label: str
    shown: str
    kind: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    style: str  # "bars" or "columns"
    marks: list[Mark] = field(default_factory=list)


def number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def slug(value: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in value.lower())


def bars(title: str, rows: Sequence[tuple[str, float | None]], unit: str = "") -> Chart:
    """Horizontal bars, one per (label, value), scaled to the largest; None shows 'n/a'."""
    top = max([v for _, v in rows if v] or [1.0])
    marks = [
        Mark(
            label=label,
            shown="n/a" if value is None else f"{number(value)}{unit}",
            kind=slug(label),
            x=LABEL_WIDTH,
            y=i * ROW,
            width=0 if not value else max(1, round(BAR_WIDTH * value / top)),
            height=ROW - 8,
        )
        for i, (label, value) in enumerate(rows)
    ]
    return Chart(title, LABEL_WIDTH + BAR_WIDTH + 70, max(ROW * len(rows), ROW), "bars", marks)


def columns(title: str, points: Sequence[tuple[str, float, str]], unit: str = "") -> Chart:
    """Vertical columns oldest to newest, one per (label, value, kind), e.g. a rule's
    evaluations: duration as height, outcome as colour."""
    top = max([v for _, v, _ in points] or [1.0]) or 1.0
    marks = []
    for i, (label, value, kind) in enumerate(points):
        height = max(2, round(COLUMN_HEIGHT * value / top))
        marks.append(
            Mark(
                label=label,
                shown=f"{number(value)}{unit} ({kind})",
                kind=slug(kind),
                x=i * COLUMN + 2,
                y=COLUMN_HEIGHT - height,
                width=COLUMN - 4,
                height=height,
            )
        )
    return Chart(title, max(len(points), 1) * COLUMN, COLUMN_HEIGHT + 2, "columns", marks)
