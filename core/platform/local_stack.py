"""Where a `make run` stack is, so that tools in another terminal find it unasked.

`make run` writes the settings it exported (the emulators' endpoints, throwaway
credentials, ports, the development key) to `var/local.env` in the checkout. The `herald`
command reads that file, for the values the shell does not set itself: credentials left in
a shell for real AWS therefore no longer send a local tool to real AWS, while an explicit
`AWS_ENDPOINT_URL` still wins.

The endpoints are one choice, not two: the file's DynamoDB endpoint belongs to its
emulators, so a shell that names either endpoint takes neither from the file (a shell's
`AWS_ENDPOINT_URL` at LocalStack must not send DynamoDB calls to the file's emulator).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from dotenv import dotenv_values

LOCAL_ENV = Path("var") / "local.env"
CHECKOUT = Path(__file__).resolve().parents[2]
#: Taken from the file all together or not at all.
ENDPOINTS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB")


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
    endpoints_set = any(name in env for name in ENDPOINTS)
    for name, value in dotenv_values(found).items():
        if value is None or name in env or (endpoints_set and name in ENDPOINTS):
            continue
        env[name] = value
    return found
