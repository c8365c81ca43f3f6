"""docs/benchmarks.md from the figures of a run (and, if given, an earlier run beside them):
the headline table (`bench.figures`), then a section per phase, what changed and why the
targets that do not hold are bounded.
"""

from __future__ import annotations

from typing import Any

from bench import capacity_report, due_lag, idle
from bench.figures import figures_table, lookup

# The hops of one notification, in the order it takes them.
HOPS = (
    "client → API recorded",
    "API recorded → router created the record",
    "router created → worker claimed",
    "worker claimed → provider received",
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def calls_table(workload: dict[str, Any]) -> list[str]:
    """Requests per notification by process and operation."""
    n = max(int(workload.get("notifications") or 0), 1)
    rows: list[tuple[str, str, int]] = []
    for process, services in sorted(workload.get("calls_by_process", {}).items()):
        for service, ops in sorted(services.items()):
            for op, count in sorted(ops.items()):
                rows.append((process, f"{service} {op}", count))
    lines = ["| process | call | requests | per notification |", "|---|---|---|---|"]
    for process, call, count in rows:
        lines.append(f"| {process} | {call} | {count} | {count / n:.3f} |")
    total = sum(c for _, _, c in rows)
    lines.append(f"| **all** | | **{total}** | **{total / n:.2f}** |")
    return lines


def cpu_line(workload: dict[str, Any]) -> str:
    parts = [f"{name} {cpu:.2f} s" for name, cpu in sorted(workload["cpu_by_process"].items())]
    return "CPU by process: " + ", ".join(parts) + "."


def window_line(workload: dict[str, Any]) -> str:
    return (
        f"Wall time {workload['wall_s']:.1f} s; the emulators used "
        f"{workload['emulator_cpu_s']:.1f} CPU s (the busiest "
        f"{_pct(workload['emulator_busy'])} of one core), the whole machine was "
        f"{_pct(workload['machine_busy'])} busy."
    )


def _latency(results: dict[str, Any]) -> list[str]:
    runs = [r for r in (results.get("latency_low"), results.get("latency")) if r]
    if not runs:
        return []
    out = [
        "## End-to-end latency",
        "",
        "`like` events at a steady rate (an open loop: each POST starts on schedule whatever "
        "the answers) to 60 users with one channel each (sms, email or chat in turn), each "
        "run with a fresh emulator and fresh processes. Latency is from the moment the "
        "client sent the POST to the moment the sandbox received the provider request "
        "(`received_at`), per notification. The hops come from the timestamps Herald "
        "records: the event's `created_at`, the notification's `created_at` (the router) "
        "and its `SENDING` history entry (the worker's claim).",
        "",
        "| events/s | events | p50 ms | p95 ms | p99 ms | max ms | busiest emulator "
        "| machine busy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        e = run["end_to_end_ms"]
        out.append(
            f"| {run['rate']:g} | {run['events']} | {e['p50']:.0f} | {e['p95']:.0f} | "
            f"{e['p99']:.0f} | {e['max']:.0f} | {_pct(run['emulator_busy'])} | "
            f"{_pct(run['machine_busy'])} |"
        )
    out += [
        "",
        "| hop | " + " | ".join(f"p50 / p99 ms at {r['rate']:g}/s" for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for name in [h for h in HOPS if h in runs[0]["hops_ms"]]:
        cells = [f"{r['hops_ms'][name]['p50']:.0f} / {r['hops_ms'][name]['p99']:.0f}" for r in runs]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    for run in runs:
        out += [
            "",
            f"At {run['rate']:g} events/s: {run['aws_requests_per_notification']:.2f} AWS "
            f"requests and {run['herald_cpu_s_per_1000']:.2f} CPU s per 1,000 "
            "notifications. " + cpu_line(run) + " " + window_line(run),
        ]
    lat = results.get("latency")
    if lat:
        out += ["", f"Requests at {lat['rate']:g} events/s:", "", *calls_table(lat)]
    out.append("")
    return out


CHANGES = [
    "## What changed between *before* and *now*",
    "",
    "- **API: concurrent requests share their AWS calls** (`api/intake.py`, "
    "`api/group_commit.py`). Requests that arrive together are accepted in one round: one "
    "TransactWriteItems records them (`EventWrites.put_new_batch`; a taken id cancels it, "
    "the cancellation reasons name it and the others go again without it), then PublishBatch "
    "calls of ten publish the new ones. One round is in flight while the next gathers, so "
    "rounds grow with the load; a request that arrives alone is a plain PutItem and one "
    "publish. (Recording and publishing as two separate pipelines, tried first, split the "
    "waiting requests between them and halved the batches.) Dependencies are `async` and a "
    "cached API key is checked on the event loop, so a request no longer takes trips "
    "through the thread pool; botocore's client-side "
    "parameter validation is off (the service validates); uvicorn runs on httptools and "
    "uvloop (the bare app too, which is why its own figure dropped). The API, router and "
    "workers freeze their start-up objects out of the garbage collector's scans "
    "(`core/platform/runtime.py`): botocore's models alone are hundreds of thousands of "
    "objects that every full collection walked again.",
    "- **Router: a receive's events are routed together** (`listeners/grouped_routing.py`, "
    "`RecordCreation.create_routed`). One consistent BatchGetItem reads the users of the "
    "whole batch; one TransactWriteItems creates every record, counts them on their events "
    "and moves each event START → PROCESSING with its fan-out complete; SendMessageBatch "
    "groups messages per channel queue across events. Redeliveries, duplicates and a "
    "cancelled transaction fall back to the one-event path, which reads what exists first.",
    "- **Workers: a batch is claimed and settled together** (`listeners/delivery.py`). One "
    "TransactWriteItems claims every record of the batch (a refused claim returns the "
    "stored status, so a duplicate needs no second read), one marks every successful send "
    "SENT, and the outcomes are counted with one update per event per batch.",
    "- **The emulator** (`localstack/emulator.py`, section *The emulator*): a cancelled "
    "transaction is undone item by item instead of by a copy of the whole table, and queue "
    "attributes are computed when read instead of on every send. The benchmark runs "
    "DynamoDB in a second emulator process (`AWS_ENDPOINT_URL_DYNAMODB`). The provider "
    "sandbox listens with a backlog of 128, not the standard library's 5, which dropped the "
    "connections of ten concurrent SendGrid sends and had them retried a second later (the "
    "critical p99 of the earlier runs). These change what the wall-clock figures measure "
    "(less time waiting for the fakes), not Herald's requests or its own CPU per call.",
    "",
    "Trade-offs. DynamoDB bills a transactional write as two write units, so the batched "
    "puts, claims and marks trade write units for requests (and latency on AWS, where a "
    "transaction is one round trip). The event's tally stays a plain UpdateItem per event "
    "per batch rather than joining the SENT transaction: the channel workers of one event "
    "update its item at about the same moment, and on DynamoDB concurrent transactions on "
    "one item cancel each other (TransactionConflict) where plain updates simply queue.",
    "",
]


def bounds(results: dict[str, Any]) -> list[str]:
    """Why the targets that do not hold do not, from this run's own measurements."""
    out = ["## Where the targets are bounded", ""]
    emu = (results.get("emulator") or {}).get("patched", {})
    floor = emu.get("botocore_cpu_ms_per_call")
    api = lookup(results, "api", "herald")
    bare = lookup(results, "api", "bare")
    if api and bare and floor and api["cpu_ms_per_accepted"] > 1.0:
        out.append(
            f"- **API CPU per event** ({api['cpu_ms_per_accepted']:.2f} ms; the bare app "
            f"{bare['cpu_ms_per_accepted']:.2f} ms): botocore spent {floor:.2f} ms of CPU "
            "per call in this run (one call at a time, the bench process), and each event "
            "still costs its share of a TransactWriteItems and of a PublishBatch (at most "
            "ten entries) besides FastAPI's validation and dependencies; the API was "
            f"serving {api['accepted_per_s']:.0f} events/s on a machine "
            f"{_pct(api['machine_busy'])} busy with Locust and the emulators."
        )
    activity = lookup(results, "requests", "activity")
    topic = lookup(results, "requests", "topic")
    lat = results.get("latency")
    missed_cpu = [
        w for w in (activity, topic, lat) if w and w.get("herald_cpu_s_per_1000", 0) > 3.0
    ]
    if missed_cpu and floor and activity:
        cpu = activity["cpu_by_process"]
        out.append(
            "- **Herald CPU per 1,000 notifications** (activity "
            f"{activity['herald_cpu_s_per_1000']:.2f} s"
            + (f", topic {topic['herald_cpu_s_per_1000']:.2f} s" if topic else "")
            + (f", {lat['rate']:g} events/s {lat['herald_cpu_s_per_1000']:.1f} s" if lat else "")
            + f"): AWS requests times botocore's {floor:.1f} ms of CPU per call (in a tight "
            "loop; more when calls are spread out"
            + (
                f": at {lat['rate']:g} events/s Herald spent "
                f"{lat['herald_cpu_s_per_1000'] / lat['aws_requests_per_notification']:.1f} ms "
                "per request, everything included"
                if lat and lat.get("aws_requests_per_notification")
                else ""
            )
            + "), plus the provider SDK's HTTP call per notification. The topic workload "
            f"shares nearly every call ({topic['aws_requests_per_notification']:.2f} requests "
            "per notification). "
            "The activity workload "
            f"({activity['aws_requests_per_notification']:.2f} requests per notification; "
            f"workers {sum(v for k, v in cpu.items() if k.startswith('worker')):.2f} s, "
            f"router {cpu.get('router', 0):.2f} s, API {cpu.get('api', 0):.2f} s) sends each "
            "event's three notifications through three workers, so each counts it on the "
            "event with its own update. At a steady low rate nothing overlaps, so nothing is "
            "shared: every event costs its own put, publish, receive, routing transaction, "
            "send and delete, and every notification its own receive, claim, mark, count and "
            "delete (the request table below)."
        )
    low = results.get("latency_low")
    if lat and low and (lat["end_to_end_ms"]["p50"] > 150 or lat["end_to_end_ms"]["p99"] > 500):
        out.append(
            f"- **End-to-end latency at {lat['rate']:g} events/s** (p50 "
            f"{lat['end_to_end_ms']['p50']:.0f} ms, p99 {lat['end_to_end_ms']['p99']:.0f} ms): "
            "the emulator. moto answers each call in several milliseconds of Python, and the "
            "busiest emulator process was "
            f"{_pct(lat['emulator_busy'])} busy (of the one core a Python process can use), "
            "so calls queue in it and the waits add up at the router and worker hops (table "
            "below): a router batch is five calls and a notification's worker round six, "
            f"each waiting its turn. At {low['rate']:g} events/s the busiest was "
            f"{_pct(low['emulator_busy'])} busy and the same pipeline measured p50 "
            f"{low['end_to_end_ms']['p50']:.0f} ms and p99 "
            f"{low['end_to_end_ms']['p99']:.0f} ms end to end."
        )
    pri = results.get("priority")
    if pri and pri["critical_ms"]["p99"] > 1000:
        out.append(
            f"- **Critical p99 with a normal backlog** ({pri['critical_ms']['p99']:.0f} ms): "
            "the worker takes the critical batch first ("
            f"{pri['backlog'] - pri['backlog_sent_before_last_critical']:,} of "
            f"{pri['backlog']:,} normal notifications were still queued when the last "
            "critical one arrived), but a critical message that lands while a normal batch "
            "is being delivered waits for that batch to finish; draining the backlog kept "
            f"the busiest emulator process {_pct(pri['emulator_busy'])} busy, which sets how "
            "long a batch takes (hops below)."
        )
    out.append("")
    return out if len(out) > 3 else []


def render(
    results: dict[str, Any],
    before: dict[str, Any] | None,
    before_path: str,
    before_capacity: dict[str, Any] | None = None,
) -> str:
    m = results["machine"]
    out = [
        "# Benchmarks",
        "",
        "<!-- generated by `make bench` (bench/run.py); edit the generator, not this file -->",
        "",
        f"Reproduce: `{results['command']}` (about {results['duration_s'] / 60:.0f} minutes; "
        "everything runs on loopback against moto servers and the provider sandbox).",
        "",
        f"Machine: {m['cores']} cores ({m['cpu_model']}), {m['memory_gb']} GB memory, Linux "
        f"{m['kernel']}, Python {m['python']}, moto {m['moto']}, uvicorn {m['uvicorn']}, "
        f"locust {m['locust']}. Run on {m['date']} at commit `{m['commit']}`"
        + (f", load average {m['load_average']} at the start." if "load_average" in m else "."),
        "",
        "## Figures and targets",
        "",
    ]
    if before:
        bm = before["machine"]
        out += [
            f"*before* is the same harness run on {bm['date']} at commit `{bm['commit']}`, "
            f"before the optimisations described below (figures kept in `{before_path}`); "
            "*now* is this run.",
            "",
        ]
    out += figures_table(results, before)
    out += [
        "",
        "AWS requests are every call Herald's own processes made (API, router, workers), "
        "counted by a botocore `after-call` hook (`HERALD_AWS_CALL_LOG`), idle long polls "
        "included, divided by the notifications the providers received. CPU is user + system "
        "time of those processes from `/proc/<pid>/stat`; the emulator and the sandbox are not "
        "counted. Peak RSS is `VmHWM` from `/proc/<pid>/status`.",
        "",
        *CHANGES,
        *bounds(results),
    ]
    api = results.get("api")
    if api:
        h, b = api["herald"], api["bare"]
        out += [
            "## API under Locust",
            "",
            f"`{h['command']}` with only single activity events "
            "(`HERALD_LOAD_W_ACTIVITY=1`, the other weights 0, no wait between requests), "
            f"{api['users']} users for {api['seconds']} s, after 100 warm-up requests; "
            "then the same against `bench/bare_app.py` (FastAPI, same uvicorn, answers 202 "
            "and does nothing). API CPU is read from /proc before and after the Locust run.",
            "",
            "| | accepted/s | p50 ms | p99 ms | failures | CPU ms per event | "
            "busiest emulator | machine busy |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, row in (("Herald", h), ("bare FastAPI", b)):
            out.append(
                f"| {name} | {row['accepted_per_s']:.0f} | {row['p50_ms']:.0f} | "
                f"{row['p99_ms']:.0f} | {row['failures']} | "
                f"{row['cpu_ms_per_accepted']:.3f} | {_pct(row['emulator_busy'])} | "
                f"{_pct(row['machine_busy'])} |"
            )
        out += [
            "",
            f"Herald spends {h['cpu_ratio_to_bare']:.1f}x the CPU of the bare app per event. "
            f"Locust itself used {h['locust_cpu_s']:.1f} CPU s in the Herald run and "
            f"{b['locust_cpu_s']:.1f} s in the bare run, on the same {m['cores']} cores.",
            "",
        ]
    req = results.get("requests")
    if req:
        a, t = req["activity"], req["topic"]
        out += [
            "## AWS requests and CPU per notification",
            "",
            f"**(a) activity:** {a['events']} `comment` events posted by 8 concurrent clients "
            f"to 50 users who want sms, email and chat: {a['notifications']} of "
            f"{a['expected']} notifications delivered; events {a['event_statuses']}.",
            "",
            *calls_table(a),
            "",
            cpu_line(a) + " " + window_line(a),
            "",
            f"**(b) topic:** one `trend.top_artist_changed` event to a topic of "
            f"{t['expected']:,} subscribers who want email: {t['notifications']} delivered; "
            f"event {t['event_statuses']}.",
            "",
            *calls_table(t),
            "",
            cpu_line(t) + " " + window_line(t),
            "",
        ]
    out += _latency(results)
    pri = results.get("priority")
    if pri:
        c = pri["critical_ms"]
        left = pri["backlog"] - pri["backlog_sent_before_last_critical"]
        out += [
            "## Priority isolation",
            "",
            f"{pri['backlog']:,} normal email notifications are recorded and queued while the "
            f"email worker is paused; it resumes and {pri['critical_events']} "
            "`security.login_alert` events (critical, email) are posted at 5/s. Critical "
            f"end to end: p50 {c['p50']:.0f} ms, p95 {c['p95']:.0f} ms, p99 {c['p99']:.0f} "
            f"ms, max {c['max']:.0f} ms; {left:,} normal notifications were still waiting "
            "when the last critical one reached the provider. " + window_line(pri),
            "",
            "| hop (critical events) | p50 ms | p99 ms |",
            "|---|---|---|",
            *[
                f"| {name} | {q['p50']:.0f} | {q['p99']:.0f} |"
                for name in HOPS
                if (q := pri.get("hops_ms", {}).get(name))
            ],
            "",
        ]
    emu = results.get("emulator")
    if emu:
        st, pa = emu["stock"], emu["patched"]
        out += [
            "## The emulator",
            "",
            "Two moto server processes emulate AWS for every Herald process, DynamoDB in one "
            "and SNS with SQS in the other (moto delivers SNS to SQS inside one process), so "
            "they bound every wall-clock figure above: their CPU use is given with each "
            "workload. Each is `localstack/emulator.py`, the same emulator `make run` and the "
            "tests use: moto with DynamoDB requests served one at a time and a cancelled "
            "TransactWriteItems undone item by item, a Query reading only its partition "
            "(`localstack/query_index.py`; stock moto lists and sorts the whole table for "
            "every Query), and SQS queue attributes computed when "
            "read. Stock moto 5.2.5 deep-copies the whole table once for *every item* of a "
            "transaction and, on cancellation, puts the copy back (undoing other requests' "
            "writes), and computes every attribute of a queue, three of which count its "
            "messages, for every message sent to it; here a transaction costs time in "
            "proportion to its items, not to the table, and a send does not depend on the "
            "queue's depth. Answers, conditions and cancellation "
            "reasons are moto's own, so request counts and Herald's CPU are what stock moto "
            "gives; its per-request access log is off. Measured in this run with 2,000 items "
            "in the table (1,000 users and their subscriptions):",
            "",
            "| emulator | conditional PutItem ms | 2-item transaction ms | 11-item "
            "transaction ms |",
            "|---|---|---|---|",
            f"| stock moto | {st['put_ms']:.1f} | {st['txn2_ms']:.0f} | {st['txn11_ms']:.0f} |",
            f"| localstack/emulator.py | {pa['put_ms']:.1f} | {pa['txn2_ms']:.0f} | "
            f"{pa['txn11_ms']:.0f} |",
            "",
            "With stock moto a 1,000-subscriber fan-out (ten 100-item transactions) takes "
            "minutes and runs past the AWS client's timeouts. The benchmark gives AWS calls "
            "30 s (`HERALD_AWS_TIMEOUT_SECONDS`) and messages 120 s of visibility "
            "(`HERALD_VISIBILITY_TIMEOUT_SECONDS`): an emulator that falls behind then shows "
            "as latency, not as a timed-out call or a redelivered message done (and counted) "
            "twice. Long polls wait 20 s "
            "(`HERALD_WAIT_TIME_SECONDS`), so idle receivers cost few requests. botocore "
            f"itself spent {pa['botocore_cpu_ms_per_call']:.2f} ms of CPU per PutItem "
            "(measured in the benchmark process, one call at a time): the floor under every "
            "per-request CPU figure above.",
            "",
        ]
    out += capacity_report.section(results.get("capacity"), before_capacity)
    out += idle.section(results.get("idle"))
    out += due_lag.section(results.get("due_lag"))
    peaks = results.get("peak_rss_mb") or {}
    if peaks:
        out += ["## Peak memory", "", "| process (run) | VmHWM MB |", "|---|---|"]
        for name, value in sorted(peaks.items()):
            out.append(f"| {name} | {value:.0f} |")
        out.append("")
    return "\n".join(out)
