"""Alerts into a room of a real Synapse, read back by a second user's sync."""

from __future__ import annotations

import aiohttp

from relay.runtime.clock import FakeClock
from tests.helpers import wait_for
from tests.matrix.api import DRAFT, Api, route
from tests.matrix.conftest import Sleeps, World
from tests.matrix.reader import bridge_posts, history


async def test_published_alert_reaches_the_room(world: World, clock: FakeClock) -> None:
    alias, room_id = await world.room()
    node, runner, url, token = await world.start_node(clock, route(alias))
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)
            alert_id = await api.publish()
            seen = await world.reader.wait_post(room_id, alert_id)
            content = seen.content
            assert seen.sender == world.bot.user_id
            assert content["msgtype"] == "m.notice"
            assert content["format"] == "org.matrix.custom.html"
            assert content["m.mentions"] == {}
            plain, html = content["body"], content["formatted_body"]
            assert plain.index("ICE en el parque Colonia") < plain.index("ICE at Colonia park")
            assert "CONFIRMADO" in plain and "CONFIRMED" in plain
            assert "Firmado por: ventura (origen)" in plain
            assert "<strong>ICE at Colonia park</strong>" in html

            async def caught_up() -> bool:
                _, body = await api.call("GET", "/api/v1/bridges")
                state = body["bridges"][0]["routes"][0]
                return bool(state["backlog"] == 0 and state["delivered"] == 1)

            await wait_for(caught_up, 30, "the bridge to report the delivery")
            status, body = await api.call("GET", "/api/v1/bridges")
            bridge = body["bridges"][0]
            assert bridge["logged_in"] and bridge["user_id"] == world.bot.user_id
            state = bridge["routes"][0]
            assert state["room"] == alias and state["room_id"] == room_id
            assert state["cursor"] == node.feed.head and state["last_success"]
            assert state["last_error"] is None and state["backoff_until"] is None
    finally:
        await runner.cleanup()
        await node.stop()


async def test_update_and_cancel_edit_the_original(world: World, clock: FakeClock) -> None:
    alias, room_id = await world.room()
    node, runner, url, token = await world.start_node(clock, route(alias))
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)
            alert_id = await api.publish()
            original = await world.reader.wait_post(room_id, alert_id)

            changed = {**DRAFT, "text": {"en": {"headline": "ICE left Colonia park", "body": ""}}}
            status, body = await api.call("POST", f"/api/v1/alerts/{alert_id}/update", changed)
            assert status == 201, body
            update_id = body["id"]
            await wait_for(
                lambda: len(world.reader.edits_of(original.event_id)) == 1, 60, "the update edit"
            )
            (edit,) = world.reader.edits_of(original.event_id)
            assert edit.alert_id == update_id
            assert edit.content["body"].startswith("* ")
            assert edit.content["formatted_body"].startswith("* ")
            new = edit.content["m.new_content"]
            assert "ICE left Colonia park" in new["body"] and "(update)" in new["body"]
            assert new["msgtype"] == "m.notice" and "m.relates_to" not in new

            withdrawal = {"text": {"en": {"headline": "Misidentified vehicle", "body": ""}}}
            status, body = await api.call("POST", f"/api/v1/alerts/{update_id}/cancel", withdrawal)
            assert status == 201, body
            await wait_for(
                lambda: len(world.reader.edits_of(original.event_id)) == 2, 60, "the cancel edit"
            )
            cancel = world.reader.edits_of(original.event_id)[1]
            assert cancel.alert_id == body["id"]
            text = cancel.content["m.new_content"]["body"]
            assert "WITHDRAWN" in text and "withdrawn by ventura" in text
            assert "Misidentified vehicle" in text
            assert (
                "<del>ICE left Colonia park</del>"
                in cancel.content["m.new_content"]["formatted_body"]
            )
            # One message in the room, edited twice: nothing posted anew.
            assert bridge_posts(await history(world.homeserver, world.owner, room_id)) == [alert_id]
    finally:
        await runner.cleanup()
        await node.stop()


async def test_alerts_outside_the_route_are_not_posted(world: World, clock: FakeClock) -> None:
    alias, room_id = await world.room()
    node, runner, url, token = await world.start_node(clock, route(alias))
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)
            elsewhere = {**DRAFT["area"], "codes": ["fips:06083"], "geohash": "9q4c"}
            await api.publish(area=elsewhere)
            await api.publish(certainty="unconfirmed")  # not in policy.bridge_certainties
            await api.publish(text={"fr": {"headline": "ICE au parc", "body": ""}})
            inside = await api.publish()
            await world.reader.wait_post(room_id, inside)

            async def caught_up() -> bool:
                _, body = await api.call("GET", "/api/v1/bridges")
                return bool(body["bridges"][0]["routes"][0]["backlog"] == 0)

            await wait_for(caught_up, 30, "the route to reach the feed head")
            assert bridge_posts(await history(world.homeserver, world.owner, room_id)) == [inside]
            _, body = await api.call("GET", "/api/v1/bridges")
            skipped = body["bridges"][0]["routes"][0]["skipped"]
            assert skipped == {"area": 1, "certainty": 1, "language": 1}
    finally:
        await runner.cleanup()
        await node.stop()


async def test_debunked_rumor_reads_false(world: World, clock: FakeClock) -> None:
    alias, room_id = await world.room()
    node, runner, url, token = await world.start_node(clock, route(alias), sleeps=Sleeps())
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)
            rumor_id = await api.publish(kind="rumor", certainty="false")
            seen = await world.reader.wait_post(room_id, rumor_id)
            assert seen.content["body"].startswith("❌ FALSO")
            assert "FALSE: ICE at Colonia park" in seen.content["body"]
    finally:
        await runner.cleanup()
        await node.stop()


async def test_update_moving_out_of_the_route_says_so(world: World, clock: FakeClock) -> None:
    alias, room_id = await world.room()
    node, runner, url, token = await world.start_node(clock, route(alias))
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)
            alert_id = await api.publish()
            original = await world.reader.wait_post(room_id, alert_id)
            elsewhere = {**DRAFT, "area": {**DRAFT["area"], "codes": ["fips:06083"]}}
            status, body = await api.call("POST", f"/api/v1/alerts/{alert_id}/update", elsewhere)
            assert status == 201, body
            await wait_for(lambda: world.reader.edits_of(original.event_id), 60, "the edit")
            (edit,) = world.reader.edits_of(original.event_id)
            new = edit.content["m.new_content"]
            assert new["body"].startswith("🔄 ACTUALIZADA")
            assert "The new version no longer concerns this room." in new["body"]
            assert "<del>ICE at Colonia park</del>" in new["formatted_body"]
    finally:
        await runner.cleanup()
        await node.stop()


async def test_wrong_password_keeps_the_node_running(world: World, clock: FakeClock) -> None:
    alias, _ = await world.room()
    world.bot.password = "not-the-password"
    node, runner, url, token = await world.start_node(clock, route(alias))
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)

            async def refused() -> bool:
                _, body = await api.call("GET", "/api/v1/bridges")
                return bool(body["bridges"][0]["last_error"] == "login: M_FORBIDDEN")

            await wait_for(refused, 30, "the login to be refused")
            await api.publish()  # the node itself is unaffected
            _, body = await api.call("GET", "/api/v1/bridges")
            bridge = body["bridges"][0]
            assert not bridge["logged_in"] and bridge["routes"][0]["room_id"] is None
            assert "not-the-password" not in str(body)
    finally:
        await runner.cleanup()
        await node.stop()


async def test_kicked_bridge_joins_again_and_delivers(world: World, clock: FakeClock) -> None:
    alias, room_id = await world.room()
    node, runner, url, token = await world.start_node(clock, route(alias))
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)
            first = await api.publish()
            await world.reader.wait_post(room_id, first)
            await world.homeserver.request(
                "POST",
                f"/_matrix/client/v3/rooms/{room_id}/kick",
                world.owner.access_token,
                {"user_id": world.bot.user_id, "reason": "test"},
            )
            second = await api.publish()
            await world.reader.wait_post(room_id, second)
            await wait_for(api.caught_up, 30, "the delivery to be recorded")
            state = await api.route_state()
            assert state["delivered"] == 2 and state["room_id"] == room_id
            assert state["last_error"] == "send: M_FORBIDDEN"
    finally:
        await runner.cleanup()
        await node.stop()


async def test_access_token_login(world: World, clock: FakeClock) -> None:
    alias, room_id = await world.room()
    node, runner, url, token = await world.start_node(
        clock, route(alias), secret="access_token_file"
    )
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)
            alert_id = await api.publish()
            await world.reader.wait_post(room_id, alert_id)
            _, body = await api.call("GET", "/api/v1/bridges")
            bridge = body["bridges"][0]
            assert bridge["device_id"] == world.bot.device_id and bridge["last_sync"]
            assert world.bot.access_token not in str(body)
    finally:
        await runner.cleanup()
        await node.stop()
