"""A report rule's result as it travels and as it is attached: the table an event carries
(`ReportTable`, in the event's `data.report`) and the files the email worker makes of it
at send time (`report_files`: CSV and PDF).

The table is what the event item, the SNS message and the rule's outbox all carry, so its
size is bounded where it is made (`alerting/report.py`, `REPORT_BYTES_MAX`), and checked
again here: an event of the report type comes through the API too, so nothing in it is
trusted to be small or well formed. A table that does not validate fails its notification
with the reason (`ReportInvalid`), never the worker.

Files are rendered when the email is sent, not when the event is routed: a queue message
carries at most 256 KiB, and the PDF of a full table is larger than the rows it shows.
"""

from __future__ import annotations

import base64
import csv
import io
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.catalogue.models import Attachment

REPORT_EVENT_TYPE = "trend.report"
REPORT_BYTES_MAX = 128 * 1024  # a report's rows as JSON, at most, on its event
REPORT_COLUMNS_MAX = 32
CELL_CHARS_MAX = 256
REPORT_ROWS_MAX = 50_000  # what a 128 KiB table could hold at the least per row
CSV_MIME = "text/csv"
PDF_MIME = "application/pdf"
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | float | bool | None


class ReportInvalid(ValueError):
    """The event's report is not a table this module can render."""


class ReportTable(BaseModel):
    """A query's result: its columns, the rows carried, and what was left out (`note`)."""

    model_config = ConfigDict(extra="ignore")

    title: str = Field(default="Report", max_length=200)
    columns: list[Annotated[str, Field(max_length=64)]] = Field(max_length=REPORT_COLUMNS_MAX)
    rows: list[list[Cell]] = Field(default_factory=list, max_length=REPORT_ROWS_MAX)
    row_count: int = Field(default=0, ge=0, description="Rows the query returned (capped).")
    note: str | None = Field(
        default=None, max_length=500, description="Why rows are missing, when some are."
    )
    run_at: str | None = Field(default=None, max_length=40)

    @model_validator(mode="after")
    def bounded(self) -> ReportTable:
        width = len(self.columns)
        for index, row in enumerate(self.rows):
            if len(row) != width:
                raise ValueError(f"rows.{index}: {len(row)} values for {width} columns")
            for cell in row:
                if isinstance(cell, str) and len(cell) > CELL_CHARS_MAX:
                    raise ValueError(f"rows.{index}: a value over {CELL_CHARS_MAX} characters")
        return self

    @property
    def truncated(self) -> bool:
        return self.note is not None


def parse_report(value: Any) -> ReportTable:
    try:
        return ReportTable.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f".{part}" for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        if not where and first["type"] == "value_error":  # `bounded` names the row itself
            raise ReportInvalid(f"data.report.{message}"[:300]) from exc
        raise ReportInvalid(f"data.report{where}: {message}"[:300]) from exc


def csv_cell(value: Cell) -> str:
    """A value as CSV text; a text value that a spreadsheet would run as a formula gets a
    leading apostrophe (numbers are written as numbers, so -3 stays -3)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    return repr(value) if isinstance(value, float) else str(value)


def to_csv(table: ReportTable) -> bytes:
    """Header, rows, and a last line starting with `#` when rows are missing (saying why)
    or there are none."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if table.columns:
        writer.writerow([csv_cell(c) for c in table.columns])
    writer.writerows([csv_cell(v) for v in row] for row in table.rows)
    if table.note:
        writer.writerow([f"# {table.note}"])
    elif not table.rows:
        writer.writerow(["# The query returned no rows."])
    return out.getvalue().encode("utf-8")


def file_stem(table: ReportTable) -> str:
    """A file name from the title and the run's date: letters, digits, `-` and `_`."""
    stem = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in table.title)
    stem = "-".join(part for part in stem.split("-") if part)[:60] or "report"
    day = (table.run_at or "")[:10]
    return f"{stem}-{day}" if day else stem


def attachment(filename: str, mime: str, content: bytes) -> Attachment:
    return Attachment(
        filename=filename, type=mime, content=base64.b64encode(content).decode("ascii")
    )


def report_files(value: Any) -> list[Attachment]:
    """The CSV and the PDF of an event's `data.report`; raises ReportInvalid."""
    from core.catalogue.report_pdf import to_pdf  # fpdf2 is loaded by the email worker only

    table = parse_report(value)
    stem = file_stem(table)
    return [
        attachment(f"{stem}.csv", CSV_MIME, to_csv(table)),
        attachment(f"{stem}.pdf", PDF_MIME, to_pdf(table)),
    ]
