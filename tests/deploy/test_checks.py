"""The offline checks: cdk-nag's AwsSolutions pack finds no unacknowledged error, each
acknowledgement says why, and cfn-lint accepts every synthesized template."""

from __future__ import annotations

import json

from cfnlint.api import ManualArgs, lint_by_config

from deploy.app import nag_errors
from tests.deploy.conftest import Synthesized

#: CDK's ECS pattern adds a DependsOn on the listener rule that a Ref already implies.
CFN_LINT_IGNORED = "W3005"


def test_cdk_nag_finds_no_unacknowledged_error(fargate: Synthesized) -> None:
    report = json.loads((fargate.outdir / "validation-report.json").read_text())
    (plugin,) = report["pluginReports"]
    assert plugin["pluginName"] == "AwsSolutions"
    assert plugin["conclusion"] == "success"
    assert nag_errors(fargate.outdir) == []


def test_every_acknowledgement_carries_its_reason(fargate: Synthesized) -> None:
    acknowledged: dict[str, str] = {}
    for path in fargate.outdir.glob("*.metadata.json"):
        for entries in json.loads(path.read_text()).values():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    acknowledged.update(entry["data"])
    ours = {rule: why for rule, why in acknowledged.items() if rule.startswith("AwsSolutions::")}
    assert ours
    for rule, why in ours.items():
        assert len(why) > 40, rule


def test_cfn_lint_accepts_every_template(fargate: Synthesized) -> None:
    templates = sorted(str(p) for p in fargate.outdir.glob("*.template.json"))
    assert len(templates) == 4
    config = ManualArgs(templates=templates, ignore_checks=[CFN_LINT_IGNORED])
    assert [str(match) for match in lint_by_config(config)] == []
