"""`make run`'s stack, started as `make run` starts it (for `bench.embedded_rate`):
supervisord with supervisord.conf and the environment the Makefile exports for `run` (read
back through `make local-env`, with free loopback ports), in a temporary folder that holds
its var/ (logs, metrics, socket), so a `make run` of the same checkout is left alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from bench.stack import ROOT, free_port, http_ok, wait_until
from core.aws.clients import CALL_LOG_FLUSH_SECONDS

VENV_BIN = ROOT / ".venv" / "bin"


def run_environment(ports: dict[str, int], emulators: int, call_log: Path | None) -> dict[str, str]:
    """The Makefile's `run` environment: every variable supervisord.conf reads and the AWS
    ones, as `make local-env` writes them (the same target-specific exports as `run`)."""
    conf_vars = set(re.findall(r"%\(ENV_(\w+)\)s", (ROOT / "supervisord.conf").read_text()))
    names = sorted(
        conf_vars
        | {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_DEFAULT_REGION"}
        | {"HERALD_BOOTSTRAP_API_KEY"}
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HERALD_"))}
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "run.env"
        subprocess.run(
            ["make", "--no-print-directory", "-C", str(ROOT), "local-env"]
            + [f"LOCAL_ENV={target}", f"LOCAL_ENV_VARS={' '.join(names)}"]
            + [f"{name}={port}" for name, port in ports.items()],
            env=clean,
            check=True,
            capture_output=True,
        )
        values = {k: v for k, v in dotenv_values(target).items() if v is not None}
    if emulators == 1:
        values.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    if call_log is not None:
        values["HERALD_AWS_CALL_LOG"] = str(call_log)
    return {**clean, **values}


@dataclass
class EmbeddedStack:
    folder: Path
    env: dict[str, str]
    supervisord: subprocess.Popen[bytes]

    def calls(self) -> dict[str, int]:
        """AWS calls of every Herald process so far, as `service.Operation` -> count (with
        `--calls`; each process flushes its counts every few seconds)."""
        if "HERALD_AWS_CALL_LOG" not in self.env:
            return {}
        time.sleep(CALL_LOG_FLUSH_SECONDS + 0.5)
        total: dict[str, int] = {}
        for path in self.folder.glob("calls/aws.*.json"):
            for service, ops in json.loads(path.read_text())["calls"].items():
                for op, count in ops.items():
                    total[f"{service}.{op}"] = total.get(f"{service}.{op}", 0) + count
        return total

    @property
    def conf(self) -> Path:
        return self.folder / "supervisord.conf"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['HERALD_API_PORT']}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.env['HERALD_SANDBOX_PORT']}"

    def status(self) -> dict[str, tuple[str, int | None]]:
        """Program name -> (state, pid)."""
        out = subprocess.run(
            [str(VENV_BIN / "supervisorctl"), "-c", str(self.conf), "status"],
            capture_output=True,
            text=True,
            env=self.env,
        ).stdout
        programs: dict[str, tuple[str, int | None]] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                pid = re.search(r"pid (\d+)", line)
                name = parts[0].split(":")[-1]
                programs[name] = (parts[1], int(pid.group(1)) if pid else None)
        return programs

    def ready(self) -> bool:
        programs = self.status()
        provisioned = programs.get("provision", ("", None))[0] == "EXITED"
        return provisioned and http_ok(f"{self.api_url}/health")


@contextmanager
def embedded_stack(emulators: int, count_calls: bool = False) -> Iterator[EmbeddedStack]:
    folder = Path(tempfile.mkdtemp(prefix="herald-embedded-"))
    (folder / "calls").mkdir()
    ports = {
        name: free_port()
        for name in (
            "HERALD_API_PORT",
            "HERALD_EMULATOR_PORT",
            "HERALD_EMULATOR_DYNAMODB_PORT",
            "HERALD_SANDBOX_PORT",
        )
    }
    env = run_environment(ports, emulators, folder / "calls" / "aws" if count_calls else None)
    shutil.copy(ROOT / "supervisord.conf", folder / "supervisord.conf")
    (folder / "var" / "log").mkdir(parents=True)
    (folder / "var" / "metrics").mkdir()
    out = open(folder / "var" / "supervisord.out", "wb")  # noqa: SIM115 - the child owns it
    supervisord = subprocess.Popen(
        [str(VENV_BIN / "supervisord"), "-n", "-c", str(folder / "supervisord.conf")],
        cwd=folder,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    stack = EmbeddedStack(folder, env, supervisord)
    try:
        if not wait_until(stack.ready, timeout=180, interval=1):
            raise RuntimeError(f"the stack did not start; see {folder / 'var' / 'log'}")
        yield stack
    finally:
        subprocess.run(
            [str(VENV_BIN / "supervisorctl"), "-c", str(stack.conf), "shutdown"],
            capture_output=True,
            env=env,
        )
        try:
            supervisord.wait(90)
        except subprocess.TimeoutExpired:
            supervisord.terminate()
            supervisord.wait(30)
        out.close()
        shutil.rmtree(folder, ignore_errors=True)
