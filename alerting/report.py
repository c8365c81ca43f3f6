"""Report rules (`{"kind": "report"}`): every run sends the query's result, with no
baseline and no alert: the trend tracker's daily report.

A run's result becomes the table its event carries (`core.catalogue.reports.ReportTable`
as plain JSON in `data.report`). The event travels as one DynamoDB item (400 KB), one SNS
message (256 KiB) and, before it is published, in the rule's outbox; so the rows are
carried only up to `REPORT_BYTES_MAX` (128 KiB as ASCII JSON, which is never shorter than
its UTF-8), the rest dropped and the drop stated in `note`, which the email and the CSV
both print. Rows are already capped by HERALD_SQL_ROW_CAP; a result that hit the cap says
so too. Values are cut to `CELL_CHARS_MAX` characters and the table to
`REPORT_COLUMNS_MAX` columns.

The CSV and PDF are not made here: the email worker renders them from this table when it
sends (`core.catalogue.reports.report_files`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from core.catalogue.models import iso
from core.catalogue.reports import CELL_CHARS_MAX, REPORT_BYTES_MAX, REPORT_COLUMNS_MAX, Cell

ELLIPSIS = "…"


def report_cell(value: Any) -> Cell:
    if not (value is None or isinstance(value, bool | int | float | str)):
        value = json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, str) and len(value) > CELL_CHARS_MAX:
        return value[: CELL_CHARS_MAX - 1] + ELLIPSIS
    return value


def report_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The first row's columns, then any a later row adds (HTTP sources vary), at most
    REPORT_COLUMNS_MAX."""
    seen: dict[str, None] = {}
    for row in rows:
        for column in row:
            seen.setdefault(str(column)[:64])
            if len(seen) >= REPORT_COLUMNS_MAX:
                return list(seen)
    return list(seen)


def report_table(
    title: str,
    rows: list[dict[str, Any]],
    *,
    source_truncated: bool,
    now: datetime,
    budget: int = REPORT_BYTES_MAX,
) -> dict[str, Any]:
    """The rows as a report table within `budget` bytes of JSON, with a note of whatever
    was left out."""
    columns = report_columns(rows)
    kept: list[list[Cell]] = []
    size = 0
    for row in rows:
        values = [report_cell(row.get(column)) for column in columns]
        # Measured escaped (`\u00e9`), the longest of its forms: the outbox stores it so.
        size += len(json.dumps(values)) + 1
        if size > budget:
            break
        kept.append(values)
    notes = []
    if len(kept) < len(rows):
        notes.append(
            f"Truncated: {len(kept)} of {len(rows)} rows are in this report "
            f"(a report carries at most {budget // 1024} KiB of rows)."
        )
    if source_truncated:
        notes.append(
            f"The query returned more than {len(rows)} rows; only the first {len(rows)} were "
            "read (HERALD_SQL_ROW_CAP)."
        )
    return {
        "title": title[:200],
        "columns": columns,
        "rows": kept,
        "row_count": len(rows),
        "note": " ".join(notes) or None,
        "run_at": iso(now),
    }


def report_summary(rows: int, truncated: bool) -> str:
    if not rows:
        return "no rows"
    return f"{rows}{'+' if truncated else ''} row(s)"
