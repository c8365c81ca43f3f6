"""One supervisord-run stack for the chaos scenarios, emptied between them, and the table
of outcomes printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.harness import ChaosStack
from tests.chaos.report import RESULTS, table
from tests.chaos.scale import Scale, current


@pytest.fixture(scope="session")
def scale() -> Scale:
    return current()


@pytest.fixture(scope="session")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    stack = ChaosStack.create(tmp_path_factory.mktemp("chaos")).start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def chaos(chaos_stack: ChaosStack) -> ChaosStack:
    """The stack with an empty emulator and sandbox, every process running, no kills."""
    chaos_stack.reset()
    chaos_stack.kills.clear()
    assert chaos_stack.all_running(), chaos_stack.processes()
    return chaos_stack


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RESULTS:
        terminalreporter.write_sep("=", f"chaos ({current().name})")
        terminalreporter.write_line(table(RESULTS))
