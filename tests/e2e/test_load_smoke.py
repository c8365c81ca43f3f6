"""The locustfile runs headless against the real stack for a few seconds without a failure.

No timing thresholds: this guards the load test itself (auth header, seeding, every task of
the mix), not Herald's speed; `make bench` measures that.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Herald
from tests.support import ROOT


def test_locust_mix_runs_headless_without_failures(herald: Herald, tmp_path: Path) -> None:
    prefix = tmp_path / "smoke"
    env = {
        **os.environ,
        "HERALD_API_KEY": herald.api.headers["X-API-Key"],
        "HERALD_LOAD_USERS": "20",
        "HERALD_LOAD_TOPICS": "2",
    }
    done = subprocess.run(
        [
            *(sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py")),
            *("--headless", "-u", "4", "-r", "4", "-t", "5s", "--only-summary"),
            *("--host", str(herald.api.base_url).rstrip("/"), "--csv", str(prefix)),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open(f"{prefix}_stats.csv") as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    total = rows["Aggregated"]
    assert int(total["Request Count"]) > 0
    assert int(total["Failure Count"]) == 0, done.stderr[-3000:]
    herald.assert_alive()
