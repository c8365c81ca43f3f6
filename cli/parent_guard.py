"""Run a Python program that ends when its parent does.

    python -m cli.parent_guard -m listeners.router

supervisord starts each program in a process group of its own, so a supervisord that is
killed outright (SIGKILL, an OOM kill, a closed terminal's hang-up while it is stuck)
leaves its programs running, holding their ports, and the next `make run` finds them.
This asks Linux to send the program SIGTERM when its parent dies (PR_SET_PDEATHSIG, which
survives the exec below), then becomes the program. `make run` starts every program
through it; elsewhere (not Linux) it only execs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> bool:
    """Ask for SIGTERM on the parent's death; False where the kernel offers no such thing."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return int(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)) == 0


def main() -> None:
    parent = os.getppid()
    die_with_parent()
    # The parent died before the request took effect (orphans go to init, pid 1).
    if os.getppid() != parent or os.getppid() == 1:
        sys.exit(0)
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])


if __name__ == "__main__":
    main()
