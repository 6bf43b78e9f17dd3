"""The desk room against the real Synapse: tips posted, commands answered, alerts published.

The bot is the world's bridge user, the reader is a verifier and publisher,
the room's owner a verifier only. Commands are real messages sent by those
users; answers are read back as the reader's client sees them. The second
test measures, on two real nodes, how long an alert takes from ``!publish``
in the room to being shown by the peer (the figure is printed).
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any
from urllib.parse import quote

from bridges.matrix.localsynapse import Registered
from bridges.runner import start_bridges
from relay.core.tips import TipIn, Where
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from relay.storage import trust
from relay.storage.files import write_private
from tests.adversarial.kit import figure
from tests.conftest import start_node
from tests.fedkit import members, trusts
from tests.helpers import wait_for
from tests.matrix.conftest import Sleeps, World
from tests.matrix.reader import Seen, history

PHONE = "(805) 555-0143"


def desk_toml(
    world: World, room: str, *, publishers: list[str] | None = None, encrypted: bool = False
) -> str:
    verifiers = [world.reader.user.user_id, world.owner.user_id]
    publishers = publishers if publishers is not None else [world.reader.user.user_id]
    quoted = ", ".join(f'"{user}"' for user in verifiers)
    pubs = ", ".join(f'"{user}"' for user in publishers)
    return f"""
[desk.matrix]
homeserver = "{world.homeserver.url}"
user_id = "{world.bot.user_id}"
room = "{room}"
verifiers = [{quoted}]
publishers = [{pubs}]
password_file = "desk-matrix.secret"
encrypted = {"true" if encrypted else "false"}
"""


def start_desk_room(world: World, node: Node) -> None:
    write_private(node.data_dir / "desk-matrix.secret", world.bot.password.encode())
    node.bridges = start_bridges(node, sleep=Sleeps(), idle_wait=0.2)


async def say(world: World, user: Registered, room_id: str, body: str) -> str:
    """``user`` sends ``body`` to the room; the event id."""
    path = f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/t{uuid.uuid4().hex}"
    reply = await world.homeserver.request(
        "PUT", path, user.access_token, {"msgtype": "m.text", "body": body}
    )
    return str(reply["event_id"])


def reply_to(world: World, event_id: str) -> Seen | None:
    for seen in world.reader.seen:
        relation = seen.content.get("m.relates_to") or {}
        if (relation.get("m.in_reply_to") or {}).get("event_id") == event_id:
            return seen
    return None


async def ask(world: World, user: Registered, room_id: str, body: str) -> str:
    """Send a command and wait for the bot's answer to it."""
    event_id = await say(world, user, room_id, body)
    await wait_for(lambda: reply_to(world, event_id) is not None, 60, f"an answer to {body}")
    answer = reply_to(world, event_id)
    assert answer is not None and answer.sender == world.bot.user_id
    assert answer.content["msgtype"] == "m.notice" and answer.content["m.mentions"] == {}
    return str(answer.content["body"])


async def tip_post(world: World, room_id: str, number: int) -> Seen:
    def posted() -> Seen | None:
        return next(
            (
                s
                for s in world.reader.seen
                if s.room_id == room_id and s.content.get("org.avisa.tip") == number
            ),
            None,
        )

    await wait_for(lambda: posted() is not None, 60, f"tip #{number} in the room")
    found = posted()
    assert found is not None
    return found


def a_tip(text: str, geohash: str = "9q4gch") -> TipIn:
    where = Where(label="Colonia park", geohash=geohash, codes=["fips:06111"])
    return TipIn(text=text, where=where, language="es")


async def shown_at(node: Node) -> int:
    """Alerts the node shows its members (accepted, not held)."""
    rows = await node.db.read(
        lambda c: c.execute("SELECT count(*) FROM alerts WHERE state = 'active'").fetchone()
    )
    return int(rows[0])


async def bot_ready(node: Node) -> bool:
    (room,) = node.bridges
    status: dict[str, Any] = room.status()
    return bool(status["logged_in"] and status["room_id"])


async def test_desk_room_posts_tips_and_takes_commands(world: World, clock: FakeClock) -> None:
    alias, room_id = await world.room()
    node, runner, _, _ = await world_start(world, clock, alias)
    try:
        await wait_for(lambda: bot_ready(node), 60, "the desk bot in its room")
        desk = node.desk
        tip_id = await desk.submit(
            a_tip("<b>dos</b> camionetas @room <script>x</script>"), contact=PHONE
        )
        await desk.submit(a_tip("otra persona lo vio también"), reporter=b"web-token-hash-1")
        post = await tip_post(world, room_id, 1)
        content = post.content
        assert "<b>dos</b> camionetas @room" in content["body"]
        assert "&lt;b&gt;dos&lt;/b&gt;" in content["formatted_body"]
        assert "<script>" not in content["formatted_body"] and content["m.mentions"] == {}
        assert "555" not in str(content) and "!claim 1" in content["body"]
        second = await tip_post(world, room_id, 2)
        # Each sentence in every language the node serves (es, en), joined by " / ".
        assert "2 reportes, 2 personas, 1 medio" in second.content["body"]  # real plurals
        assert "/ 2 reports, 2 reporters, 1 channel" in second.content["body"]

        reader, owner = world.reader.user, world.owner
        answer = await ask(world, reader, room_id, "!publish 1")
        assert "AVISA_NEEDS_CONFIRMATION" in answer
        answer = await ask(world, owner, room_id, "!publish 1")
        assert "may not" in answer
        answer = await ask(world, reader, room_id, "!claim 1 voy")
        assert "tomado por" in answer and "/ claimed by" in answer
        answer = await ask(world, reader, room_id, "!confirmed 1 vi dos camionetas")
        assert "(1/1)" in answer
        assert "Comandos" in await ask(world, reader, room_id, "!hola")
        answer = await ask(world, reader, room_id, "!publish 1")
        assert "publicado: ventura/" in answer and "/ published: ventura/" in answer
        alert_id = answer.rsplit(" ", 1)[-1]
        shown = await desk.get(tip_id)
        assert (shown.state, shown.alert_id) == ("published", alert_id)
        assert [(e.action, e.actor) for e in shown.history][:2] == [
            ("claim", reader.user_id),
            ("outcome", reader.user_id),
        ]
        assert shown.history[1].note == "vi dos camionetas"
        answer = await ask(world, owner, room_id, "!duplicate 2 1 same vans")
        assert "AVISA_NOT_CLAIMED" in answer
        await ask(world, owner, room_id, "!claim 2")
        assert "duplicado" in await ask(world, owner, room_id, "!duplicate 2 1 same vans")
        assert "no such tip" in await ask(world, owner, room_id, "!claim 99")
        assert "AVISA_TIP_PUBLISHED" in await ask(world, reader, room_id, "!close 1")

        # persons and disputes: the owner is linked to a person; verifiers disagree
        await node.db.write(lambda c: trust.link_person(c, owner.user_id, "Olga"))
        await desk.submit(a_tip("tres camionetas"), reporter=b"web-token-hash-3")
        await ask(world, owner, room_id, "!claim 3")
        answer = await ask(world, owner, room_id, "!confirmed 3")
        assert f"Olga ({owner.user_id})" in answer
        answer = await ask(world, reader, room_id, "!false 3 no había nada")
        assert "en disputa:" in answer and "/ disputed:" in answer
        assert "en disputa" in await ask(world, owner, room_id, "!confirmed 3 sí había")
        assert "AVISA_DISPUTED" in await ask(world, reader, room_id, "!publish 3")
        answer = await ask(world, reader, room_id, "!confirmed 3 lo resolví")  # a publisher
        assert "confirmado por" in answer and "/ confirmed by" in answer
        settled = await desk.get("3")
        assert (settled.state, settled.history[-1].ruling) == ("confirmed", True)
    finally:
        await runner.cleanup()
        await node.stop()


async def world_start(
    world: World, clock: FakeClock, alias: str, *, encrypted: bool = False
) -> tuple[Node, Any, str, str]:
    extra = desk_toml(world, alias, encrypted=encrypted)
    node, runner, url, token = await start_node(world.tmp, clock, "ventura", extra)
    start_desk_room(world, node)
    return node, runner, url, token


async def test_encrypted_desk_room_reads_and_answers_encrypted_commands(
    world: World, clock: FakeClock
) -> None:
    alias, room_id = await world.room(encrypted=True)
    node, runner, _, _ = await world_start(world, clock, alias, encrypted=True)
    try:
        await wait_for(lambda: bot_ready(node), 60, "the desk bot in its room")
        await node.desk.submit(a_tip("Tres agentes Kinkajou5"), contact=PHONE)
        post = await tip_post(world, room_id, 1)
        assert post.decrypted and "Kinkajou5" in post.content["body"]
        client, bot = world.reader.client, world.bot.user_id
        await wait_for(
            lambda: any(client.device_store.active_user_devices(bot)), 60, "the bot's device keys"
        )
        sent = await client.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": "!claim 1 voy"},
            ignore_unverified_devices=True,
        )
        event_id = str(getattr(sent, "event_id", ""))
        assert event_id, sent
        await wait_for(lambda: reply_to(world, event_id) is not None, 60, "the answer")
        answer = reply_to(world, event_id)
        assert answer is not None and answer.decrypted and "claimed by" in answer.content["body"]
        assert (await node.desk.get("1")).state == "claimed"
        events = [
            e
            for e in await history(world.homeserver, world.owner, room_id)
            if e["type"].startswith("m.room.") and e.get("state_key") is None
        ]
        assert {e["type"] for e in events} == {"m.room.encrypted"}
        assert "Kinkajou5" not in str(events) and "!claim" not in str(events)
    finally:
        await runner.cleanup()
        await node.stop()


ROUNDS = 10


async def test_publish_in_the_room_to_alert_on_a_peer(world: World, clock: FakeClock) -> None:
    """Median time from ``!publish N`` sent in the room to the alert shown by the peer."""
    alias, room_id = await world.room()
    extra = desk_toml(world, alias)

    def edit(text: str) -> str:
        return text + extra if 'network = "net-a"' in text else text

    async with members(world.tmp, clock, ["net-a", "net-b"], edit) as net:
        a, b = net["net-a"], net["net-b"]
        await trusts(a, b)
        await trusts(b, a)
        start_desk_room(world, a.node)
        await wait_for(lambda: bot_ready(a.node), 60, "the desk bot in its room")
        reader = world.reader.user
        timings = []
        for n in range(1, ROUNDS + 1):
            await a.node.desk.submit(a_tip(f"ronda {n}"))
            await tip_post(world, room_id, n)
            await ask(world, reader, room_id, f"!claim {n}")
            await ask(world, reader, room_id, f"!confirmed {n}")
            before = await shown_at(b.node)
            started = time.perf_counter()
            await say(world, reader, room_id, f"!publish {n}")

            async def arrived(expected: int = before + 1) -> bool:
                return await shown_at(b.node) >= expected

            await wait_for(arrived, 60, f"alert {n} at net-b")
            timings.append((time.perf_counter() - started) * 1000)
        median = statistics.median(timings)
        figure(
            "desk_publish_to_peer_ms",
            rounds=ROUNDS,
            median=round(median, 1),
            min=round(min(timings), 1),
            max=round(max(timings), 1),
        )
        assert median < 10_000
        assert await shown_at(b.node) == ROUNDS
        tips_at_b = await b.node.db.read(
            lambda c: c.execute("SELECT count(*) FROM tips").fetchone()
        )
        assert tips_at_b == (0,)
