"""The chaos table: one row per scenario, printed at the end of the pytest run."""

from __future__ import annotations

from collections.abc import Sequence

from tests.chaos.accounting import Outcome

RESULTS: list[Outcome] = []


def table(outcomes: Sequence[Outcome]) -> str:
    """A Markdown table; `lost` must be 0 and `beyond window` should be 0."""
    if not outcomes:
        return ""
    rows = [o.row() for o in outcomes]
    headers = list(rows[0])
    cells = [[str(r[h]) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells]
    notes = [f"- {o.scenario}: {n}" for o in outcomes for n in o.notes]
    return "\n".join(out + (["", *notes] if notes else []))
