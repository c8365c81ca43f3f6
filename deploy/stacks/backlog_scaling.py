"""Scaling a queue consumer on its backlog per running task: target tracking on metric
math (visible messages of the queues it consumes ÷ its running tasks), the target derived
in `deploy.sizing` from measured time per message (docs/deploy.md)."""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_applicationautoscaling as appscaling
from constructs import Construct

from deploy import sizing
from deploy.services import Service


def backlog_policy(
    scope: Construct,
    *,
    prefix: str,
    service: Service,
    cluster_name: str,
    service_name: str,
    target_id: str,
) -> None:
    """The target-tracking policy of `service` on its backlog per running task."""
    queries: list[Any] = []
    ids = []
    for i, queue in enumerate(service.consumes):
        ids.append(f"m{i}")
        queries.append(
            _query(
                f"m{i}",
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "Sum",
                {"QueueName": queue},
            )
        )
    queries.append(
        _query(
            "running",
            "ECS/ContainerInsights",
            "RunningTaskCount",
            "Average",
            {"ClusterName": cluster_name, "ServiceName": service_name},
        )
    )
    queries.append(
        appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty(
            id="backlog_per_task",
            expression=f"({' + '.join(ids)}) / running",
            label="Visible messages per running task",
            return_data=True,
        )
    )
    kind = "router" if service.name == "router" else "worker"
    appscaling.CfnScalingPolicy(
        scope,
        f"BacklogPolicy-{service.name}",
        policy_name=f"{prefix}-{service.name}-backlog-per-task",
        policy_type="TargetTrackingScaling",
        scaling_target_id=target_id,
        target_tracking_scaling_policy_configuration=appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
            target_value=float(sizing.TARGET_BACKLOG[kind]),
            customized_metric_specification=appscaling.CfnScalingPolicy.CustomizedMetricSpecificationProperty(
                metrics=queries
            ),
            scale_out_cooldown=60,
            scale_in_cooldown=300,
        ),
    )


def _query(
    id: str, namespace: str, metric: str, stat: str, dimensions: dict[str, str]
) -> appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty:
    return appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty(
        id=id,
        metric_stat=appscaling.CfnScalingPolicy.TargetTrackingMetricStatProperty(
            metric=appscaling.CfnScalingPolicy.TargetTrackingMetricProperty(
                namespace=namespace,
                metric_name=metric,
                dimensions=[
                    appscaling.CfnScalingPolicy.TargetTrackingMetricDimensionProperty(
                        name=k, value=v
                    )
                    for k, v in dimensions.items()
                ],
            ),
            stat=stat,
        ),
        return_data=False,
    )
