"""A program started through cli.parent_guard ends when its parent is killed outright, as
`make run`'s programs do when supervisord is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, wait_until

PARENT = """
import subprocess, sys, time
child = subprocess.Popen(
    [sys.executable, "-m", "cli.parent_guard", "-c", "import time; time.sleep(121)"]
)
print(child.pid, flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" not in status.read_text()
    except FileNotFoundError:
        return False


def became_program(pid: int) -> bool:
    try:
        # The program itself: the guard has exec'd (its own argv names cli.parent_guard).
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    return argv[1:3] == [b"-c", b"import time; time.sleep(121)"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_program_ends_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert wait_until(lambda: became_program(child), timeout=20)
        assert alive(child)
        parent.kill()  # SIGKILL: no chance to stop its children
        parent.wait()
        assert wait_until(lambda: not alive(child), timeout=20), "the program outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        if child and alive(child):
            os.kill(child, signal.SIGKILL)
