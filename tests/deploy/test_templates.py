"""What the synthesized templates declare: resources and their properties, IAM scoped per
service, secrets, scaling, alarms (assertions on `Template.from_stack`)."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from core.catalogue.event_types import CHANNELS
from tests.deploy.conftest import PREFIX, Synthesized

SERVICES = ["api", "router", "scheduler", "evaluator", "listener", "reconciler", "due-sender"]
SERVICES += [f"worker-{c}" for c in CHANNELS]


def task_role_policy(synth: Synthesized, service: str) -> str:
    """Every statement of the service's task role, as text."""
    key = "Task" + service.replace("-", "") + "TaskRole"
    policies = synth.resources("compute", "AWS::IAM::Policy")
    found = [v for k, v in policies.items() if k.startswith(key)]
    assert found, f"no task role policy for {service}"
    return json.dumps(found)


def test_the_table_keeps_its_data(fargate: Synthesized) -> None:
    template = fargate.templates["data"]
    template.resource_count_is("AWS::DynamoDB::Table", 1)
    template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
            "Properties": {
                "TableName": f"{PREFIX}-table",
                "BillingMode": "PAY_PER_REQUEST",
                "DeletionProtectionEnabled": True,
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            },
        },
    )
    (table,) = fargate.resources("data", "AWS::DynamoDB::Table").values()
    assert len(table["Properties"]["GlobalSecondaryIndexes"]) == 9
    template.resource_count_is("AWS::SecretsManager::Secret", 3)


def test_every_queue_has_its_dlq_and_the_topic_filters_by_priority(fargate: Synthesized) -> None:
    template = fargate.templates["messaging"]
    queues = fargate.resources("messaging", "AWS::SQS::Queue")
    assert len(queues) == 28
    with_redrive = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(with_redrive) == 14
    assert all(q["Properties"]["SqsManagedSseEnabled"] for q in queues.values())
    template.resource_count_is("AWS::SNS::Topic", 2)
    template.has_resource_properties(
        "AWS::SNS::Subscription",
        {"RawMessageDelivery": True, "FilterPolicy": {"priority": ["critical"]}},
    )
    template.has_resource_properties(
        "AWS::SNS::Subscription",
        {"FilterPolicy": {"priority": [{"anything-but": "critical"}]}},
    )


def test_a_fargate_service_per_process_from_the_image(fargate: Synthesized) -> None:
    template = fargate.templates["compute"]
    template.resource_count_is("AWS::ECS::Service", len(SERVICES))
    services = fargate.resources("compute", "AWS::ECS::Service")
    names = {s["Properties"]["ServiceName"] for s in services.values()}
    assert names == {f"{PREFIX}-{s}" for s in SERVICES}
    template.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "ContainerDefinitions": [
                Match.object_like(
                    {
                        "Command": ["python", "-m", "listeners.worker", "--channel", "sms"],
                        "LogConfiguration": Match.object_like({"LogDriver": "awslogs"}),
                    }
                )
            ]
        },
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {"HealthCheckPath": "/health", "Port": 8000},
    )


def test_credentials_come_from_secrets_manager_never_from_the_environment(
    fargate: Synthesized,
) -> None:
    for task in fargate.resources("compute", "AWS::ECS::TaskDefinition").values():
        (container,) = task["Properties"]["ContainerDefinitions"]
        env = {e["Name"] for e in container.get("Environment", [])}
        secrets = {s["Name"] for s in container.get("Secrets", [])}
        assert not {n for n in env if "TOKEN" in n or "API_KEY" in n or "DATASOURCES" in n}
        # Only what talks to Twilio reads its secret (the API verifies its receipts).
        twilio = {"HERALD_TWILIO_AUTH_TOKEN", "HERALD_TWILIO_ACCOUNT_SID"}
        uses_twilio = container["Name"] in {"api", "worker-sms", "worker-whatsapp"}
        assert (twilio <= secrets) == uses_twilio and (bool(twilio & secrets) == uses_twilio)
        assert ("HERALD_SENDGRID_API_KEY" in secrets) == (container["Name"] == "worker-email")
        uses_datasources = container["Name"] in {"api", "evaluator", "listener"}
        assert ("HERALD_DATASOURCES" in secrets) == uses_datasources


def test_each_role_names_only_what_its_service_touches(fargate: Synthesized) -> None:
    sms = task_role_policy(fargate, "worker-sms")
    assert f"{PREFIX}-sms-critical" in sms and f"{PREFIX}-sms-normal-dlq" in sms
    for other in ("email", "whatsapp", "push", "chat", "events", "rules"):
        assert f":{PREFIX}-{other}-" not in sms, other
    assert "sns:Publish" not in sms
    assert "sns:Publish" in task_role_policy(fargate, "worker-push")
    scheduler = task_role_policy(fargate, "scheduler")
    assert f"{PREFIX}-rules-critical" in scheduler and "sqs:ReceiveMessage" not in scheduler
    due = task_role_policy(fargate, "due-sender")
    assert f"{PREFIX}-push-normal" in due and "sqs:ReceiveMessage" not in due
    assert "sns:Publish" in due  # delayed events are published when due
    router = task_role_policy(fargate, "router")
    assert f"{PREFIX}-email-normal" in router and f"{PREFIX}-email-normal-dlq" not in router
    for service in SERVICES:
        text = task_role_policy(fargate, service)
        assert f"table/{PREFIX}-table" in text
        assert '"Resource": "*"' not in text or service == "api"  # ListPlatformApplications


def backlog_policies(synth: Synthesized) -> list[dict[str, Any]]:
    policies = synth.resources("compute", "AWS::ApplicationAutoScaling::ScalingPolicy")
    return [
        p["Properties"]
        for p in policies.values()
        if "CustomizedMetricSpecification"
        in p["Properties"].get("TargetTrackingScalingPolicyConfiguration", {})
    ]


def test_consumers_scale_on_backlog_per_task_and_the_api_on_cpu_and_requests(
    fargate: Synthesized,
) -> None:
    from deploy import sizing

    backlog = backlog_policies(fargate)
    assert len(backlog) == 2 + len(CHANNELS)  # router, evaluator, a worker per channel
    for policy in backlog:
        config = policy["TargetTrackingScalingPolicyConfiguration"]
        metrics = config["CustomizedMetricSpecification"]["Metrics"]
        (returned,) = [m for m in metrics if m.get("ReturnData")]
        assert returned["Expression"].endswith("/ running")
        assert {m["MetricStat"]["Metric"]["MetricName"] for m in metrics if "MetricStat" in m} == {
            "ApproximateNumberOfMessagesVisible",
            "RunningTaskCount",
        }
        assert config["TargetValue"] in {float(v) for v in sizing.TARGET_BACKLOG.values()}
    fargate.templates["compute"].has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "ALBRequestCountPerTarget",
                        "ResourceLabel": Match.any_value(),
                    },
                    "TargetValue": sizing.API_REQUESTS_PER_TASK_PER_MINUTE,
                }
            )
        },
    )


def test_alarms_notify_the_alarm_topic(fargate: Synthesized) -> None:
    alarms = fargate.resources("observability", "AWS::CloudWatch::Alarm")
    names = {a["Properties"]["AlarmName"] for a in alarms.values()}
    assert sum(n.startswith(f"{PREFIX}-dlq-not-empty-") for n in names) == 14
    assert sum(n.startswith(f"{PREFIX}-oldest-message-") for n in names) == 14
    assert {f"{PREFIX}-provider-errors-{c}" for c in CHANNELS} <= names
    assert {
        f"{PREFIX}-api-5xx-rate",
        f"{PREFIX}-scheduler-lag",
        f"{PREFIX}-scheduler-failing",
    } <= names
    assert f"{PREFIX}-no-events-accepted" in names
    for alarm in alarms.values():
        assert json.dumps(alarm["Properties"]["AlarmActions"]).count(f"{PREFIX}-alarms") or (
            "Fn::ImportValue" in json.dumps(alarm["Properties"]["AlarmActions"])
        )
    fargate.templates["observability"].resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_compute_lambda_runs_the_router_and_workers_as_functions(on_lambda: Synthesized) -> None:
    template = on_lambda.templates["compute"]
    template.resource_count_is("AWS::Lambda::Function", 1 + len(CHANNELS))
    # api, scheduler, evaluator, listener, reconciler, due-sender
    template.resource_count_is("AWS::ECS::Service", 6)
    template.resource_count_is("AWS::Lambda::EventSourceMapping", 2 * (1 + len(CHANNELS)))
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 20},
            "BatchSize": 10,
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": f"{PREFIX}-worker-sms",
            "ImageConfig": {"Command": ["listeners.lambda_entry.worker"]},
            "Timeout": 30,
        },
    )
    functions = on_lambda.resources("compute", "AWS::Lambda::Function")
    for function in functions.values():
        env = function["Properties"]["Environment"]["Variables"]
        assert not {k for k in env if "TOKEN" in k or "API_KEY" in k}


def test_the_scheduler_lag_alarm_reads_the_lag_the_scheduler_logs(fargate: Synthesized) -> None:
    filters = fargate.resources("observability", "AWS::Logs::MetricFilter").values()
    (lag,) = [
        f["Properties"]
        for f in filters
        if f["Properties"]["MetricTransformations"][0]["MetricName"] == "SchedulerLagSeconds"
    ]
    assert lag["MetricTransformations"][0]["MetricValue"] == "$.lag_seconds"
    assert "$.lag_seconds" in lag["FilterPattern"]
    alarms = fargate.resources("observability", "AWS::CloudWatch::Alarm").values()
    (alarm,) = [a["Properties"] for a in alarms if a["Properties"]["AlarmName"].endswith("-lag")]
    assert alarm["MetricName"] == "SchedulerLagSeconds" and alarm["Statistic"] == "Maximum"
