"""The CDK app synthesized once per test session (per pytest-xdist worker that runs these
tests): CDK's Python library drives a Node.js process, so synthesis needs `node`; where it
is missing the tests that synthesize are skipped, saying so."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: The emulator's stack (tests/conftest.py `settings`) uses this prefix: the template
#: compared with it must too.
PREFIX = "herald-test"


@dataclass
class Synthesized:
    herald: Any  # deploy.app.HeraldApp
    outdir: Path
    templates: dict[str, Any]  # stack kind -> aws_cdk.assertions.Template

    def json(self, kind: str) -> dict[str, Any]:
        return dict(self.templates[kind].to_json())

    def resources(self, kind: str, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.json(kind)["Resources"].items() if v["Type"] == type_}


def _synthesize(outdir: Path, context: dict[str, Any]) -> Synthesized:
    if shutil.which("node") is None:
        pytest.skip("CDK synthesis needs Node.js (`node` on PATH); see docs/deploy.md")
    from aws_cdk.assertions import Template

    from deploy.app import build

    herald = build({"prefix": PREFIX, **context}, outdir)
    herald.app.synth()
    kinds = ("data", "messaging", "compute", "observability")
    templates = {k: Template.from_stack(s) for k, s in zip(kinds, herald.stacks, strict=True)}
    return Synthesized(herald, outdir, templates)


@pytest.fixture(scope="session")
def fargate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield _synthesize(tmp_path_factory.mktemp("cdk-fargate"), {})


@pytest.fixture(scope="session")
def on_lambda(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield _synthesize(tmp_path_factory.mktemp("cdk-lambda"), {"compute": "lambda"})
