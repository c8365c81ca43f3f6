"""The alert-rule phase of the benchmarks: `python -m bench.run --only rules`.

`--rules` rules (10,000 by default), each `every 1m` over a SQLite data source with a
condition that never fires, are written straight into the table (rule and due items, as
`PUT /rules` would) with their first run due at the next whole minute. The schedulers
then run alone (scheduling lag: due time → the minute's runs on the queue), then the
evaluators drain that backlog for a fixed window (evaluations per second per process),
each process counting its AWS calls (requests per run and per evaluation).

Writes docs/benchmarks-rules.md; the main report is left as it is.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alerting import due
from alerting.rules import Rule
from bench.stack import Snapshot, Stack, start_python, wait_until
from core.aws import dynamo
from core.aws.clients import AwsClients
from core.catalogue.models import iso

SHARDS = 8
SEED_MARGIN_SECONDS = 20  # the first run is due at a whole minute at least this far ahead


def seed_rules(clients: AwsClients, count: int, first_due: datetime) -> None:
    """Rule and due items with BatchWriteItem (25 a call): seeding is not measured."""
    table = clients.names.table
    now = iso(datetime.now(UTC))
    items: list[dict[str, Any]] = []
    for index in range(count):
        rule = Rule.model_validate(
            {
                "id": f"bench-{index:05d}",
                "name": f"Bench rule {index}",
                "schedule": "every 1m",
                "source": {"kind": "sql", "datasource": "bench", "query": "SELECT 1 AS one"},
                "condition": {"kind": "any_rows", "min_rows": 2},
                "recipients": {"topic": "bench"},
                "created_at": now,
                "updated_at": now,
            }
        )
        slot = due.due_item(rule, first_due, SHARDS)
        items.append(slot)
        items.append(
            {
                dynamo.PK: f"RULE#{rule.id}",
                dynamo.SK: "RULE",
                "entity": "RULE",
                dynamo.GSI_SORT: rule.id,
                "rule_json": rule.model_dump_json(by_alias=True),
                "version": 1,
                "enabled": True,
            }
        )
    for start in range(0, len(items), 25):
        request = {
            table: [{"PutRequest": {"Item": dynamo.to_item(i)}} for i in items[start : start + 25]]
        }
        while request:
            resp = clients.dynamodb.batch_write_item(RequestItems=request)
            request = resp.get("UnprocessedItems") or {}
    due.DueStore(clients.dynamodb, table, "bench").advance_cursor(None, due.bucket_of(first_due))


def queue_depth(clients: AwsClients) -> int:
    total = 0
    for lane in ("critical", "normal"):
        attrs = clients.sqs.get_queue_attributes(
            QueueUrl=clients.queue_url(clients.names.rules_queue(lane)),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        total += int(attrs["ApproximateNumberOfMessages"])
        total += int(attrs["ApproximateNumberOfMessagesNotVisible"])
    return total


def start(stack: Stack, env: dict[str, str], kind: str, count: int) -> list[str]:
    calls = stack.workdir / "calls"
    calls.mkdir(parents=True, exist_ok=True)
    names = [f"{kind}-{i}" for i in range(count)]
    for name in names:
        stack.herald[name] = start_python(
            f"rules-{name}",
            ["-m", f"alerting.{kind}"],
            env,
            stack.logs,
            call_log=str(calls / f"rules-{name}"),
        )
    wait_until(lambda: all(stack.herald[n].calls() for n in names), timeout=30)
    return names


def total_calls(stack: Stack, names: list[str], snapshot: Snapshot) -> int:
    return sum(
        sum(sum(ops.values()) for ops in snapshot.calls.get(name, {}).values()) for name in names
    )


def phase_rules(
    stack: Stack,
    results: dict[str, Any],
    rules: int,
    schedulers: int,
    evaluators: int,
    eval_seconds: float = 60,
) -> None:
    """Two stages. Scheduling: only the schedulers run, so the lag of sending a minute of
    `rules` runs is the scheduler's own (the queue depth is polled: when it holds 50%, 99%
    and all of them). Evaluating: the evaluators then drain that backlog for
    `eval_seconds`; their recorded evaluations give evaluations per second per process."""
    clients = stack.fresh_aws()
    database = stack.workdir / "bench-rules.db"
    env = {
        **stack.env(),
        "HERALD_DATASOURCES": json.dumps({"bench": f"sqlite:///{database}"}),
        "HERALD_SCHEDULER_SHARDS": str(SHARDS),
        "HERALD_WAIT_TIME_SECONDS": "2",
    }
    now = datetime.now(UTC)
    first_due = (now + timedelta(seconds=SEED_MARGIN_SECONDS + 60)).replace(second=0, microsecond=0)
    began = time.monotonic()
    seed_rules(clients, rules, first_due)
    seeding = time.monotonic() - began
    stack.phase = "rules"
    scheduler_names = start(stack, env, "scheduler", schedulers)
    before = stack.snapshot(scheduler_names)
    time.sleep(max(0.0, (first_due - datetime.now(UTC)).total_seconds()))
    marks: dict[str, float] = {}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and "all" not in marks:
        depth = queue_depth(clients)
        lag = datetime.now(UTC).timestamp() - first_due.timestamp()
        for name, share in (("p50", 0.5), ("p99", 0.99), ("all", 1.0)):
            if name not in marks and depth >= rules * share:
                marks[name] = lag
        time.sleep(0.5)
    scheduled = stack.snapshot(scheduler_names)
    scheduler_requests = total_calls(stack, scheduler_names, scheduled) - total_calls(
        stack, scheduler_names, before
    )
    scheduler_cpu = sum(scheduled.cpu[n] - before.cpu[n] for n in scheduler_names)
    for name in scheduler_names:  # the backlog is what the evaluators measure on
        stack.herald.pop(name).stop()

    # New processes count from zero: the window runs from their start until the backlog
    # is drained or `eval_seconds` have passed (start-up is inside it, against them).
    window_start = time.monotonic()
    evaluator_names = start(stack, env, "evaluator", evaluators)
    cpu_at_start = {n: 0.0 for n in evaluator_names}
    end = window_start + eval_seconds
    while time.monotonic() < end and queue_depth(clients) > 0:
        time.sleep(0.5)
    window = time.monotonic() - window_start
    at_end = stack.snapshot(evaluator_names)
    done = sum(
        at_end.calls.get(n, {}).get("dynamodb", {}).get("TransactWriteItems", 0)
        for n in evaluator_names
    )
    evaluator_requests = total_calls(stack, evaluator_names, at_end)
    evaluator_cpu = sum(at_end.cpu[n] - cpu_at_start[n] for n in evaluator_names)
    stack.stop_herald()
    sent = rules if "all" in marks else queue_depth(clients)
    results["rules"] = {
        "rules": rules,
        "schedulers": schedulers,
        "evaluators": evaluators,
        "seeding_s": round(seeding, 1),
        "send_lag_p50_s": round(marks.get("p50", float("nan")), 2),
        "send_lag_p99_s": round(marks.get("p99", float("nan")), 2),
        "send_lag_all_s": round(marks.get("all", float("nan")), 2),
        "sent_per_s_per_scheduler": round(sent / marks["all"] / schedulers, 1)
        if "all" in marks
        else None,
        "scheduler_cpu_ms_per_run": round(scheduler_cpu * 1000 / max(sent, 1), 2),
        "scheduler_requests_per_run": round(scheduler_requests / max(sent, 1), 3),
        "evaluations": done,
        "eval_window_s": round(window, 1),
        "evaluations_per_s_per_evaluator": round(done / window / evaluators, 1),
        "evaluator_cpu_ms_per_evaluation": round(evaluator_cpu * 1000 / max(done, 1), 2),
        "evaluator_requests_per_evaluation": round(evaluator_requests / max(done, 1), 2),
        "aws_requests_per_evaluation": round(
            scheduler_requests / max(sent, 1) + evaluator_requests / max(done, 1), 2
        ),
    }


def render(figures: dict[str, Any], machine: dict[str, Any]) -> str:
    f = figures
    rows = [
        ("rules, every 1m", f"{f['rules']:,}"),
        ("scheduler / evaluator processes", f"{f['schedulers']} / {f['evaluators']}"),
        (
            "scheduling lag, due → sent, p50 / p99 / all",
            f"{f['send_lag_p50_s']} / {f['send_lag_p99_s']} / {f['send_lag_all_s']} s",
        ),
        ("runs sent per second per scheduler", f"{f['sent_per_s_per_scheduler']}"),
        ("scheduler CPU per run", f"{f['scheduler_cpu_ms_per_run']} ms"),
        ("scheduler AWS requests per run", f"{f['scheduler_requests_per_run']}"),
        ("evaluations per second per evaluator", f"{f['evaluations_per_s_per_evaluator']}"),
        ("evaluator CPU per evaluation", f"{f['evaluator_cpu_ms_per_evaluation']} ms"),
        ("evaluator AWS requests per evaluation", f"{f['evaluator_requests_per_evaluation']}"),
        ("AWS requests per evaluation, scheduling included", f"{f['aws_requests_per_evaluation']}"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (
        "# Alert rule benchmarks\n\n"
        "Written by `python -m bench.run --only rules` (see `bench/rules.py`): "
        f"{f['rules']:,} rules every minute over a SQLite data source, written into the "
        "table with their first run due at one whole minute. First the scheduler runs alone "
        "and the rules queues' depth is polled (when they hold 50%, 99% and all of the "
        f"minute's runs); then the evaluators drain that backlog for {f['eval_window_s']} s. "
        "Every figure comes from the processes' own AWS call counts and /proc.\n\n"
        f"Machine: {machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores, "
        f"load average {machine.get('load_average', '?')} at the start (other work shares "
        f"it), {machine.get('date', '?')}, commit {machine.get('commit', '?')}.\n\n"
        "| figure | value |\n|---|---|\n" + table + "\n\n"
        "Bounds. Every DynamoDB call of every process goes through one emulator process "
        "that serves them one at a time: an evaluation costs a consistent BatchGetItem (the "
        "rule, its state, the run's record) and one TransactWriteItems (the evaluation and "
        "the new state), plus a tenth of a receive and a delete; the scheduler reads its "
        "rules' versions with a BatchGetItem per 100 runs, sends ten runs per "
        "SendMessageBatch and moves twelve per BatchWriteItem (a delete and a put each). Against "
        "DynamoDB, whose partitions serve in parallel, evaluations per process are bounded "
        "by the SQL query and the call latency, and more evaluator processes add up.\n"
    )


def write(path: Path, results: dict[str, Any]) -> None:
    path.write_text(render(results["rules"], results.get("machine", {})))
