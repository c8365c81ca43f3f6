"""Each condition kind against real SQL servers (SQLite and PostgreSQL): the source runs,
the condition decides, and the evaluation says what it would send."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from alerting.evaluation import Evaluation, evaluate_rule, run_source
from alerting.rules import Rule
from alerting.sources import DataSources
from core.catalogue.models import iso
from core.platform.settings import Settings
from tests.alerting.conftest import Database

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def make_rule(condition: dict[str, Any], query: str, **extra: Any) -> Rule:
    return Rule.model_validate(
        {
            "id": "r1",
            "name": "Rule one",
            "schedule": "every 1m",
            "source": {"kind": "sql", "datasource": "warehouse", "query": query},
            "condition": condition,
            "recipients": {"topic": "data-platform"},
            "created_at": iso(NOW),
            "updated_at": iso(NOW),
            **extra,
        }
    )


class Runner:
    """Evaluates a rule run after run, carrying its state as the evaluator does."""

    def __init__(self, db: Database, rule: Rule, **settings: Any) -> None:
        conf = Settings(
            _env_file=None,  # type: ignore[call-arg]
            datasources=json.dumps({db.name: db.url}),
            **settings,
        )
        self.sources = DataSources(conf)
        self.rule = rule
        self.state: dict[str, Any] = {}
        self.run = 0

    def __call__(self, now: datetime = NOW) -> Evaluation:
        self.run += 1
        result = run_source(self.rule, self.sources, 5)
        evaluation = evaluate_rule(self.rule, result, self.state, now, f"run-{self.run}")
        if evaluation.outcome != "error":
            self.state = evaluation.state
        return evaluation


def actions(evaluation: Evaluation) -> list[tuple[str | None, str | None]]:
    return [(e.action, e.dedupe_key) for e in evaluation.events]


def test_any_rows_fires_while_rows_come_back(database: Database) -> None:
    database.execute("CREATE TABLE failures (pipeline VARCHAR(50), error VARCHAR(200))")
    run = Runner(database, make_rule({"kind": "any_rows"}, "SELECT * FROM failures"))
    assert run().outcome == "ok"
    database.execute("INSERT INTO failures VALUES ('daily-sales', 'timeout')")
    firing = run()
    assert firing.outcome == "firing" and actions(firing) == [("trigger", "rule:r1")]
    assert firing.events[0].data["pipeline"] == "daily-sales"
    database.execute("DELETE FROM failures")
    assert actions(run()) == [("resolve", "rule:r1")]
    assert run().events == []


def test_new_rows_fire_once_for_what_is_new(database: Database) -> None:
    database.execute(
        "CREATE TABLE incidents (id INTEGER, title VARCHAR(50))",
        "INSERT INTO incidents VALUES (1, 'old')",
    )
    rule = make_rule({"kind": "new_rows", "key_column": "id"}, "SELECT id, title FROM incidents")
    run = Runner(database, rule)
    assert run().events == []  # the first run is the baseline
    database.execute("INSERT INTO incidents VALUES (2, 'disk full'), (3, 'slow')")
    fired = run()
    assert len(fired.events) == 1 and fired.events[0].action == "trigger"
    assert fired.events[0].data["values"] == ["id=2, title=disk full", "id=3, title=slow"]
    assert run().events == []  # nothing new since


def test_changed_fires_when_the_result_changes(database: Database) -> None:
    database.execute("CREATE TABLE top (artist VARCHAR(50))", "INSERT INTO top VALUES ('Nova')")
    run = Runner(database, make_rule({"kind": "changed"}, "SELECT artist FROM top"))
    assert run().events == []
    assert run().events == []
    database.execute("UPDATE top SET artist = 'Lumen'")
    changed = run()
    assert [e.action for e in changed.events] == ["trigger", "resolve"]
    assert changed.events[0].data["artist"] == "Lumen"


def test_threshold_per_key_with_each_operator(database: Database) -> None:
    database.execute(
        "CREATE TABLE sales (genre VARCHAR(20), change_pct FLOAT)",
        "INSERT INTO sales VALUES ('jazz', 12.5), ('rock', 80.0), ('pop', 150.0)",
    )
    expected = {
        ">": {"pop"},
        ">=": {"rock", "pop"},
        "<": {"jazz"},
        "<=": {"jazz", "rock"},
        "==": {"rock"},
        "!=": {"jazz", "pop"},
    }
    for op, keys in expected.items():
        condition = {
            "kind": "threshold",
            "column": "change_pct",
            "op": op,
            "value": 80,
            "key_column": "genre",
        }
        evaluation = Runner(database, make_rule(condition, "SELECT * FROM sales"))()
        assert {e.dedupe_key for e in evaluation.events} == {f"rule:r1:{k}" for k in keys}, op
    bad = {"kind": "threshold", "column": "missing", "op": ">", "value": 1}
    error = Runner(database, make_rule(bad, "SELECT * FROM sales"))()
    assert error.outcome == "error" and "missing" in str(error.error)


def test_freshness_breach_waits_for_then_resolves(database: Database) -> None:
    database.execute("CREATE TABLE loads (loaded_at VARCHAR(40))")
    database.execute(f"INSERT INTO loads VALUES ('{iso(NOW - timedelta(minutes=30))}')")
    rule = make_rule(
        {"kind": "freshness", "column": "loaded_at", "max_age": "15m"},
        "SELECT MAX(loaded_at) AS loaded_at FROM loads",
        **{"for": "2m"},
    )
    run = Runner(database, rule)
    assert run(NOW).outcome == "pending"
    assert run(NOW + timedelta(minutes=1)).outcome == "pending"
    firing = run(NOW + timedelta(minutes=2))
    assert firing.outcome == "firing" and actions(firing) == [("trigger", "rule:r1")]
    assert "max 15m" in firing.summary
    database.execute(f"INSERT INTO loads VALUES ('{iso(NOW + timedelta(minutes=2))}')")
    assert actions(run(NOW + timedelta(minutes=3))) == [("resolve", "rule:r1")]


def test_unreachable_fires_on_errors_and_other_kinds_keep_their_state(
    database: Database,
) -> None:
    database.execute("CREATE TABLE t (x INTEGER)")
    down = Runner(database, make_rule({"kind": "unreachable"}, "SELECT * FROM missing_table"))
    failed = down()
    assert failed.outcome == "firing" and failed.error is not None
    assert actions(failed) == [("trigger", "rule:r1")]
    assert failed.events[0].data["summary"].startswith("source failed")

    rows = Runner(database, make_rule({"kind": "any_rows"}, "SELECT 1 AS one"))
    assert rows().outcome == "firing"
    rows.rule = rows.rule.model_copy(
        update={"source": make_rule({"kind": "any_rows"}, "SELECT * FROM missing_table").source}
    )
    kept = rows()
    assert kept.outcome == "error" and kept.events == []
    assert rows.state["alerts"][""]["firing"] is True  # nothing resolved on an error


def test_queries_run_read_only_with_a_timeout_and_a_row_cap(database: Database) -> None:
    database.execute("CREATE TABLE t (x INTEGER)", "INSERT INTO t VALUES (1), (2), (3)")
    capped = Runner(
        database, make_rule({"kind": "any_rows"}, "SELECT x FROM t ORDER BY x"), sql_row_cap=2
    )()
    assert capped.truncated and [r["x"] for r in capped.values] == [1, 2]

    write = Runner(database, make_rule({"kind": "any_rows"}, "DELETE FROM t"))()
    assert write.outcome == "error"
    assert len(Runner(database, make_rule({"kind": "any_rows"}, "SELECT x FROM t"))().values) == 3

    slow_query = (
        "SELECT pg_sleep(5)"
        if database.url.startswith("postgresql")
        else "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) "
        "SELECT count(*) FROM c"
    )
    slow = Runner(
        database, make_rule({"kind": "any_rows"}, slow_query), sql_statement_timeout_seconds=0.5
    )()
    assert slow.outcome == "error" and slow.error is not None
