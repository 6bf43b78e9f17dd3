"""An alert the CAP feed lists goes back to review (its origin's key was revoked on this
node, by the operator's command in another process): it leaves ``/cap/v1/feed.atom`` with
the very next request, its message URL answers 410 ``AVISA_WITHDRAWN``, and a reviewer's
accept brings both back."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from keys.core.keyring import KeyEntry
from keys.store import peer_ops
from relay.core.policy import PeerPolicy
from relay.core.times import rfc3339
from relay.runtime.clock import FakeClock
from relay.storage import trust
from tests.cap.kit import assert_xsd_valid, cap_node, get, publish
from tests.cap.test_export import PUBLIC, feed_entries
from tests.helpers import key, make_alert, raw_envelope

PEER_KEY = key(79)


async def test_withdrawn_alert_leaves_the_feed_at_once(tmp_path: Path, clock: FakeClock) -> None:
    async with cap_node(tmp_path, clock, extra=PUBLIC) as running:
        node = running.node
        record = trust.PeerRecord(
            "net-a",
            "http://127.0.0.1:9",
            (KeyEntry("net-a", PEER_KEY.public_key),),
            PeerPolicy(network="net-a", speaks_for=("fips:06",)),
        )
        await node.db.write(lambda conn: trust.save_peer(conn, record, node.clock()))
        await node.reload_trust()
        own = await publish(running)
        clock.advance("1m")
        alert = make_alert("net-a", sent_at=clock(), headline="CBP at Colonia park")
        (outcome,) = await node.pipeline.ingest([raw_envelope(alert, PEER_KEY)], from_peer="net-a")
        assert outcome.status == "accepted", outcome
        # Outside what the peer speaks for: held for review, never listed.
        never = make_alert("net-a", seq=2, sent_at=clock(), codes=("fips:12086",))
        (outcome,) = await node.pipeline.ingest([raw_envelope(never, PEER_KEY)], from_peer="net-a")
        assert outcome.status == "held", outcome
        listed = [entry["cap_identifier"] for entry in await feed_entries(running)]
        assert listed == [alert.id, own["id"]]  # and now cached under this feed head
        path = f"/cap/v1/alerts/{alert.id}.xml"
        status, body, _ = await get(running, path)
        assert status == 200
        assert_xsd_valid(body)

        # The operator revokes the peer's key with the CLI (its own process, its own
        # connection): the node has not reloaded its trust yet when the hub polls again.
        clock.advance("1m")
        seized = rfc3339(clock() - timedelta(hours=1))
        await asyncio.to_thread(
            peer_ops.revoke, running.data_dir, "net-a", PEER_KEY.keyid, seized, clock
        )
        listed = [entry["cap_identifier"] for entry in await feed_entries(running)]
        assert listed == [own["id"]]
        status, body, _ = await get(running, path)
        assert status == 410
        assert json.loads(body)["errcode"] == "AVISA_WITHDRAWN"
        status, body, _ = await get(running, f"/cap/v1/alerts/{never.id}.xml")
        assert status == 404  # a held alert never listed stays unknown to CAP readers

        # A reviewer accepts the withdrawn one after all: it is listed and served again.
        network, ulid = alert.id.split("/")
        status, body = await running.call("POST", f"/api/v1/held/{network}/{ulid}/accept")
        assert status in (200, 201), body
        listed = [entry["cap_identifier"] for entry in await feed_entries(running)]
        assert listed == [alert.id, own["id"]]
        status, _, _ = await get(running, path)
        assert status == 200
