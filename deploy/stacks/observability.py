"""Alarms to the alarm topic and a CloudWatch dashboard of the signals the Grafana
dashboard (monitoring/) shows: events accepted, provider outcomes and error ratio, queue
depth and oldest age, dead letters, API requests and latency, tasks, the scheduler.

AWS's own metrics where they exist (SQS, SNS, the load balancer, ECS Container Insights,
DynamoDB); provider outcomes and scheduler failures from metric filters on the services'
JSON logs (`msg` on Fargate, `message` under Lambda's JSON log format)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from core.catalogue.event_types import CHANNELS
from core.resources.declaration import Resources
from deploy.stacks.compute import log_group_name

NAMESPACE = "Herald"
#: Log line prefixes (listeners/delivery.py, alerting/scheduler.py) -> metric names.
PROVIDER_OUTCOMES = {"Sent": "sent via*", "Failed": "failed:*", "Retried": "attempt*"}
OLDEST_MESSAGE_BOUND_S = 300
PROVIDER_ERROR_RATIO = 0.2
API_5XX_PERCENT = 5


#: A due rule run sent later than this (seconds) is behind: rules run at most once a
#: minute, so two minutes late means runs pile up.
SCHEDULER_LAG_SECONDS = 120


def _pattern(prefix: str) -> logs.IFilterPattern:
    return logs.FilterPattern.any(
        logs.FilterPattern.string_value("$.msg", "=", prefix),
        logs.FilterPattern.string_value("$.message", "=", prefix),
    )


class ObservabilityStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        resources: Resources,
        alarm_topic: sns.ITopic,
        load_balancer_full_name: str | None,
        target_group_full_name: str | None,
        **kwargs: Any,
    ):
        super().__init__(scope, id, **kwargs)
        self.prefix = prefix = resources.prefix
        self.alarms: list[cw.Alarm] = []
        action = actions.SnsAction(alarm_topic)

        def alarm(id: str, **props: Any) -> cw.Alarm:
            made = cw.Alarm(self, id, alarm_name=f"{prefix}-{id}", **props)
            made.add_alarm_action(action)
            self.alarms.append(made)
            return made

        def sqs(metric: str, queue: str, stat: str = "Maximum") -> cw.Metric:
            return cw.Metric(
                namespace="AWS/SQS",
                metric_name=metric,
                dimensions_map={"QueueName": queue},
                statistic=stat,
                period=Duration.minutes(1),
            )

        # Any dead-letter queue not empty.
        for queue in resources.dead_letter_queues:
            alarm(
                f"dlq-not-empty-{queue.name.removeprefix(prefix + '-')}",
                metric=sqs("ApproximateNumberOfMessagesVisible", queue.name),
                threshold=0,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=f"Dead letters in {queue.name}: inspect with GET "
                "/dlq/<queue>/messages, replay with POST /dlq/<queue>/redrive.",
            )
        # The oldest waiting message of a work queue over its bound for 5 minutes.
        for queue in resources.work_queues:
            alarm(
                f"oldest-message-{queue.name.removeprefix(prefix + '-')}",
                metric=sqs("ApproximateAgeOfOldestMessage", queue.name),
                threshold=OLDEST_MESSAGE_BOUND_S,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=5,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=f"{queue.name} has had a message waiting over "
                f"{OLDEST_MESSAGE_BOUND_S} s: consumers down or too few for the load.",
            )

        # Provider outcomes per channel, from the workers' logs.
        provider: dict[str, dict[str, cw.Metric]] = {}
        for channel in CHANNELS:
            group = logs.LogGroup.from_log_group_name(
                self, f"WorkerLogs-{channel}", log_group_name(prefix, f"worker-{channel}")
            )
            provider[channel] = {}
            for outcome, prefix_text in PROVIDER_OUTCOMES.items():
                metric_name = f"Provider{outcome}-{channel}"
                logs.MetricFilter(
                    self,
                    f"Filter-{metric_name}",
                    log_group=group,
                    filter_pattern=_pattern(prefix_text),
                    metric_namespace=NAMESPACE,
                    metric_name=metric_name,
                    metric_value="1",
                    default_value=0,
                )
                provider[channel][outcome] = cw.Metric(
                    namespace=NAMESPACE,
                    metric_name=metric_name,
                    statistic="Sum",
                    period=Duration.minutes(5),
                )
            m = provider[channel]
            ratio = cw.MathExpression(
                expression="IF(s + f + r > 15, (f + r) / (s + f + r), 0)",
                using_metrics={"s": m["Sent"], "f": m["Failed"], "r": m["Retried"]},
                label=f"{channel} provider error ratio",
                period=Duration.minutes(5),
            )
            alarm(
                f"provider-errors-{channel}",
                metric=ratio,
                threshold=PROVIDER_ERROR_RATIO,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=2,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=f"Over {PROVIDER_ERROR_RATIO:.0%} of {channel} provider "
                "calls fail or retry: check the provider's status and credentials.",
            )

        # Scheduler lag: how long the most overdue run waited past its due (`lag_seconds` on the
        # scheduler's "sent" log line), and passes that fail, which send nothing to measure.
        scheduler_logs = logs.LogGroup.from_log_group_name(
            self, "SchedulerLogs", log_group_name(prefix, "scheduler")
        )
        logs.MetricFilter(
            self,
            "Filter-SchedulerLag",
            log_group=scheduler_logs,
            filter_pattern=logs.FilterPattern.number_value("$.lag_seconds", ">=", 0),
            metric_namespace=NAMESPACE,
            metric_name="SchedulerLagSeconds",
            metric_value="$.lag_seconds",
        )
        scheduler_lag = cw.Metric(
            namespace=NAMESPACE,
            metric_name="SchedulerLagSeconds",
            statistic="Maximum",
            period=Duration.minutes(5),
        )
        alarm(
            "scheduler-lag",
            metric=scheduler_lag,
            threshold=SCHEDULER_LAG_SECONDS,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=2,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"Due alert rule runs went out over {SCHEDULER_LAG_SECONDS} s "
            "late for 10 minutes: the scheduler falls behind (too few schedulers, or the "
            "table throttles).",
        )
        logs.MetricFilter(
            self,
            "Filter-SchedulerPassFailed",
            log_group=scheduler_logs,
            filter_pattern=_pattern("scheduler pass failed"),
            metric_namespace=NAMESPACE,
            metric_name="SchedulerPassFailed",
            metric_value="1",
            default_value=0,
        )
        scheduler_failed = cw.Metric(
            namespace=NAMESPACE,
            metric_name="SchedulerPassFailed",
            statistic="Sum",
            period=Duration.minutes(5),
        )
        alarm(
            "scheduler-failing",
            metric=scheduler_failed,
            threshold=3,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=2,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description="Scheduler passes keep failing: due alert rule runs are not "
            "sent, so no lag is measured either.",
        )

        published = cw.Metric(
            namespace="AWS/SNS",
            metric_name="NumberOfMessagesPublished",
            dimensions_map={"TopicName": resources.events_topic.name},
            statistic="Sum",
            period=Duration.minutes(1),
        )
        api_widgets: list[cw.IWidget] = []
        if load_balancer_full_name and target_group_full_name:

            def alb(metric: str, stat: str = "Sum", target: bool = False) -> cw.Metric:
                dims = {"LoadBalancer": load_balancer_full_name}
                if target:
                    dims["TargetGroup"] = target_group_full_name
                return cw.Metric(
                    namespace="AWS/ApplicationELB",
                    metric_name=metric,
                    dimensions_map=dims,
                    statistic=stat,
                    period=Duration.minutes(1),
                )

            requests = alb("RequestCount")
            errors = cw.MathExpression(
                expression="IF(req > 0, 100 * (FILL(t5, 0) + FILL(e5, 0)) / req, 0)",
                using_metrics={
                    "req": requests,
                    "t5": alb("HTTPCode_Target_5XX_Count"),
                    "e5": alb("HTTPCode_ELB_5XX_Count"),
                },
                label="API 5xx %",
                period=Duration.minutes(1),
            )
            alarm(
                "api-5xx-rate",
                metric=errors,
                threshold=API_5XX_PERCENT,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=5,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=f"Over {API_5XX_PERCENT}% of API requests answer 5xx.",
            )
            healthy = alb("HealthyHostCount", "Minimum", target=True)
            silent = cw.MathExpression(
                expression="IF(FILL(healthy, 0) >= 1 AND FILL(published, 0) == 0, 1, 0)",
                using_metrics={
                    "healthy": healthy.with_(period=Duration.minutes(30)),
                    "published": published.with_(period=Duration.minutes(30)),
                },
                label="API healthy, no event accepted",
                period=Duration.minutes(30),
            )
            alarm(
                "no-events-accepted",
                metric=silent,
                threshold=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description="The API is healthy but accepted no event in 30 minutes: "
                "producers may fail to reach Herald (keys, network), or the day is quiet.",
            )
            api_widgets = [
                cw.GraphWidget(
                    title="API requests / min by status class",
                    left=[
                        requests,
                        alb("HTTPCode_Target_2XX_Count"),
                        alb("HTTPCode_Target_4XX_Count"),
                        alb("HTTPCode_Target_5XX_Count"),
                    ],
                    width=12,
                ),
                cw.GraphWidget(
                    title="API latency p50 / p99 (s)",
                    left=[
                        alb("TargetResponseTime", "p50"),
                        alb("TargetResponseTime", "p99"),
                    ],
                    width=12,
                ),
            ]

        work = [q.name for q in resources.work_queues]
        dead = [q.name for q in resources.dead_letter_queues]
        services = ["api", "router", "scheduler", "evaluator", "reconciler"]
        services += [f"worker-{c}" for c in CHANNELS]

        def tasks(metric: str) -> list[cw.IMetric]:
            return [
                cw.Metric(
                    namespace="ECS/ContainerInsights",
                    metric_name=metric,
                    dimensions_map={"ClusterName": prefix, "ServiceName": f"{prefix}-{s}"},
                    statistic="Average",
                    period=Duration.minutes(1),
                    label=s,
                )
                for s in services
            ]

        dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=prefix)
        dashboard.add_widgets(
            cw.GraphWidget(title="Events accepted / min (SNS publishes)", left=[published]),
            cw.GraphWidget(
                title="Provider calls / 5 min by channel and outcome",
                left=[
                    m.with_(label=f"{c} {o.lower()}")
                    for c, by in provider.items()
                    for o, m in by.items()
                ],
            ),
            cw.GraphWidget(
                title="Provider error ratio",
                left=[
                    cw.MathExpression(
                        expression=f"IF(s_{c} + f_{c} + r_{c} > 0, "
                        f"(f_{c} + r_{c}) / (s_{c} + f_{c} + r_{c}), 0)",
                        using_metrics={
                            f"s_{c}": by["Sent"],
                            f"f_{c}": by["Failed"],
                            f"r_{c}": by["Retried"],
                        },
                        label=c,
                        period=Duration.minutes(5),
                    )
                    for c, by in provider.items()
                ],
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Queue depth (waiting)",
                left=[sqs("ApproximateNumberOfMessagesVisible", q).with_(label=q) for q in work],
                width=8,
            ),
            cw.GraphWidget(
                title="Oldest waiting message (s)",
                left=[sqs("ApproximateAgeOfOldestMessage", q).with_(label=q) for q in work],
                width=8,
            ),
            cw.GraphWidget(
                title="Dead-letter queues",
                left=[sqs("ApproximateNumberOfMessagesVisible", q).with_(label=q) for q in dead],
                width=8,
            ),
        )
        if api_widgets:
            dashboard.add_widgets(*api_widgets)
        dashboard.add_widgets(
            cw.GraphWidget(title="Running tasks by service", left=tasks("RunningTaskCount")),
            cw.GraphWidget(title="CPU by service (units)", left=tasks("CpuUtilized")),
            cw.GraphWidget(
                title="Alert rule scheduler: lag (s), failed passes",
                left=[scheduler_lag],
                right=[scheduler_failed],
            ),
            cw.GraphWidget(
                title="DynamoDB throttled requests",
                left=[
                    cw.Metric(
                        namespace="AWS/DynamoDB",
                        metric_name=name,
                        dimensions_map={"TableName": resources.table.name},
                        statistic="Sum",
                        period=Duration.minutes(1),
                    )
                    for name in ("ReadThrottleEvents", "WriteThrottleEvents")
                ],
            ),
        )
