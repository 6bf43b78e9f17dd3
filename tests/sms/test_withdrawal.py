"""An alert texted to subscribers goes back to review (its origin's key was revoked on
this node): those it reached get one text saying so, in their language, through a real
Kannel; if a reviewer accepts it again, they get it again, marked in force again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from keys.core.keyring import KeyEntry
from keys.store import peer_ops
from relay.core.model import Text
from relay.core.policy import PeerPolicy
from relay.core.times import rfc3339
from relay.runtime.clock import FakeClock
from relay.storage import trust
from tests.helpers import key, make_alert, raw_envelope
from tests.sms.kit import PHONE, SHORT_CODE, Line, need_kannel, start_line

PEER_KEY = key(78)
SPANISH = "+18055550177"
FAR = "+18055550111"
LATE = "+18055550122"


@pytest.fixture
async def line(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Line]:
    need_kannel()
    started = await start_line(tmp_path, clock)
    try:
        yield started
    finally:
        await started.stop()


async def test_withdrawn_alert_texted_once_to_its_recipients_then_reinstated(
    line: Line, clock: FakeClock
) -> None:
    phones, node = line.phones, line.node
    assert phones is not None
    phones.send(PHONE, SHORT_CODE, "ALERT")
    phones.send(SPANISH, SHORT_CODE, "ALERTA")
    phones.send(FAR, SHORT_CODE, "ALERTA 93101")  # narrowed to a ZIP elsewhere
    for phone in (PHONE, SPANISH, FAR):
        await phones.wait_for(1, to=phone)

    record = trust.PeerRecord(
        "net-a",
        "http://127.0.0.1:9",
        (KeyEntry("net-a", PEER_KEY.public_key),),
        PeerPolicy(network="net-a", speaks_for=("fips:06",)),
    )
    await node.db.write(lambda conn: trust.save_peer(conn, record, node.clock()))
    await node.reload_trust()
    alert = msgspec.structs.replace(
        make_alert("net-a", sent_at=clock(), headline="CBP at Colonia park"),
        text={
            "es": Text(headline="CBP en el parque Colonia", body="Verificado en el sitio."),
            "en": Text(headline="CBP at Colonia park", body="Verified on site."),
        },
    )
    (outcome,) = await node.pipeline.ingest([raw_envelope(alert, PEER_KEY)], from_peer="net-a")
    assert outcome.status == "accepted", outcome
    _, original = await phones.wait_for(2, to=PHONE)
    assert original.text.startswith("CONFIRMED ALERT: Sighting. CBP at Colonia park")
    _, original_es = await phones.wait_for(2, to=SPANISH)
    assert original_es.text.startswith("ALERTA CONFIRMADA: Avistamiento. CBP en el parque")
    await line.wait_counts(lambda c: c["delivered"] == 5 and c["sent"] == 0)

    # Subscribed after the alert went out: not told of a withdrawal of what it never got.
    phones.send(LATE, SHORT_CODE, "ALERT")
    await phones.wait_for(1, to=LATE)

    # The peer's operator calls: their key was seized an hour ago.
    clock.advance("1m")
    seized = rfc3339(clock() - timedelta(hours=1))
    await asyncio.to_thread(peer_ops.revoke, node.data_dir, "net-a", PEER_KEY.keyid, seized, clock)
    *_, withdrawn = await phones.wait_for(3, to=PHONE)
    assert withdrawn.text.startswith("WITHDRAWN FOR REVIEW: CBP at Colonia park.")
    assert "Verified on site" not in withdrawn.text and "STOP to quit" in withdrawn.text
    *_, retirada = await phones.wait_for(3, to=SPANISH)
    assert retirada.text.startswith("RETIRADA PARA REVISION: CBP en el parque Colonia.")
    assert retirada.coding == "text"  # GSM-7: the fixed words carry no accents
    counts = await line.wait_counts(lambda c: c["delivered"] == 8 and c["sent"] == 0)
    assert counts["queued"] == 0 and counts["failed"] == 0
    state = line.sms.status()["feed"]
    assert state["edited"] == 1 and state["delivered"] == 1  # the withdrawal, recorded once

    # A reviewer looks, and accepts it after all: those told get it again, marked so.
    network, ulid = alert.id.split("/")
    status, body = await line.call("POST", f"/api/v1/held/{network}/{ulid}/accept")
    assert status in (200, 201), body
    *_, again = await phones.wait_for(4, to=PHONE)
    assert again.text.startswith("CONFIRMED ALERT (IN FORCE AGAIN): Sighting. CBP at Colonia")
    *_, otra_vez = await phones.wait_for(4, to=SPANISH)
    assert otra_vez.text.startswith("ALERTA CONFIRMADA (VIGENTE DE NUEVO): Avistamiento.")
    # The late subscriber gets the alert as anyone new would; the far one nothing.
    _, first = await phones.wait_for(2, to=LATE)
    assert first.text.startswith("CONFIRMED ALERT: Sighting. CBP at Colonia park")
    await line.wait_counts(lambda c: c["delivered"] == 11 and c["sent"] == 0)
    assert [len(phones.messages(to=p)) for p in (PHONE, SPANISH, FAR, LATE)] == [4, 4, 1, 2]
