"""The line's own limits, through a real Kannel (issue 25, hole 6).

The tester, holding the inbound secret, forged subscribe texts from 30
numbers (30 answers went out) and from premium-rate ``+1 900`` numbers. Now
answers in total are capped per hour (``[bridges.sms] max_replies_per_hour``),
and premium-rate numbers get nothing: not an answer, not an alert, not a desk
receipt, and the log says so without the number.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bridges.sms import optout
from bridges.sms import store as sms_store
from bridges.sms.inbound import HASH_PURPOSE
from relay.core.model import Area, Text
from relay.core.tipdrafts import TipDraft
from relay.core.tips import TipIn, Where
from relay.runtime.clock import FakeClock
from relay.storage import db
from tests.helpers import wait_for
from tests.sms.kit import SHORT_CODE, Line, need_kannel, start_line

PREMIUM = "+19005550123"


async def handled(line: Line, outcome: str, count: int = 1) -> None:
    await wait_for(
        lambda: line.sms.stats.inbound.get(outcome, 0) >= count,
        timeout=20,
        what=f"{count} x {outcome}: {line.sms.stats.inbound}",
    )


async def test_answers_per_hour_in_total(tmp_path: Path, clock: FakeClock) -> None:
    need_kannel()
    line = await start_line(tmp_path, clock, extra="max_replies_per_hour = 3")
    try:
        phones = line.phones
        assert phones is not None
        numbers = [f"+1805555{n:04d}" for n in range(5)]
        for number in numbers:
            phones.send(number, SHORT_CODE, "ALERTA")
        await handled(line, "subscribed", 3)
        await handled(line, "subscribed_over_budget", 2)
        await phones.wait_for(3)
        assert (await line.counts())["subscribers"] == 5  # applied, only not answered
        assert line.sms.status()["replies_over_budget"] == 2
        clock.advance("61m")  # a new hour: answers again
        phones.send(numbers[0], SHORT_CODE, "HELP")
        await phones.wait_for(1 + len(phones.messages(to=numbers[0])), to=numbers[0])
        assert len(phones.messages()) == 4
    finally:
        await line.stop()


async def test_premium_rate_numbers_get_nothing(
    tmp_path: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    need_kannel()
    line = await start_line(tmp_path, clock)
    try:
        phones = line.phones
        assert phones is not None
        for text in ("ALERTA", "HELP", "Hay ICE en la calle Cooper"):
            phones.send(PREMIUM, SHORT_CODE, text)
        await handled(line, "refused_premium_rate", 3)
        assert (await line.counts())["subscribers"] == 0 and await line.node.desk.listing() == []
        # One subscribed before the line refused such numbers: the alert is not sent to it.
        sealer = line.sms.sealer
        conn = db.open_sync(line.node.db.path)
        try:
            hashed = sealer.keyed_hash(PREMIUM.encode(), HASH_PURPOSE)
            sealed = sealer.seal(PREMIUM.encode())
            db.transaction(
                conn,
                lambda c: sms_store.subscribe(c, hashed, sealed, "ALERT", "en", ["fips:06111"], 0),
            )
        finally:
            conn.close()
        # A hotline report with a premium-rate contact: no receipt when it is published.
        desk = line.node.desk
        tip_id = await desk.submit(
            TipIn(text="ICE", where=Where(label="Cooper"), channel="hotline"), contact=PREMIUM
        )
        await desk.claim(tip_id, "ana")
        await desk.outcome(tip_id, "ana", "confirmed")
        area = Area(label="Cooper", geohash="9q4gch", radius_m=300, codes=["fips:06111"])
        draft = TipDraft(
            kind="sighting", area=area, text={"es": Text(headline="ICE", body="")}, expires_in="1h"
        )
        await desk.publish(tip_id, "luis", draft)
        await line.wait_counts(lambda c: c["failed"] == 1 and c["queued"] == 0)
        assert phones.messages(to=PREMIUM) == [] and line.sms.stats.refused == 1
        assert desk.counters[("reply_failed", "BadInput")] == 1
        conn2 = sqlite3.connect(line.node.db.path)
        (dlr,) = conn2.execute("SELECT dlr FROM sms_queue WHERE state = 'failed'").fetchone()
        conn2.close()
        assert dlr == "refused"
        out = capsys.readouterr()
        assert "premium_rate" in out.out + out.err
        assert "9005550123" not in out.out + out.err
    finally:
        await line.stop()


def test_the_opted_out_set_is_bounded_and_the_budget_slides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(optout, "MAX_OPTED_OUT", 3)
    conn = db.open_sync(tmp_path / "avisa.db")
    try:
        for n in range(5):
            db.transaction(conn, lambda c, n=n: optout.opt_out(c, bytes([n]) * 16, 100 + n))
        left = [row[0][0] for row in conn.execute("SELECT hash FROM sms_optout ORDER BY at")]
        assert left == [2, 3, 4]  # the oldest went
        assert db.transaction(conn, lambda c: optout.opt_in(c, bytes([4]) * 16))
        assert not db.transaction(conn, lambda c: optout.opted_out(c, bytes([4]) * 16))

        def spend(at: int) -> bool:
            return bool(db.transaction(conn, lambda c: optout.spend_reply(c, at, 2)))

        assert [spend(1000), spend(1001), spend(1002)] == [True, True, False]
        assert spend(1000 + 3600) and not spend(1001 + 3599)  # an hour after the first
        assert conn.execute("SELECT count(*) FROM sms_replies").fetchone()[0] == 2
    finally:
        conn.close()
