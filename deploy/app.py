"""The CDK app: four stacks by lifecycle, checked by cdk-nag's AwsSolutions pack.

    python -m deploy.app                  # synthesize into cdk.out/ (`make synth`)
    python -m deploy.app -c compute=lambda -c worker-sms.max=40

Context comes from deploy/cdk.json and `-c key=value` (deploy.config lists the keys);
the account and region from CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION when the CDK CLI runs
it, else the stacks are environment-agnostic. Synthesis is offline: no AWS call, no Docker
build (images are built by `cdk deploy`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from deploy.config import DeployConfig
from deploy.stacks.compute import ComputeStack
from deploy.stacks.data import DataStack
from deploy.stacks.messaging import MessagingStack
from deploy.stacks.observability import ObservabilityStack

HERE = Path(__file__).resolve().parent
DEFAULT_OUTDIR = HERE.parent / "cdk.out"


@dataclass
class HeraldApp:
    app: cdk.App
    config: DeployConfig
    data: DataStack
    messaging: MessagingStack
    compute: ComputeStack
    observability: ObservabilityStack

    @property
    def stacks(self) -> list[cdk.Stack]:
        return [self.data, self.messaging, self.compute, self.observability]


def cdk_json_context() -> dict[str, Any]:
    return dict(json.loads((HERE / "cdk.json").read_text()).get("context", {}))


def build(context: dict[str, Any] | None = None, outdir: Path | str = DEFAULT_OUTDIR) -> HeraldApp:
    """The app with its stacks (not yet synthesized); `context` overrides deploy/cdk.json."""
    app = cdk.App(outdir=str(outdir), context={**cdk_json_context(), **(context or {})})
    config = DeployConfig.from_context(app.node.try_get_context)
    resources = config.resources()
    account, region = os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")
    env = cdk.Environment(account=account, region=region) if account and region else None
    prefix = config.prefix
    data = DataStack(app, f"{prefix}-data", resources=resources, env=env)
    messaging = MessagingStack(
        app, f"{prefix}-messaging", resources=resources, alarm_email=config.alarm_email, env=env
    )
    compute = ComputeStack(
        app,
        f"{prefix}-compute",
        config=config,
        resources=resources,
        data=data,
        messaging=messaging,
        env=env,
    )
    observability = ObservabilityStack(
        app,
        f"{prefix}-observability",
        resources=resources,
        alarm_topic=messaging.alarm_topic,
        load_balancer_full_name=(
            compute.load_balancer.load_balancer_full_name if compute.load_balancer else None
        ),
        target_group_full_name=(
            compute.target_group.target_group_full_name if compute.target_group else None
        ),
        env=env,
    )
    for stack in (data, messaging, compute, observability):
        cdk.Tags.of(stack).add("app", "herald")
        cdk.Tags.of(stack).add("herald:prefix", prefix)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return HeraldApp(app, config, data, messaging, compute, observability)


def nag_errors(outdir: Path | str) -> list[str]:
    """cdk-nag's unacknowledged errors, from the validation report synthesis writes."""
    report = Path(outdir) / "validation-report.json"
    if not report.exists():
        return [f"{report}: no validation report (did cdk-nag run?)"]
    found = []
    for plugin in json.loads(report.read_text())["pluginReports"]:
        for violation in plugin.get("violations", []):
            if violation.get("severity") == "error":
                for construct in violation.get("violatingConstructs", []):
                    found.append(f"{violation['ruleName']}: {construct['constructPath']}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Synthesize Herald's CDK app.")
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--outdir", default=os.environ.get("CDK_OUTDIR", str(DEFAULT_OUTDIR)))
    args = parser.parse_args(argv)
    context = dict(item.split("=", 1) for item in args.context)
    herald = build(context, args.outdir)
    try:
        assembly = herald.app.synth()
    except RuntimeError as exc:  # cdk-nag's errors fail the synthesis: name each
        if "ValidationFailed" not in str(exc):
            raise
        print("\n".join(nag_errors(args.outdir)), file=sys.stderr)
        return 1
    for stack in assembly.stacks:
        print(f"{stack.stack_name}: {Path(args.outdir) / Path(stack.template_full_path).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
