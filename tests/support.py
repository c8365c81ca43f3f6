"""Helpers for tests that start real processes on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status < 500)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start_python(
    args: list[str], env: Mapping[str, str] | None = None, log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `python <args>` from the project root with the given extra environment."""
    full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_emulator(log_dir: Path, *flags: str) -> Iterator[str]:
    """An emulator process (`localstack.emulator` with `flags`) on a free loopback port, for
    as long as the block runs; its URL."""
    port = free_port()
    log = log_dir / "emulator.log"
    proc = start_python(["-m", "localstack.emulator", *flags, "--port", str(port)], log_path=log)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until(lambda: http_ok(f"{url}/moto-api/"), timeout=30):
            raise RuntimeError(f"the emulator did not start: {log.read_text()[-2000:]}")
        yield url
    finally:
        stop(proc)
