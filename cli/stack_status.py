"""`make status`: supervisorctl's table, and an exit status that means "healthy".

    supervisorctl -c supervisord.conf status | python -m cli.stack_status

supervisorctl itself exits 3 whenever a program is not RUNNING, which a healthy stack
always has: `provision` runs once and exits, and a program left out on purpose (the
emulator with HERALD_EMULATOR=false) is STOPPED, "Not started". Those are fine; anything
else not RUNNING (BACKOFF, FATAL, EXITED, or no supervisord at all) is not.
"""

from __future__ import annotations

import sys

ONE_SHOT = ("provision",)


def problems(status: str) -> list[str]:
    """The lines of supervisorctl's status that make the stack unhealthy."""
    lines = [line for line in status.splitlines() if line.strip()]
    if not lines:
        return ["supervisord did not answer (is `make run` running?)"]
    bad = []
    for line in lines:
        fields = line.split()
        name, state = fields[0], fields[1] if len(fields) > 1 else ""
        if state == "RUNNING":
            continue
        if name in ONE_SHOT and state in ("EXITED", "STARTING"):
            continue
        if state == "STOPPED" and "Not started" in line:
            continue
        bad.append(line)
    return bad


def main() -> int:
    status = sys.stdin.read()
    print(status, end="")
    bad = problems(status)
    if bad:
        print("Herald: unhealthy:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
