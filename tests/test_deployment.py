"""supervisord.conf, the Dockerfile and docker-compose.yml agree with each other and with
the code (no Docker engine is needed to check that)."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import yaml
from supervisor.options import ServerOptions

from tests.support import ROOT

CONF = ROOT / "supervisord.conf"
ENV_VARS = set(re.findall(r"%\(ENV_(\w+)\)s", CONF.read_text()))


def dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def makefile_run_env() -> set[str]:
    return set(
        re.findall(r"^run local-env: export (\w+) \?=", (ROOT / "Makefile").read_text(), re.M)
    )


def load_supervisor(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> ServerOptions:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # %(here)s is the conf's folder: give it the var/log that `make run` creates.
    conf = tmp_path / "supervisord.conf"
    conf.write_text(CONF.read_text())
    (tmp_path / "var" / "log").mkdir(parents=True)
    options = ServerOptions()
    options.realize(args=["-c", str(conf)])
    return options


def test_every_conf_variable_has_a_default_in_the_makefile_and_the_image() -> None:
    assert makefile_run_env() >= ENV_VARS
    assert set(dockerfile_env()) >= ENV_VARS


def test_supervisord_accepts_the_conf_and_runs_every_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    options = load_supervisor(dockerfile_env(), monkeypatch, tmp_path)
    programs = {group.name: group for group in options.process_group_configs}
    expected = {"emulator", "emulator-dynamodb", "sandbox", "provision", "api", "router"}
    expected |= {"reconciler", "due-sender"}
    expected |= {"scheduler", "evaluator", "listener", "queue-depths"}
    expected |= {f"worker-{c}" for c in ("sms", "whatsapp", "email", "push", "chat")}
    assert set(programs) == expected
    for group in options.process_group_configs:
        for process in group.process_configs:
            # Every module a command runs (provision's is a shell line running two).
            modules = re.findall(r"(?:^|\s)-m\s+([\w.]+)", process.command)
            assert modules, f"{process.name}: runs no module"
            for module in modules:
                assert importlib.util.find_spec(module) is not None, (
                    f"{process.name}: no module {module}"
                )
    for emulator in ("emulator", "emulator-dynamodb"):  # the image uses LocalStack
        assert not programs[emulator].process_configs[0].autostart


def test_compose_runs_the_services_against_localstack() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"localstack", "herald", "prometheus", "grafana"}
    # Monitoring starts only with `--profile monitoring`.
    assert {name for name, s in services.items() if "profiles" not in s} == {"localstack", "herald"}
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]
    herald = services["herald"]
    env = herald["environment"]
    assert env["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    assert env["HERALD_EMULATOR"] == "false"
    assert herald["command"] == ["supervisord", "-n", "-c", "supervisord.conf"]
    assert "localstack" in herald["depends_on"]
    assert "sns" in services["localstack"]["environment"]["SERVICES"]
    copied = re.findall(r"^COPY (\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    for package in ("core", "api", "listeners", "notifiers", "localstack", "alerting"):
        assert package in copied
