"""The alert-rule phase of the benchmarks: `python -m bench.run --only rules`.

`--rules` rules (10,000 by default), each `every 1m` over a SQLite data source with a
condition that never fires, are written straight into the table (rule and due items, as
`PUT /rules` would) with their first run due at the next whole minute. One or more
schedulers and evaluators then run as processes, counting their AWS calls. The phase waits
until every run of that minute is recorded, then reads the evaluation records:

- scheduling lag: from a run's due time to the scheduler's send, and to its evaluation;
- evaluations per second per evaluator process, and runs sent per second per scheduler;
- AWS requests per evaluation (every call of the schedulers and evaluators in the window).

Writes docs/benchmarks-rules.md; the main report is left as it is.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alerting import due
from alerting.rules import Rule
from bench.stack import Snapshot, Stack, diff_calls, start_python, wait_until
from core import dynamo
from core.aws import AwsClients
from core.models import iso

SHARDS = 8
SEED_MARGIN_SECONDS = 20  # the first run is due at a whole minute at least this far ahead


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


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
                "due_pk": slot[dynamo.PK],
                "due_sk": slot[dynamo.SK],
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


def evaluations(clients: AwsClients, run: str) -> list[dict[str, Any]]:
    """Every evaluation record of one run (a Scan: the bench's own reading, not Herald's)."""
    found: list[dict[str, Any]] = []
    args: dict[str, Any] = {
        "TableName": clients.names.table,
        "FilterExpression": "begins_with(SK, :e) AND #r = :run",
        "ExpressionAttributeNames": {"#r": "run"},
        "ExpressionAttributeValues": {":e": {"S": "EVAL#"}, ":run": {"S": run}},
    }
    while True:
        resp = clients.dynamodb.scan(**args)
        found += [json.loads(dynamo.from_item(i)["evaluation_json"]) for i in resp["Items"]]
        if "LastEvaluatedKey" not in resp:
            return found
        args["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def phase_rules(
    stack: Stack,
    results: dict[str, Any],
    rules: int,
    schedulers: int,
    evaluators: int,
    timeout: float = 900,
) -> None:
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
    started = time.monotonic()
    seed_rules(clients, rules, first_due)
    seeding = time.monotonic() - started
    calls = stack.workdir / "calls"
    calls.mkdir(parents=True, exist_ok=True)
    commands = {f"scheduler-{i}": ["-m", "alerting.scheduler"] for i in range(schedulers)}
    commands |= {f"evaluator-{i}": ["-m", "alerting.evaluator"] for i in range(evaluators)}
    stack.phase = "rules"
    for name, args in commands.items():
        stack.herald[name] = start_python(
            f"rules-{name}", args, env, stack.logs, call_log=str(calls / f"rules-{name}")
        )
    wait_until(lambda: all(p.calls() for p in stack.herald.values()), timeout=30)
    before: Snapshot = stack.snapshot()
    run = iso(first_due)
    wait_s = max(0.0, (first_due - datetime.now(UTC)).total_seconds())
    time.sleep(wait_s)
    done: list[dict[str, Any]] = []
    evaluator_procs = [p for n, p in stack.herald.items() if n.startswith("evaluator")]

    def recorded() -> int:
        """Evaluations written so far, from the evaluators' own call counts: polling the
        table would load the one emulator every process waits on."""
        return sum(
            p.calls().get("dynamodb", {}).get("TransactWriteItems", 0) for p in evaluator_procs
        )

    last_scan = [0.0]

    def all_evaluated() -> bool:
        if recorded() < rules or time.monotonic() - last_scan[0] < 20:
            return False
        done[:] = evaluations(clients, run)
        last_scan[0] = time.monotonic()
        return len(done) >= rules

    complete = wait_until(all_evaluated, timeout=timeout, interval=3)
    after = stack.snapshot()
    stack.stop_herald()
    due_at = first_due.timestamp()
    sends = [datetime.fromisoformat(e["scheduled_at"]).timestamp() - due_at for e in done]
    evals = [datetime.fromisoformat(e["evaluated_at"]).timestamp() - due_at for e in done]
    window = max(evals) if evals else float("nan")
    send_window = max(sends) if sends else float("nan")
    requests: dict[str, int] = {}
    for name in commands:
        delta = diff_calls(before.calls.get(name, {}), after.calls.get(name, {}))
        requests[name] = sum(sum(ops.values()) for ops in delta.values())
    cpu = {n: after.cpu[n] - before.cpu[n] for n in commands}
    evaluated = len(done)
    results["rules"] = {
        "rules": rules,
        "schedulers": schedulers,
        "evaluators": evaluators,
        "complete": complete,
        "evaluated": evaluated,
        "seeding_s": round(seeding, 1),
        "send_lag_p50_s": round(_percentile(sends, 50), 2),
        "send_lag_p99_s": round(_percentile(sends, 99), 2),
        "eval_lag_p50_s": round(_percentile(evals, 50), 2),
        "eval_lag_p99_s": round(_percentile(evals, 99), 2),
        "sent_per_s_per_scheduler": round(evaluated / send_window / schedulers, 1),
        "evaluations_per_s_per_evaluator": round(evaluated / window / evaluators, 1),
        "cpu_s": {n: round(v, 1) for n, v in cpu.items()},
        "aws_requests": requests,
        "aws_requests_per_evaluation": round(sum(requests.values()) / max(evaluated, 1), 2),
        "note": "requests include the next minute's runs sent and evaluated in the window",
    }


def render(figures: dict[str, Any], machine: dict[str, Any]) -> str:
    f = figures
    rows = [
        ("rules, every 1m", f"{f['rules']:,}"),
        ("scheduler / evaluator processes", f"{f['schedulers']} / {f['evaluators']}"),
        (
            "runs of the minute evaluated",
            f"{f['evaluated']:,}" + ("" if f["complete"] else " (timed out)"),
        ),
        ("runs sent per second per scheduler", f"{f['sent_per_s_per_scheduler']}"),
        ("evaluations per second per evaluator", f"{f['evaluations_per_s_per_evaluator']}"),
        (
            "scheduling lag (due → sent) p50 / p99",
            f"{f['send_lag_p50_s']} / {f['send_lag_p99_s']} s",
        ),
        ("due → evaluated p50 / p99", f"{f['eval_lag_p50_s']} / {f['eval_lag_p99_s']} s"),
        ("AWS requests per evaluation", f"{f['aws_requests_per_evaluation']}"),
        ("CPU seconds per process", ", ".join(f"{k} {v}" for k, v in f["cpu_s"].items())),
        ("AWS requests per process", ", ".join(f"{k} {v:,}" for k, v in f["aws_requests"].items())),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (
        "# Alert rule benchmarks\n\n"
        "Written by `python -m bench.run --only rules` (see `bench/rules.py`): rules every "
        "minute over a SQLite data source, scheduled and evaluated by separate processes "
        "against the loopback emulators.\n\n"
        f"Machine: {machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores, "
        f"load average {machine.get('load_average', '?')} at the start, "
        f"{machine.get('date', '?')}, commit {machine.get('commit', '?')}.\n\n"
        "| figure | value |\n|---|---|\n" + table + "\n\n"
        f"Note: {f['note']}.\n"
    )


def write(path: Path, results: dict[str, Any]) -> None:
    path.write_text(render(results["rules"], results.get("machine", {})))
