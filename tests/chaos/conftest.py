"""One supervisord-run stack for the chaos scenarios, emptied between them, and each
scenario's outcome handed on for the table printed at the end of the run."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator

import pytest

from tests.chaos.harness import ChaosStack, audit_scenario
from tests.chaos.report import RESULTS
from tests.chaos.scale import Scale, current
from tests.conftest import chaos_outcome_property


@pytest.fixture(scope="session")
def scale() -> Scale:
    return current()


@pytest.fixture(scope="package")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    """Stopped after the last test of this folder, not at the end of the session: under
    `make test` its worker runs other tests after the scenarios, beside a stack of idle
    processes (a dozen, each polling the emulator) otherwise."""
    stack = ChaosStack.create(tmp_path_factory.mktemp("chaos")).start()
    try:
        yield stack
    finally:
        # Every program told to stop at once: supervisord's own shutdown stops them one
        # after the other (about ten seconds, a worker's long poll each).
        with contextlib.suppress(Exception):
            stack.resume("emulator")
            stack.rpc().stopAllProcesses(False)
        stack.stop()


@pytest.fixture
def chaos(chaos_stack: ChaosStack) -> ChaosStack:
    """The stack with an empty emulator and sandbox, every process running, no kills."""
    chaos_stack.reset()
    chaos_stack.kills.clear()
    assert chaos_stack.all_running(), chaos_stack.processes()
    return chaos_stack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Every scenario that ran on the chaos stack ends with `herald audit` of its events,
    whichever file it is in: a disagreement fails it. A scenario that failed already is
    audited for the table only; a skipped one not at all."""
    stack = getattr(item, "funcargs", {}).get("chaos")
    if not isinstance(stack, ChaosStack):
        return (yield)
    try:
        result = yield
    except pytest.skip.Exception:
        raise
    except BaseException:
        with contextlib.suppress(Exception):
            audit_scenario(stack, RESULTS, strict=False)
        raise
    audit_scenario(stack, RESULTS)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """The scenario's outcome onto its report: tests/conftest.py prints the table from the
    reports, which reach the terminal's process also when the run is split over workers."""
    report = yield
    while RESULTS:
        report.user_properties.append(chaos_outcome_property(RESULTS.pop(0)))
    return report
