"""End-to-end encrypted rooms: the homeserver sees ciphertext, a member reads the alert."""

from __future__ import annotations

import stat

import aiohttp

from relay.runtime.clock import FakeClock
from tests.helpers import wait_for
from tests.matrix.api import Api, route
from tests.matrix.conftest import World, set_power
from tests.matrix.reader import ALERT_ID, history


async def test_member_decrypts_alert_in_encrypted_room(world: World, clock: FakeClock) -> None:
    alias, room_id = await world.room(encrypted=True)
    node, runner, url, token = await world.start_node(clock, route(alias, "encrypted = true"))
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)
            alert_id = await api.publish()
            seen = await world.reader.wait_post(room_id, alert_id)
            assert seen.decrypted
            assert "ICE at Colonia park" in seen.content["body"]
            assert seen.content["msgtype"] == "m.notice"

            # A cancel edits it, encrypted too.
            changed = {"text": {"en": {"headline": "ICE left the park", "body": ""}}}
            status, body = await api.call("POST", f"/api/v1/alerts/{alert_id}/cancel", changed)
            assert status == 201, body
            await wait_for(lambda: world.reader.edits_of(seen.event_id), 60, "the cancel edit")
            (edit,) = world.reader.edits_of(seen.event_id)
            assert edit.decrypted and "WITHDRAWN" in edit.content["m.new_content"]["body"]

        # What the homeserver stores is ciphertext only.
        events = [
            e
            for e in await history(world.homeserver, world.owner, room_id)
            if e["sender"] == world.bot.user_id
            and e["type"].startswith("m.room.")
            and e.get("state_key") is None
        ]
        assert [e["type"] for e in events] == ["m.room.encrypted", "m.room.encrypted"]
        raw = str(events)
        assert "Colonia" not in raw and ALERT_ID not in raw
        store_dir = node.data_dir / "matrix"
        assert stat.S_IMODE(store_dir.stat().st_mode) == 0o700
        assert any(path.suffix == ".db" for path in store_dir.iterdir())
    finally:
        await runner.cleanup()
        await node.stop()


async def test_route_that_must_be_encrypted_never_posts_plaintext(
    world: World, clock: FakeClock
) -> None:
    """The room is not encrypted and the bridge may not turn encryption on: it waits."""
    alias, room_id = await world.room(encrypted=False)
    node, runner, url, token = await world.start_node(clock, route(alias, "encrypted = true"))
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)
            alert_id = await api.publish()

            async def refused() -> bool:
                state = await api.route_state()
                return state["last_error"] == "enable encryption: M_FORBIDDEN"

            await wait_for(refused, 60, "the route to refuse the plaintext room")
            state = await api.route_state()
            assert state["room_id"] is None and state["delivered"] == 0
            assert state["backoff_until"] is not None

            # Once the room's owner lets it, the bridge turns encryption on and delivers.
            await set_power(world, room_id, world.bot.user_id, 100)
            seen = await world.reader.wait_post(room_id, alert_id, timeout=90)
            assert seen.decrypted
        events = await history(world.homeserver, world.owner, room_id)
        bot_messages = [
            e["type"]
            for e in events
            if e["sender"] == world.bot.user_id
            and e["type"] in ("m.room.message", "m.room.encrypted")
        ]
        assert bot_messages == ["m.room.encrypted"]
    finally:
        await runner.cleanup()
        await node.stop()
