"""A report table as a PDF: a title, the note on missing rows, a line chart when the table
has a time column and a numeric one, then the table itself.

The chart is drawn with the page's own lines (axes, grid, one polyline per series), so no
plotting library is needed. Everything is bounded, whatever the table holds: the chart
plots at most `CHART_POINTS_MAX` points per series and `CHART_SERIES_MAX` series, the
table shows `PDF_ROWS_MAX` rows of `PDF_COLUMNS_MAX` columns with values cut to
`PDF_CELL_CHARS` characters, and the document stops at `PDF_PAGES_MAX` pages; the CSV
beside it has everything. The core PDF fonts know Latin-1 only: other characters print
as `?` here (the CSV keeps them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fpdf import FPDF

from core.catalogue.reports import Cell, ReportTable

PDF_ROWS_MAX = 500
PDF_COLUMNS_MAX = 8
PDF_CELL_CHARS = 40
PDF_PAGES_MAX = 20
CHART_POINTS_MAX = 1_000
CHART_SERIES_MAX = 3
SERIES_COLOURS = ((25, 118, 210), (211, 47, 47), (56, 142, 60))
PAGE_W, MARGIN = 297.0, 12.0  # A4 landscape, mm
ROW_H = 6.0
CHART_H = 90.0


@dataclass(frozen=True)
class Series:
    column: str
    points: list[tuple[float, float]]  # (epoch seconds, value), time order


def latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def cell_text(value: Cell, limit: int = PDF_CELL_CHARS) -> str:
    text = "" if value is None else str(value)
    return latin1(text if len(text) <= limit else text[: limit - 3] + "...")


def as_time(value: Cell) -> float | None:
    """Epoch seconds of an ISO date or timestamp (how sources give times), else None."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40 or value[4:5] != "-":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def is_number(value: Cell) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def chart_series(table: ReportTable) -> tuple[str, list[Series]] | None:
    """The first column whose values are all times and up to three whose values are all
    numbers, as series over time; None when the table has no such pair."""
    columns = range(len(table.columns))
    filled = {c: [row[c] for row in table.rows if row[c] is not None] for c in columns}
    times = [c for c in columns if filled[c] and all(as_time(v) is not None for v in filled[c])]
    if not times:
        return None
    when = times[0]
    numeric = [c for c in columns if c != when and filled[c] and all(map(is_number, filled[c]))]
    series = []
    for column in numeric[:CHART_SERIES_MAX]:
        points = sorted(
            (t, float(row[column]))  # type: ignore[arg-type]
            for row in table.rows
            if (t := as_time(row[when])) is not None and is_number(row[column])
        )
        step = max(1, -(-len(points) // CHART_POINTS_MAX))
        series.append(Series(table.columns[column], points[::step]))
    if not series:
        return None
    return table.columns[when], series


def draw_chart(pdf: FPDF, time_column: str, series: list[Series]) -> None:
    """Axes, three grid lines with their values, the first and last time, and one line
    per series with its legend."""
    left, top = MARGIN + 18, pdf.get_y() + 4
    width, height = PAGE_W - 2 * MARGIN - 22, CHART_H - 16
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y0 == y1:
        y0, y1 = y0 - 1, y1 + 1
    span_x = (x1 - x0) or 1.0

    def at(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) / span_x * width, top + height - (y - y0) / (y1 - y0) * height

    pdf.set_font("Helvetica", size=7)
    pdf.set_draw_color(200, 200, 200)
    pdf.set_line_width(0.1)
    for fraction in (0.0, 0.5, 1.0):
        value = y0 + (y1 - y0) * fraction
        _, y = at(x0, value)
        pdf.line(left, y, left + width, y)
        pdf.set_xy(MARGIN, y - 2)
        pdf.cell(16, 4, latin1(f"{value:.6g}"), align="R")
    pdf.set_draw_color(60, 60, 60)
    pdf.set_line_width(0.3)
    pdf.line(left, top, left, top + height)
    pdf.line(left, top + height, left + width, top + height)
    for x, align in ((x0, "L"), (x1, "R")):
        stamp = datetime.fromtimestamp(x, UTC).strftime("%Y-%m-%d %H:%M")
        pdf.set_xy(at(x, y0)[0] - (0 if align == "L" else 30), top + height + 1)
        pdf.cell(30, 4, stamp, align=align)
    pdf.set_line_width(0.5)
    legend_x = left
    for colour, each in zip(SERIES_COLOURS, series, strict=False):
        pdf.set_draw_color(*colour)
        points = [at(x, y) for x, y in each.points]
        if len(points) > 1:
            pdf.polyline(points)
        else:
            pdf.circle(points[0][0], points[0][1], 0.8)
        pdf.line(legend_x, top + height + 9, legend_x + 6, top + height + 9)
        pdf.set_xy(legend_x + 7, top + height + 7)
        label = latin1(f"{each.column} by {time_column}")
        pdf.cell(60, 4, label)
        legend_x += 70
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.2)
    pdf.set_y(top + CHART_H)


def draw_table(pdf: FPDF, table: ReportTable) -> None:
    columns = table.columns[:PDF_COLUMNS_MAX]
    width = (PAGE_W - 2 * MARGIN) / max(1, len(columns))
    rows = table.rows[:PDF_ROWS_MAX]

    def header() -> None:
        pdf.set_font("Helvetica", style="B", size=8)
        pdf.set_fill_color(235, 235, 235)
        for name in columns:
            pdf.cell(width, ROW_H, cell_text(name), border=1, fill=True)
        pdf.ln(ROW_H)
        pdf.set_font("Helvetica", size=8)

    header()
    for row in rows:
        if pdf.get_y() + ROW_H > pdf.h - MARGIN:
            if pdf.page_no() >= PDF_PAGES_MAX:
                pdf.cell(0, ROW_H, f"(the PDF stops at {PDF_PAGES_MAX} pages; see the CSV)")
                return
            pdf.add_page()
            header()
        for value in row[: len(columns)]:
            align = "R" if is_number(value) else "L"
            pdf.cell(width, ROW_H, cell_text(value), border=1, align=align)
        pdf.ln(ROW_H)
    left_out = []
    if len(table.rows) > len(rows):
        left_out.append(f"{len(table.rows) - len(rows)} more rows")
    if len(table.columns) > len(columns):
        left_out.append(f"{len(table.columns) - len(columns)} more columns")
    if not table.rows:
        left_out.append("the query returned no rows")
    if left_out:
        pdf.set_font("Helvetica", style="I", size=8)
        pdf.cell(0, ROW_H, latin1("(" + "; ".join(left_out) + ": see the CSV)"))


def to_pdf(table: ReportTable) -> bytes:
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_margins(MARGIN, MARGIN)
    pdf.set_auto_page_break(False)
    pdf.set_title(latin1(table.title))
    pdf.set_creator("Herald")
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=14)
    pdf.cell(0, 8, latin1(table.title))
    pdf.ln(8)
    pdf.set_font("Helvetica", size=9)
    summary = f"{table.row_count} row(s)" + (f", run {table.run_at}" if table.run_at else "")
    pdf.cell(0, 5, latin1(summary))
    pdf.ln(5)
    if table.note:
        pdf.set_text_color(160, 0, 0)
        pdf.multi_cell(0, 5, latin1(table.note))
        pdf.set_text_color(0, 0, 0)
    chart = chart_series(table)
    if chart is not None:
        draw_chart(pdf, *chart)
    pdf.ln(2)
    draw_table(pdf, table)
    return bytes(pdf.output())
