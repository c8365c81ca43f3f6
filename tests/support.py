"""Helpers for tests that start real processes on loopback.

`python -m tests.support emulator [flags]` runs `localstack.emulator` with two requests of
its own for the tests: `POST /_tests/snapshots/<name>` keeps a copy of everything the
emulator holds, `PUT /_tests/snapshots/<name>` puts that copy back in place of whatever it
holds then (404: no such snapshot). A test's stack is provisioned once per worker and
restored from its snapshot after that, in one request instead of a hundred.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
def running_emulator(log_dir: Path, *flags: str, snapshots: bool = False) -> Iterator[str]:
    """An emulator process (`localstack.emulator` with `flags`) on a free loopback port, for
    as long as the block runs; its URL. With `snapshots`, it also keeps and restores
    snapshots (`emulator_snapshot`)."""
    port = free_port()
    log = log_dir / "emulator.log"
    module = ["-m", "tests.support", "emulator"] if snapshots else ["-m", "localstack.emulator"]
    proc = start_python([*module, *flags, "--port", str(port)], log_path=log)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until(lambda: http_ok(f"{url}/moto-api/"), timeout=30):
            raise RuntimeError(f"the emulator did not start: {log.read_text()[-2000:]}")
        yield url
    finally:
        stop(proc)


# --- emulator snapshots --------------------------------------------------------------------

SNAPSHOTS = "/_tests/snapshots/"


def emulator_snapshot(endpoint: str, name: str, restore: bool) -> bool:
    """Keep (or, with `restore`, put back) the emulator's whole state as snapshot `name`;
    False if there is no such snapshot to restore."""
    request = urllib.request.Request(
        f"{endpoint}{SNAPSHOTS}{name}", method="PUT" if restore else "POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and restore:
            return False
        raise
    return True


class _Snapshots:
    """WSGI middleware in front of moto: the snapshot requests, each under the emulator's
    request lock, so no AWS request is served while the state is copied or replaced.

    A snapshot is a deep copy of every moto backend in use (one copy for all, so that
    references between them are kept); restoring resets moto as `/moto-api/reset` does and
    installs a fresh deep copy of the snapshot's backends."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.kept: dict[str, list[tuple[Any, dict[str, Any]]]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if not path.startswith(SNAPSHOTS):
            return self.app(environ, start_response)
        from localstack.emulator import _LOCK

        name = path.removeprefix(SNAPSHOTS)
        with _LOCK:
            if environ["REQUEST_METHOD"] == "POST":
                self.kept[name] = _copy(_backends())
                status = "200 OK"
            elif name in self.kept:
                _install(_copy(self.kept[name]))
                status = "200 OK"
            else:
                status = "404 Not Found"
        start_response(status, [("Content-Length", "0")])
        return [b""]


def _backends() -> list[tuple[Any, dict[str, Any]]]:
    from moto.core.base_backend import BackendDict

    instances: list[Any] = BackendDict._instances  # type: ignore[misc]
    return [(services, dict(services)) for services in instances]


def _copy(state: list[tuple[Any, dict[str, Any]]]) -> list[tuple[Any, dict[str, Any]]]:
    """A deep copy of the per-account backends; the services' `BackendDict`s (moto's
    module-level registries) stay the live ones, and a lock or condition (an SQS queue's,
    which long polls wait on) is copied as a new one."""
    import copy
    import copyreg
    import threading

    for made_by in (threading.Condition, threading.Lock, threading.RLock):
        copyreg.pickle(type(made_by()), functools.partial(_made_anew, made_by))
    live = {id(services): services for services, _ in state}
    return copy.deepcopy(state, memo=live)


def _made_anew(made_by: Callable[[], Any], _: Any) -> tuple[Callable[[], Any], tuple[()]]:
    return made_by, ()


def _install(state: list[tuple[Any, dict[str, Any]]]) -> None:
    from moto.core.base_backend import BackendDict
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()
    instances: list[Any] = BackendDict._instances  # type: ignore[misc]
    for services, accounts in state:
        dict.update(services, accounts)
        if services not in instances:
            instances.append(services)


def _serve_emulator_with_snapshots(argv: list[str]) -> int:
    from localstack import emulator

    return emulator.main(argv, wrap=_Snapshots)


@contextmanager
def aws_calls(
    client: Any, on_call: Callable[[str, dict[str, Any]], None] | None = None
) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every call `client` (one of `AwsClients`') makes meanwhile, as (operation,
    parameters), whichever path it takes: botocore's `provide-client-params` event, or the
    lean path's watchers (`core.aws.wire`). `on_call` is told of each as it is made."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def note(operation: str, params: dict[str, Any]) -> None:
        calls.append((operation, params))
        if on_call is not None:
            on_call(operation, params)

    def botocore_call(params: dict[str, Any], model: Any, **_: Any) -> None:
        note(model.name, params)

    client.meta.events.register("provide-client-params", botocore_call)
    wire = getattr(client, "wire", None)
    if wire is not None:
        wire.watchers.append(note)
    try:
        yield calls
    finally:
        client.meta.events.unregister("provide-client-params", botocore_call)
        if wire is not None:
            wire.watchers.remove(note)


if __name__ == "__main__":
    if sys.argv[1:2] != ["emulator"]:
        sys.exit("usage: python -m tests.support emulator [localstack.emulator flags]")
    sys.exit(_serve_emulator_with_snapshots(sys.argv[2:]))
