"""The README's settings table is generated from the Settings class; this keeps it true.

Regenerate with `UPDATE_DOCS=1 .venv/bin/pytest tests/test_docs.py`.
"""

from __future__ import annotations

import os
import re

from core.platform.settings import Settings
from tests.support import ROOT

README = ROOT / "README.md"
BLOCK = re.compile(
    r"(<!-- settings-table:[^\n]*-->\n\| variable \| default \| meaning \|\n\|---\|---\|---\|\n)"
    r"(.*?)(<!-- end settings-table -->)",
    re.S,
)


def settings_in_declared_order() -> list[str]:
    """Settings' own fields, then each field group it is composed of, in the order named."""
    names = list(Settings.__annotations__)
    for group in Settings.__bases__:
        names += list(getattr(group, "model_fields", {}))
    return [name for name in dict.fromkeys(names) if name in Settings.model_fields]


def settings_table() -> str:
    rows = []
    for name in settings_in_declared_order():
        field = Settings.model_fields[name]
        env = field.validation_alias if isinstance(field.validation_alias, str) else None
        env = env or f"HERALD_{name.upper()}"
        default = "unset" if field.default is None else f"`{field.default}`"
        if field.repr is False and field.default is not None:
            default = "(sandbox value)"
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{env}` | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


def test_readme_lists_every_setting_with_its_default() -> None:
    text = README.read_text()
    match = BLOCK.search(text)
    assert match, "README has no settings-table block"
    if os.environ.get("UPDATE_DOCS"):
        README.write_text(text[: match.start(2)] + settings_table() + text[match.end(2) :])
        return
    assert match.group(2) == settings_table(), "README settings table is stale: UPDATE_DOCS=1"
