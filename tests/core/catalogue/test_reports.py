"""A report table's bounds, its CSV and its PDF, without a stack."""

from __future__ import annotations

import csv
import io
import re
import zlib
from datetime import UTC, datetime

import pytest

from alerting.report import report_table
from core.catalogue.report_pdf import PDF_PAGES_MAX, to_pdf
from core.catalogue.reports import (
    CELL_CHARS_MAX,
    REPORT_COLUMNS_MAX,
    ReportInvalid,
    ReportTable,
    parse_report,
    report_files,
    to_csv,
)

NOW = datetime(2030, 1, 15, 8, 0, tzinfo=UTC)


def test_rows_past_the_byte_budget_are_dropped_and_the_note_says_so() -> None:
    rows = [{"n": i, "text": "x" * 90} for i in range(100)]
    table = report_table("T", rows, source_truncated=False, now=NOW, budget=2_000)
    assert 10 < len(table["rows"]) < 30
    assert table["note"] == (
        f"Truncated: {len(table['rows'])} of 100 rows are in this report "
        "(a report carries at most 1 KiB of rows)."
    )
    assert table["row_count"] == 100


def test_a_result_cut_by_the_row_cap_says_so() -> None:
    table = report_table("T", [{"n": 1}], source_truncated=True, now=NOW)
    assert table["note"] and "HERALD_SQL_ROW_CAP" in table["note"]


def test_values_and_columns_are_bounded() -> None:
    wide = {f"c{i}": "v" * 1000 for i in range(40)}
    table = report_table("T", [wide, {"nested": {"a": [1]}}], source_truncated=False, now=NOW)
    assert len(table["columns"]) == REPORT_COLUMNS_MAX
    assert {len(v) for v in table["rows"][0]} == {CELL_CHARS_MAX}
    parse_report(table)  # what is made is what the worker takes


def test_the_csv_quotes_formulas_but_keeps_numbers() -> None:
    table = ReportTable(columns=["name", "delta"], rows=[["=HYPERLINK(1)", -3], ["-x", 1.5]])
    assert list(csv.reader(io.StringIO(to_csv(table).decode()))) == [
        ["name", "delta"],
        ["'=HYPERLINK(1)", "-3"],
        ["'-x", "1.5"],
    ]


@pytest.mark.parametrize(
    ("report", "where"),
    [
        ({"columns": ["a"], "rows": [[1, 2]]}, "data.report.rows.0"),
        ({"columns": ["a"], "rows": [["x" * 300]]}, "data.report.rows.0"),
        ({"columns": ["a"], "rows": [[{"deep": 1}]]}, "data.report.rows.0.0"),
        ({"rows": []}, "data.report.columns"),
        ("not a table", "data.report"),
    ],
)
def test_a_table_that_does_not_validate_is_report_invalid_naming_where(
    report: object, where: str
) -> None:
    with pytest.raises(ReportInvalid) as raised:
        report_files(report)
    assert str(raised.value).startswith(where)


def test_a_huge_table_makes_a_bounded_pdf() -> None:
    rows: list[list[str | int | float | bool | None]] = [
        [f"2030-01-01T{i % 24:02d}:00:00", i, "é ☃ " + "y" * 200] for i in range(20_000)
    ]
    pdf = to_pdf(ReportTable(columns=["at", "n", "text"], rows=rows, row_count=20_000))
    assert pdf.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type /Page\b", pdf))
    assert 1 < pages <= PDF_PAGES_MAX
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S)
    segments = sum(len(re.findall(rb" l\s", zlib.decompress(s))) for s in streams)
    assert 100 < segments <= 1_100  # the chart's points are thinned to at most 1,000


def test_the_budget_counts_text_as_escaped_json_its_longest_form() -> None:
    rows = [{"text": "☃" * 100} for _ in range(100)]  # 300 bytes of UTF-8, 600 escaped
    table = report_table("T", rows, source_truncated=False, now=NOW, budget=6_500)
    assert len(table["rows"]) == 10
