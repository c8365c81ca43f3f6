"""Where a `make run` stack is, so that tools in another terminal find it unasked.

`make run` writes the settings it exported (emulator endpoint, throwaway credentials,
ports, the development key) to `var/local.env` in the checkout. The `herald` command reads
that file, for the values the shell does not set itself: credentials left in a shell for
real AWS therefore no longer send a local tool to real AWS, while an explicit
`AWS_ENDPOINT_URL` still wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from dotenv import dotenv_values

LOCAL_ENV = Path("var") / "local.env"
CHECKOUT = Path(__file__).resolve().parent.parent


def find_local_env(start: Path | None = None) -> Path | None:
    """`HERALD_LOCAL_ENV` if set; else var/local.env in the working directory or a parent;
    else the one in the checkout Herald is installed from (an editable install)."""
    explicit = os.environ.get("HERALD_LOCAL_ENV")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents, CHECKOUT):
        candidate = folder / LOCAL_ENV
        if candidate.is_file():
            return candidate
    return None


def apply_local_env(
    environ: MutableMapping[str, str] | None = None, start: Path | None = None
) -> Path | None:
    """Fill the environment from the local stack's file, never overriding what is set;
    returns the file used, if any."""
    env = os.environ if environ is None else environ
    found = find_local_env(start)
    if found is None:
        return None
    for name, value in dotenv_values(found).items():
        if value is not None and name not in env:
            env[name] = value
    return found
