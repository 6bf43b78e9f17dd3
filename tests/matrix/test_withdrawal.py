"""An alert a room already shows goes back to review (its key was revoked): the room is
told, by an edit of the original message, and told again if a reviewer accepts it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp

from keys.core.keyring import KeyEntry
from keys.store import peer_ops
from relay.core.policy import PeerPolicy
from relay.core.times import rfc3339
from relay.runtime.clock import FakeClock
from relay.storage import trust
from tests.helpers import key, make_alert, raw_envelope, wait_for
from tests.matrix.api import Api, route
from tests.matrix.conftest import World
from tests.matrix.reader import bridge_posts, history

PEER_KEY = key(77)


async def test_alert_withdrawn_for_review_is_edited_then_reinstated(
    world: World, clock: FakeClock
) -> None:
    alias, room_id = await world.room()
    node, runner, url, token = await world.start_node(clock, route(alias))
    try:
        record = trust.PeerRecord(
            "net-a",
            "http://127.0.0.1:9",
            (KeyEntry("net-a", PEER_KEY.public_key),),
            PeerPolicy(network="net-a", speaks_for=("fips:06",)),
        )
        await node.db.write(lambda conn: trust.save_peer(conn, record, node.clock()))
        await node.reload_trust()
        alert = make_alert("net-a", sent_at=clock(), headline="CBP at Colonia park")
        (outcome,) = await node.pipeline.ingest([raw_envelope(alert, PEER_KEY)], from_peer="net-a")
        assert outcome.status == "accepted", outcome
        original = await world.reader.wait_post(room_id, alert.id)
        assert "CBP at Colonia park" in original.content["body"]

        # The peer's operator calls: their key was seized an hour ago.
        clock.advance("1m")
        seized = rfc3339(clock() - timedelta(hours=1))
        await asyncio.to_thread(
            peer_ops.revoke, node.data_dir, "net-a", PEER_KEY.keyid, seized, clock
        )
        await wait_for(
            lambda: len(world.reader.edits_of(original.event_id)) == 1, 60, "the withdrawal edit"
        )
        (withdrawal,) = world.reader.edits_of(original.event_id)
        shown = withdrawal.content["m.new_content"]
        assert (
            "WITHDRAWN FOR REVIEW" in shown["body"]
            and "RETIRADA PARA REVISIÓN" not in shown["body"]
        )  # the route's languages: the alert has English only
        assert "do not act on this alert" in shown["body"]
        assert "Verified on site" not in shown["body"]  # nothing of what it said but its headline
        assert "<del>CBP at Colonia park</del>" in shown["formatted_body"]

        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)
            status, body = await api.call("GET", "/api/v1/held")
            assert [h["alert"]["id"] for h in body["held"]] == [alert.id]

            async def recorded() -> bool:
                state = await api.route_state()
                return bool(state["edited"] == 1 and state["delivered"] == 1)

            await wait_for(recorded, 30, "the route to record the withdrawal")

            # A reviewer looks, and accepts it after all: the room shows it again.
            network, ulid = alert.id.split("/")
            status, body = await api.call("POST", f"/api/v1/held/{network}/{ulid}/accept")
            assert status in (200, 201), body
            await wait_for(
                lambda: len(world.reader.edits_of(original.event_id)) == 2, 60, "the reinstatement"
            )
            reinstated = world.reader.edits_of(original.event_id)[1].content["m.new_content"]
            assert "WITHDRAWN" not in reinstated["body"]
            assert (
                "CBP at Colonia park" in reinstated["body"]
                and "Verified on site" in reinstated["body"]
            )
        # Still one message in the room: edited, never posted anew.
        assert bridge_posts(await history(world.homeserver, world.owner, room_id)) == [alert.id]
    finally:
        await runner.cleanup()
        await node.stop()
