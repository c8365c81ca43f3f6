"""A report's sections between markers, so one phase measured alone can replace its own
section of an existing report and leave the others as they were."""

from __future__ import annotations


def splice(report: str, text: str, start: str, end: str) -> str:
    """`report` with the section from `start` to `end` replaced by `text` (appended when
    the report has none)."""
    if start in report and end in report:
        head, rest = report.split(start, 1)
        _, tail = rest.split(end, 1)
        return head + text.rstrip("\n") + tail
    return report.rstrip("\n") + "\n\n" + text
