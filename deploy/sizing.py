"""Sizing Herald on AWS from measured figures: the target backlog per task, tasks per
1,000 notifications a second, the monthly bill at 1 M and 100 M notifications, and how long
a burst drains under the scaling policy (a simulation, second by second).

    python -m deploy.sizing        # the tables of docs/deploy.md, in Markdown

Measured inputs come from docs/benchmarks.md (`make bench`, the run at commit a963b0b):
Herald's own CPU per notification by process and the AWS charges per notification of the
capacity model. Everything else is a stated assumption or an AWS list price (us-east-1,
on demand, Linux/x86) and is named as such below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# --- measured (docs/benchmarks.md) ----------------------------------------------------------

#: Worker CPU per notification under a backlog (batches of ten): the busiest channel of the
#: activity workload, worker-chat 0.29 s for 50 notifications.
WORKER_CPU_PER_MESSAGE_S = 0.29 / 50
#: Router CPU per notification, activity workload (0.14 s for 150 notifications).
ROUTER_CPU_PER_NOTIFICATION_S = 0.14 / 150
#: API CPU per accepted event under Locust (32 users, 506 events/s).
API_CPU_PER_EVENT_S = 0.865e-3

#: Herald CPU per delivered notification, every process (capacity section): activity
#: (1 event -> 3 channels, batched) and steady (20 events/s, one notification each, nothing
#: shared: the dearest).
HERALD_CPU_PER_NOTIFICATION_S = {"activity": 4.51e-3, "steady": 18.70e-3}
#: AWS charges (DynamoDB units, SQS requests, SNS publishes) per million notifications.
AWS_DOLLARS_PER_MILLION = {"activity": 4.90, "steady": 10.15}

# --- assumptions -----------------------------------------------------------------------------

#: A provider call's round trip from AWS (Twilio, SendGrid): not measured by the bench (its
#: sandbox is local); a worker keeps `HERALD_SEND_CONCURRENCY` calls in flight.
PROVIDER_LATENCY_S = 0.25
SEND_CONCURRENCY = 10
#: How long a notification may wait in its queue under a burst before it is late.
ACCEPTABLE_QUEUE_LATENCY_S = 10.0
#: Target CPU utilisation of a task: headroom for the scaling lag.
TARGET_UTILISATION = 0.6
#: A new Fargate task's time from scale-out to its first receive (image pull, start).
TASK_START_S = 60
#: Target tracking scales out after 3 one-minute datapoints above the target.
SCALE_OUT_REACTION_S = 180
#: Bytes kept in DynamoDB per notification (record, its share of the event), 30 days.
STORED_BYTES_PER_NOTIFICATION = 1500
RETENTION_DAYS = 30
#: Log bytes ingested per notification (a few JSON lines across the processes).
LOG_BYTES_PER_NOTIFICATION = 600

# --- AWS list prices, us-east-1 ----------------------------------------------------------------

FARGATE_VCPU_HOUR = 0.04048
FARGATE_GB_HOUR = 0.004445
ALB_HOUR = 0.0225
ALB_LCU_HOUR = 0.008
NAT_GATEWAY_HOUR = 0.045
DYNAMODB_GB_MONTH = 0.25
DYNAMODB_PITR_GB_MONTH = 0.20
LOGS_INGEST_GB = 0.50
ALARM_MONTH = 0.10
DASHBOARD_MONTH = 3.00
SECRET_MONTH = 0.40
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class TaskSize:
    vcpu: float
    memory_gb: float


#: Fargate size per service (peak RSS is under 110 MB in every bench run).
TASK_SIZES: dict[str, TaskSize] = {
    "api": TaskSize(0.5, 1.0),
    "router": TaskSize(0.25, 0.5),
    "worker": TaskSize(0.25, 0.5),
    "scheduler": TaskSize(0.25, 0.5),
    "due-sender": TaskSize(0.25, 0.5),
    "evaluator": TaskSize(0.25, 0.5),
    "listener": TaskSize(0.25, 0.5),
    "reconciler": TaskSize(0.25, 0.5),
}
#: The smallest deployment: tasks always running (2 API tasks behind the ALB, one of every
#: other service, one worker per channel).
FLOOR_TASKS: dict[str, int] = {
    "api": 2,
    "router": 1,
    "worker": 5,
    "scheduler": 1,
    "due-sender": 1,
    "evaluator": 1,
    "listener": 1,
    "reconciler": 1,
}
ALARM_COUNT = 40  # 28 queues' alarms, API 5xx, providers, scheduler, silence; rounded up
SECRETS = 2


def worker_seconds_per_message(vcpu: float = TASK_SIZES["worker"].vcpu) -> float:
    """Wall time a worker task spends per message under a backlog: whichever bounds it,
    its CPU (measured CPU per message over its vCPU share) or its providers (latency over
    the calls it keeps in flight)."""
    return max(WORKER_CPU_PER_MESSAGE_S / vcpu, PROVIDER_LATENCY_S / SEND_CONCURRENCY)


def router_seconds_per_message(vcpu: float = TASK_SIZES["router"].vcpu) -> float:
    return ROUTER_CPU_PER_NOTIFICATION_S / vcpu


def target_backlog_per_task(seconds_per_message: float) -> int:
    """Messages one task may have waiting and still take the last within the acceptable
    latency: acceptable latency ÷ time per message."""
    return max(1, math.floor(ACCEPTABLE_QUEUE_LATENCY_S / seconds_per_message))


#: API scaling: requests a 0.5 vCPU task serves a minute at the target utilisation
#: (ALBRequestCountPerTarget is a count per minute).
API_REQUESTS_PER_TASK_PER_MINUTE = int(
    TASK_SIZES["api"].vcpu * TARGET_UTILISATION / API_CPU_PER_EVENT_S * 60
)

TARGET_BACKLOG = {
    "router": target_backlog_per_task(router_seconds_per_message()),
    "worker": target_backlog_per_task(worker_seconds_per_message()),
}


def tasks_per_thousand_per_second() -> dict[str, float]:
    """Tasks of each kind one thousand notifications a second keep busy at the target
    utilisation (activity workload: one event -> three notifications)."""
    per_task = {
        "api": API_CPU_PER_EVENT_S / 3 * 1000 / TASK_SIZES["api"].vcpu,
        "router": ROUTER_CPU_PER_NOTIFICATION_S * 1000 / TASK_SIZES["router"].vcpu,
        "worker": WORKER_CPU_PER_MESSAGE_S * 1000 / TASK_SIZES["worker"].vcpu,
    }
    cpu_bound = {k: v / TARGET_UTILISATION for k, v in per_task.items()}
    # Workers are also bounded by their providers' latency.
    cpu_bound["worker"] = max(cpu_bound["worker"], 1000 * worker_seconds_per_message())
    return cpu_bound


@dataclass(frozen=True)
class MonthlyCost:
    notifications: int
    workload: str
    fargate: float
    fixed: float
    aws_requests: float
    storage: float
    observability: float

    @property
    def total(self) -> float:
        return self.fargate + self.fixed + self.aws_requests + self.storage + self.observability


def monthly_cost(notifications: int, workload: str) -> MonthlyCost:
    floor_vcpu = sum(TASK_SIZES[k].vcpu * n for k, n in FLOOR_TASKS.items())
    floor_gb = sum(TASK_SIZES[k].memory_gb * n for k, n in FLOOR_TASKS.items())
    # Busy vCPU-hours at the target utilisation; tasks beyond the floor only when the
    # load needs them (memory follows at 2 GB per vCPU).
    busy_vcpu_hours = (
        notifications * HERALD_CPU_PER_NOTIFICATION_S[workload] / 3600 / TARGET_UTILISATION
    )
    vcpu_hours = max(floor_vcpu * HOURS_PER_MONTH, busy_vcpu_hours)
    gb_hours = max(floor_gb * HOURS_PER_MONTH, busy_vcpu_hours * 2)
    fargate = vcpu_hours * FARGATE_VCPU_HOUR + gb_hours * FARGATE_GB_HOUR
    fixed = (ALB_HOUR + ALB_LCU_HOUR + NAT_GATEWAY_HOUR) * HOURS_PER_MONTH
    aws_requests = notifications / 1e6 * AWS_DOLLARS_PER_MILLION[workload]
    stored_gb = notifications * STORED_BYTES_PER_NOTIFICATION * RETENTION_DAYS / 30 / 1e9
    storage = stored_gb * (DYNAMODB_GB_MONTH + DYNAMODB_PITR_GB_MONTH)
    logs_gb = notifications * LOG_BYTES_PER_NOTIFICATION / 1e9
    observability = (
        logs_gb * LOGS_INGEST_GB
        + ALARM_COUNT * ALARM_MONTH
        + DASHBOARD_MONTH
        + SECRETS * SECRET_MONTH
    )
    return MonthlyCost(
        notifications, workload, fargate, fixed, aws_requests, storage, observability
    )


@dataclass(frozen=True)
class Drain:
    burst: int
    min_tasks: int
    max_tasks: int
    seconds: int
    peak_tasks: int


def simulate_drain(burst: int, min_tasks: int, max_tasks: int, target: int) -> Drain:
    """One channel's queue gets `burst` messages at once; target tracking on backlog per
    task asks for ceil(backlog / target) tasks once the backlog has stayed above target for
    the reaction time, and a task asked for starts working TASK_START_S later."""
    rate = 1 / worker_seconds_per_message()
    backlog = float(burst)
    running = min_tasks
    pending: list[tuple[int, int]] = []  # (second it starts, tasks)
    above_since: int | None = None
    peak = running
    t = 0
    while backlog > 0:
        t += 1
        for start, n in [p for p in pending if p[0] <= t]:
            running += n
            pending.remove((start, n))
        backlog = max(0.0, backlog - running * rate)
        peak = max(peak, running)
        asked = running + sum(n for _, n in pending)
        wanted = min(max_tasks, max(min_tasks, math.ceil(backlog / target)))
        if backlog / running > target:
            above_since = t if above_since is None else above_since
            if t - above_since >= SCALE_OUT_REACTION_S and wanted > asked:
                pending.append((t + TASK_START_S, wanted - asked))
                above_since = t
        else:
            above_since = None
    return Drain(burst, min_tasks, max_tasks, t, peak)


def _money(value: float) -> str:
    return f"${value:,.0f}" if value >= 100 else f"${value:,.2f}"


def report() -> str:
    lines = [
        "| figure | value | from |",
        "|---|---|---|",
        f"| worker CPU per message under a backlog | {WORKER_CPU_PER_MESSAGE_S * 1e3:.1f} ms "
        "| bench, activity, busiest worker |",
        f"| worker wall time per message, 0.25 vCPU task | "
        f"{worker_seconds_per_message() * 1e3:.1f} ms | max(CPU ÷ vCPU, provider latency "
        f"{PROVIDER_LATENCY_S * 1e3:.0f} ms ÷ {SEND_CONCURRENCY} in flight) |",
        f"| router wall time per notification, 0.25 vCPU task | "
        f"{router_seconds_per_message() * 1e3:.1f} ms | bench, activity |",
        f"| target backlog per worker task | {TARGET_BACKLOG['worker']} messages "
        f"| {ACCEPTABLE_QUEUE_LATENCY_S:.0f} s ÷ worker time per message |",
        f"| target backlog per router task | {TARGET_BACKLOG['router']} messages "
        f"| {ACCEPTABLE_QUEUE_LATENCY_S:.0f} s ÷ router time per notification |",
        "",
        "| tasks per 1,000 notifications/s | api (0.5 vCPU) | router (0.25 vCPU) "
        "| workers (0.25 vCPU) |",
        "|---|---|---|---|",
    ]
    per = tasks_per_thousand_per_second()
    lines.append(
        f"| activity workload | {per['api']:.1f} | {per['router']:.1f} | {per['worker']:.1f} |"
    )
    lines += [
        "",
        "| notifications / month | workload | Fargate | ALB + NAT | DynamoDB + SQS + SNS "
        "| DynamoDB storage + PITR | logs, alarms, dashboard, secrets | total |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for notifications in (1_000_000, 100_000_000):
        for workload in ("activity", "steady"):
            c = monthly_cost(notifications, workload)
            lines.append(
                f"| {notifications:,} | {workload} | {_money(c.fargate)} | {_money(c.fixed)} "
                f"| {_money(c.aws_requests)} | {_money(c.storage)} | {_money(c.observability)} "
                f"| **{_money(c.total)}** |"
            )
    lines += [
        "",
        "| burst on one channel | workers min → max | drained in | peak tasks |",
        "|---|---|---|---|",
    ]
    for min_tasks, max_tasks in ((1, 10), (1, 40), (2, 40)):
        d = simulate_drain(100_000, min_tasks, max_tasks, TARGET_BACKLOG["worker"])
        lines.append(
            f"| {d.burst:,} | {d.min_tasks} → {d.max_tasks} | {d.seconds // 60} min "
            f"{d.seconds % 60:02d} s | {d.peak_tasks} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(report(), end="")
