"""The capacity report's column at 10,000 notifications/s: metered keys re-spread over the
layout for that rate by family, unsharded keys at ten times their load, and keys past the
ones the meters kept never understated."""

from __future__ import annotations

from typing import Any

import pytest

from bench import capacity_scale
from bench.capacity_scale import TOP, at_scale, family
from core.ledger.shard_layout import ShardLayout


def key(name: str, wcu: float = 0.0, rcu: float = 0.0) -> dict[str, Any]:
    return {"key": name, "wcu": wcu, "rcu": rcu}


def test_families_by_index_and_key() -> None:
    assert family("events_by_status", "OPEN#3") == "status"
    assert family("events_by_day", "2026-12-07#5") == "listing"
    assert family("table", "EVENT#e1#R04") == "records"
    assert family("table", "EVENT#e1#T3") == "tally"
    assert family("table", "EVENT#e1") is None
    assert family("events_by_user", "u-1") is None


def test_sharded_keys_spread_and_unsharded_ones_take_ten_times() -> None:
    targets = {
        "events_by_status": {"keys_by_wcu": [key("OPEN#9", wcu=270.0)]},
        "table": {
            "keys_by_wcu": [key("EVENT#e1#R04", wcu=210.0), key("EVENT#e1", wcu=20.0)],
            "keys_by_rcu": [key("EVENT#e1#T1", rcu=101.0)],
        },
    }
    out = at_scale(targets, 1000, rate=1000)
    status = out["targets"]["events_by_status"]["wcu"]
    # 16 shards measured, 150 at scale.
    assert status["per_second"] == pytest.approx(270.0 * 10 * 16 / 150)
    table = out["targets"]["table"]
    # R04: 2,100 WCU/s over 234 / 32 times the shards = 287; the event's own key: 200.
    assert table["wcu"]["key"] == "EVENT#e1#R04"
    assert round(table["wcu"]["per_second"]) == round(2100 * 32 / 234)
    # Every settling check reads every tally shard: reads do not spread.
    assert table["rcu"]["per_second"] == pytest.approx(1010.0)
    assert out["hottest_where"] == "table RCU EVENT#e1#T1"
    assert out["hottest_pct_of_limit"] == pytest.approx(1010 / 30)


def test_a_run_at_the_scaled_layout_is_not_spread_again() -> None:
    targets = {"events_by_status": {"keys_by_wcu": [key("OPEN#9", wcu=30.0)]}}
    out = at_scale(targets, 1000, rate=10_000)
    assert out["targets"]["events_by_status"]["wcu"]["per_second"] == pytest.approx(300.0)


def test_keys_past_the_kept_ones_count_at_the_last_ones_load_unspread() -> None:
    kept = [key(f"OPEN#{i}", wcu=100.0) for i in range(TOP - 1)] + [key("OPEN#99", wcu=50.0)]
    out = at_scale({"events_by_status": {"keys_by_wcu": kept}}, 1000, rate=1000)
    worst = out["targets"]["events_by_status"]["wcu"]
    assert worst["key"] == "(past the hottest kept)"
    assert worst["per_second"] == pytest.approx(
        500.0
    )  # 50 / 1,000 x 10,000, not divided by the spread
    assert capacity_scale.LIMITS["wcu"] == 1000.0


def test_a_tally_spreads_over_its_outcome_shards_and_its_shard_zero_does_not() -> None:
    """Outcomes count on every tally shard but shard 0, the event's own key: the family's
    writes spread over 18 keys at 10,000/s where they took 7 in the run (19 and 8 shards)."""
    targets = {
        "table": {
            "keys_by_wcu": [key("EVENT#e1#T3", wcu=40.0), key("EVENT#e1", wcu=45.0)],
            "keys_by_rcu": [key("EVENT#e1#T3", rcu=100.0), key("EVENT#e1", rcu=5.0)],
        }
    }
    assert capacity_scale.keys_of(ShardLayout.for_rate(1000), "tally") == 7
    assert capacity_scale.keys_of(ShardLayout.for_rate(10_000), "tally") == 18
    out = at_scale(targets, 1000, rate=1000)
    table = out["targets"]["table"]
    assert table["wcu"]["key"] == "EVENT#e1"  # 450 WCU/s, against T3's 400 x 7 / 18 = 156
    assert table["wcu"]["per_second"] == pytest.approx(450.0)
    assert table["rcu"]["key"] == "EVENT#e1#T3"  # every check reads every outcome shard
    assert table["rcu"]["per_second"] == pytest.approx(1000.0)
    tally_only = at_scale({"table": {"keys_by_wcu": [key("EVENT#e1#T3", wcu=40.0)]}}, 1000, 1000)
    assert tally_only["targets"]["table"]["wcu"]["per_second"] == pytest.approx(400.0 * 7 / 18)


def test_the_report_gives_each_kind_of_key_its_hottest_share() -> None:
    """An event's own key, its tally shards and its record partitions apart, so a report
    shows what each kind takes at 10,000/s, not only the hottest of all."""
    targets = {
        "table": {
            "keys_by_wcu": [
                key("EVENT#e1#T3", wcu=40.0),
                key("EVENT#e1", wcu=25.0),
                key("EVENT#e1#R04", wcu=20.0),
                key("USER#u1", wcu=1.0),
            ],
            "keys_by_rcu": [key("EVENT#e1#T3", rcu=30.0)],
        }
    }
    kinds = at_scale(targets, 1000, rate=1000)["by_kind"]["table"]
    assert kinds["event"]["wcu"] == pytest.approx(25.0)  # 250 of 1,000 WCU/s
    assert kinds["tally"]["wcu"] == pytest.approx(400.0 * 7 / 18 / 10)
    assert kinds["tally"]["rcu"] == pytest.approx(10.0)  # 300 of 3,000, reads do not spread
    records = ShardLayout.for_rate(10_000).records / 32
    assert kinds["records"]["wcu"] == pytest.approx(200.0 / records / 10)
    assert kinds["user"]["wcu"] == pytest.approx(1.0)
