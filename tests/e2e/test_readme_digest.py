"""The README's digest example, run as documented against the real processes: three likes
of one post become one SMS and one email, "Bo and 2 others"."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Herald
from tests.e2e.test_quick_start import DEV_KEY, bash_block_after, run_as_documented
from tests.support import wait_until


def test_the_digest_example_sends_one_notification_per_channel(herald: Herald) -> None:
    run_as_documented(herald, bash_block_after("Try it, with `make run`"))  # makes u-42
    key = f"KEY='X-API-Key: {DEV_KEY}'\n"
    answers = run_as_documented(herald, key + bash_block_after("Digests: an event"))
    assert [a["status"] for a in answers] == ["START"] * 3, answers
    absorbed = [herald.wait_for_event(a["event_id"], {"DIGESTED"}) for a in answers]
    [digest_id] = {e["digest_event_id"] for e in absorbed}
    assert all(e["notifications"] == [] for e in absorbed)
    for channel in ("sms", "email"):
        sent = herald.wait_for_notification(digest_id, channel, {"SENT", "FAILED"})
        assert sent["status"] == "SENT", sent
    texts: list[str] = []

    def arrived() -> bool:
        texts[:] = [
            str(m["form"]["Body"])
            for m in herald.sandbox.messages("twilio")
            if str(m.get("notification_id", "")).startswith(digest_id)
        ]
        return bool(texts)

    assert wait_until(arrived, timeout=30, interval=0.2)
    assert texts == ["Bo and 2 others liked your post p-7."]
    digest: dict[str, Any] = herald.event(digest_id)
    assert digest["data"]["count"] == 3 and digest["data"]["actors"] == ["Bo", "Ann", "Cy"]
