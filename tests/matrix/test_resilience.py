"""Restarts, crashes, outages and rate limits against a real Synapse.

Exactly-once is checked on the room's full timeline (``history``), read after
the route reports it has consumed the whole feed: a duplicate would have been
sent before the cursor moved past it, so none can arrive later.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridges.matrix import store as matrix_store
from relay.cli import datadir
from relay.runtime.clock import FakeClock
from relay.storage.files import write_private
from tests.helpers import wait_for
from tests.matrix.api import Api, route
from tests.matrix.conftest import Sleeps, World
from tests.matrix.reader import bridge_posts, history


async def test_crash_after_send_before_record_posts_once(
    world: World, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after Synapse took alert 3 but before the node recorded it."""
    alias, room_id = await world.room()
    crashed = asyncio.Event()
    real_record = matrix_store.record_root
    calls = 0

    def record_or_crash(conn: sqlite3.Connection, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            crashed.set()
            raise RuntimeError("simulated crash between send and record")
        real_record(conn, *args)

    class DeadAfterCrash(Sleeps):
        async def __call__(self, seconds: float) -> None:
            if crashed.is_set():
                await asyncio.Event().wait()  # a dead process does nothing more
            await super().__call__(seconds)

    monkeypatch.setattr(matrix_store, "record_root", record_or_crash)
    node, runner, url, token = await world.start_node(clock, route(alias), sleeps=DeadAfterCrash())
    async with aiohttp.ClientSession() as http:
        api = Api(url, token, http)
        ids = [await api.publish() for _ in range(6)]
        await wait_for(crashed.is_set, 60, "the simulated crash")
        third = await world.reader.wait_post(room_id, ids[2])
        assert len(world.reader.posts(room_id)) == 3

        monkeypatch.setattr(matrix_store, "record_root", real_record)
        node = await world.restart_node(node, runner, clock, Sleeps())
        bridge = node.bridges[0]
        await wait_for(
            lambda: bridge.status()["routes"][0]["cursor"] == node.feed.head, 60, "catch-up"
        )
    try:
        posted = Counter(bridge_posts(await history(world.homeserver, world.owner, room_id)))
        assert posted == Counter(ids), "every alert exactly once"
        # The resend after the restart got the very event Synapse had already stored.
        event_id = await node.db.read(
            lambda conn: conn.execute(
                "SELECT event_id FROM matrix_posts WHERE alert_id = ?", (ids[2],)
            ).fetchone()[0]
        )
        assert event_id == third.event_id
    finally:
        await node.stop()


def _run(data: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "relay", "run", "--data", str(data)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )


async def _port(data: Path, process: subprocess.Popen[bytes]) -> int:
    run_file = data / "run.json"

    def announced() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"avisa run exited with {process.returncode}")
        if not run_file.exists():
            return False
        return bool(json.loads(run_file.read_text())["pid"] == process.pid)

    await wait_for(announced, 60, "avisa run to announce its port")
    return int(json.loads(run_file.read_text())["port"])


async def test_killed_node_resumes_every_alert_exactly_once(world: World, tmp_path: Path) -> None:
    """``avisa run`` as a real process, SIGKILLed in the middle of a stream."""
    alias, room_id = await world.room()
    init = datadir.initialize(tmp_path / "node", "ventura", "127.0.0.1:0")
    config = init.data_dir / "avisa.toml"
    config.write_text(config.read_text() + world.bridge_toml(route(alias)))
    write_private(init.data_dir / "matrix.secret", world.bot.password.encode())
    log = tmp_path / "node.log"
    process = _run(init.data_dir, log)
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(f"http://127.0.0.1:{await _port(init.data_dir, process)}", init.token, http)
            ids = [await api.publish() for _ in range(12)]
            await wait_for(lambda: len(world.reader.posts(room_id)) >= 3, 60, "a few posts")
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)

            (init.data_dir / "run.json").unlink(missing_ok=True)
            process = _run(init.data_dir, log)
            api.url = f"http://127.0.0.1:{await _port(init.data_dir, process)}"
            await wait_for(api.caught_up, 90, "the restarted node to catch up")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    posted = Counter(bridge_posts(await history(world.homeserver, world.owner, room_id)))
    assert posted == Counter(ids), "every alert exactly once"
    logs = log.read_text()
    assert world.bot.password not in logs
    assert "ICE at Colonia park" not in logs and "matrix login" in logs


async def test_homeserver_outage_then_catch_up(world: World, clock: FakeClock) -> None:
    alias, room_id = await world.room()
    sleeps = Sleeps(cap=0.2)
    node, runner, url, token = await world.start_node(clock, route(alias), sleeps=sleeps)
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)
            before = await api.publish()
            await world.reader.wait_post(room_id, before)
            world.homeserver.stop()
            try:
                stale = await api.publish(expires_in="1h")  # the node keeps working
                fresh = await api.publish(expires_in="8h")

                async def backing_off() -> bool:
                    state = await api.route_state()
                    return bool(state["failures"] >= 4 and state["backoff_until"])

                await wait_for(backing_off, 60, "the route to back off")
                state = await api.route_state()
                assert state["last_error"].startswith("send: homeserver unreachable")
                assert state["backlog"] == 2 and state["delivered"] == 1
                assert {1.0, 2.0, 4.0, 8.0} <= set(sleeps.waits)  # exponential
                clock.advance("2h")  # the first one expires during the outage
            finally:
                world.homeserver.start()
            await world.reader.wait_post(room_id, fresh, timeout=90)
            await wait_for(api.caught_up, 60, "catch-up")
            state = await api.route_state()
            assert state["skipped"] == {"expired": 1}
            assert state["failures"] == 0 and state["backoff_until"] is None
        posts = bridge_posts(await history(world.homeserver, world.owner, room_id))
        assert posts == [before, fresh] and stale not in posts
    finally:
        await runner.cleanup()
        await node.stop()


async def test_rate_limit_waits_as_long_as_synapse_says(world: World, clock: FakeClock) -> None:
    alias, room_id = await world.room()
    await world.homeserver.limit_messages(world.owner, world.bot.user_id, per_second=1)
    sleeps = Sleeps(cap=3.0)
    node, runner, url, token = await world.start_node(clock, route(alias), sleeps=sleeps)
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)
            ids = [await api.publish() for _ in range(3)]
            await wait_for(api.caught_up, 60, "delivery under the rate limit")
            state = await api.route_state()
            assert state["rate_limited"] >= 1 and state["delivered"] == 3
            assert state["last_error"] == "send: M_LIMIT_EXCEEDED"
            # Waits are the server's retry_after_ms (under a second here), not exponential.
            assert sleeps.waits and all(0 < wait <= 1.5 for wait in sleeps.waits)
        assert bridge_posts(await history(world.homeserver, world.owner, room_id)) == ids
    finally:
        await runner.cleanup()
        await node.stop()


async def test_expired_alert_is_edited_to_say_so(world: World, clock: FakeClock) -> None:
    alias, room_id = await world.room()
    node, runner, url, token = await world.start_node(clock, route(alias))
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(url, token, http)
            alert_id = await api.publish(expires_in="1h")
            original = await world.reader.wait_post(room_id, alert_id)
            clock.advance("61m")
            await wait_for(
                lambda: len(world.reader.edits_of(original.event_id)) == 1, 60, "the expiry edit"
            )
            (edit,) = world.reader.edits_of(original.event_id)
            new = edit.content["m.new_content"]["body"]
            assert new.startswith("⌛ VENCIDA") and "⌛ EXPIRED" in new
            assert edit.content["body"].startswith("* ")
            assert (
                "<del>ICE at Colonia park</del>" in edit.content["m.new_content"]["formatted_body"]
            )

            # The bridge records the edit after the homeserver took it: the room can show
            # it a moment before the bridge's own write commits.
            async def nothing_due() -> bool:
                due = await node.db.read(
                    lambda conn: matrix_store.due_to_expire(
                        conn,
                        node.bridges[0].routes[0].cursor_name,
                        clock(),  # type: ignore[attr-defined]
                    )
                )
                return due == []

            await wait_for(nothing_due, 30, "the expiry recorded")
            assert (await api.route_state())["edited"] == 1
    finally:
        await runner.cleanup()
        await node.stop()
