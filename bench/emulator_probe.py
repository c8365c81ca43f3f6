"""What a write costs the benchmarks' emulator (`localstack/emulator.py`) beside stock moto,
and botocore's own CPU per call: the figures behind the report's section *The emulator*.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from bench import seed
from bench.stack import Stack, free_port, http_ok, start_python, wait_until
from bench.workload import log
from core.ledger.wiring import build_ledger


def phase_emulator(stack: Stack, results: dict[str, Any]) -> None:
    """What a write costs the emulator with 2,000 items in the table (1,000 users and their
    subscriptions), stock moto beside the benchmark's, and botocore's own CPU per call."""

    out: dict[str, Any] = {}
    for label, args in (("patched", []), ("stock", ["--stock"])):
        port = free_port()
        proc = start_python(
            f"probe-{label}",
            ["-m", "localstack.emulator", "--quiet", "--port", str(port), *args],
            {},
            stack.logs,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            probe_url = f"{url}/moto-api/"
            if not wait_until(partial(http_ok, probe_url), timeout=60):
                raise RuntimeError("the probe emulator did not start")
            probe = Stack(stack.workdir, moto_url=url)
            clients = probe.fresh_aws()
            ids = seed.users(clients, "probe", 1000, lambda i: ["email"])
            seed.subscriptions(clients, "probe-topic", ids, ["email"])
            ledger = build_ledger(clients.dynamodb, clients.names.table)
            event_id = seed.trend_event(clients)

            timings: dict[str, float] = {}
            cpu0, t0 = time.process_time(), time.perf_counter()
            for i in range(20):  # one conditional PutItem each
                (new,) = seed.notifications(event_id, "email", 10_000 + i, 1)
                clients.dynamodb.put_item(**seed.put_record(ledger, new))
            timings["put_ms"] = (time.perf_counter() - t0) / 20 * 1000
            timings["botocore_cpu_ms_per_call"] = (time.process_time() - cpu0) / 20 * 1000
            for size in (1, 10):
                t0 = time.perf_counter()
                for round_ in range(3):
                    first = 20_000 + 100 * round_ + 1000 * size
                    ledger.creation.create_counted(
                        seed.notifications(event_id, "email", first, size)
                    )
                timings[f"txn{size + 1}_ms"] = (time.perf_counter() - t0) / 3 * 1000
            out[label] = timings
        finally:
            proc.stop()
    results["emulator"] = out
    p, st = out["patched"], out["stock"]
    log(
        f"emulator: 11-item transaction {st['txn11_ms']:.0f} ms stock, "
        f"{p['txn11_ms']:.0f} ms patched; PutItem {p['put_ms']:.1f} ms"
    )
