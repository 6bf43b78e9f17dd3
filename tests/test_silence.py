"""Silent origins (DESIGN §16, issue 29 item 4): the rule (pure), the setting, and real
nodes: an origin whose checkpoints stop reaching the far node is ``silent`` there within
``stale_after`` (FakeClock): its active alert says so in the API and the stream, metrics
show it, and the far node asks the origin directly; once the origin answers, the silence
ends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from relay.core import config
from relay.core.checkpoints import silent_origins
from relay.core.errors import ConfigError
from relay.runtime.clock import FakeClock
from tests.fedkit import Front, Member, members, trusts
from tests.helpers import T0, wait_for

EVERY, STALE = timedelta(seconds=10), timedelta(seconds=30)


def test_an_origin_is_silent_once_its_newest_checkpoint_is_older_than_stale_after() -> None:
    issued = {"ventura": T0, "ojai": T0 + timedelta(seconds=20), "gone": T0}
    watched = ["ventura", "ojai", "never"]
    assert silent_origins(issued, watched, T0 + STALE, STALE) == {}
    later = T0 + STALE + timedelta(seconds=1)
    assert silent_origins(issued, watched, later, STALE) == {"ventura": T0}
    # Not watched (no longer a peer), or never heard from: not silent.
    assert "gone" not in silent_origins(issued, watched, later, STALE)
    assert "never" not in silent_origins(issued, watched, later + STALE, STALE)


def test_stale_after_defaults_to_five_minutes_and_is_checked() -> None:
    base = '[node]\nnetwork = "ventura"\n'
    assert config.parse(base).stale_after() == timedelta(minutes=5)
    slow = config.parse(base + '[federation]\ncheckpoint_every = "5m"\n')
    assert slow.stale_after() == timedelta(minutes=10)
    fast = '[federation]\ncheckpoint_every = "10s"\nstale_after = "30s"\n'
    assert config.parse(base + fast).stale_after() == STALE
    for bad in ('"1m"', '"2d"', '"soon"'):
        with pytest.raises(ConfigError) as refused:
            config.parse(base + f'[federation]\ncheckpoint_every = "1m"\nstale_after = {bad}\n')
        assert "federation.stale_after" in str(refused.value)


def fast(text: str) -> str:
    return text + '\n[federation]\ncheckpoint_every = "10s"\nstale_after = "30s"\n'


async def _view(member: Member, alert_id: str) -> dict[str, object]:
    found = await member.alert(alert_id)
    assert found is not None
    return found


async def _listed(member: Member) -> list[dict[str, object]]:
    status, body = await member.call("GET", "/api/v1/alerts?active=true")
    assert status == 200
    return body["alerts"]  # type: ignore[no-any-return]


async def _first_event(member: Member) -> str:
    """The data of the stream's first event (the feed from its start)."""
    url = member.url + "/api/v1/stream?since=0"
    async with member.http.get(url, headers=member.headers()) as response:
        line = b""
        while not line.startswith(b"data: "):
            line = await asyncio.wait_for(response.content.readline(), 10)
        return line[6:].decode()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Member, Member, Front, Front, FakeClock]]:
    clock = FakeClock(T0)
    async with members(tmp_path, clock, ["ventura", "oxnard"], fast) as nodes:
        origin, far = nodes["ventura"], nodes["oxnard"]
        to_far, to_origin = Front(far.url), Front(origin.url)
        await to_far.start()
        await to_origin.start()
        try:
            await trusts(origin, far, url=to_far.url)
            await trusts(far, origin, url=to_origin.url, forward=False)
            yield origin, far, to_far, to_origin, clock
        finally:
            await to_far.stop()
            await to_origin.stop()


async def test_a_silent_origin_is_marked_within_stale_after_and_asked_directly(
    pair: tuple[Member, Member, Front, Front, FakeClock],
) -> None:
    origin, far, to_far, to_origin, clock = pair
    alert_id = (await origin.publish())["id"]
    await wait_for(lambda: far.alert(alert_id), what="the alert at the far node")
    assert far.node.federation is not None
    silence = far.node.federation.silence
    clock.advance(EVERY)  # a checkpoint: the far node has heard from the origin
    await wait_for(lambda: "ventura" in silence.issued, what="the origin's checkpoint")
    last_word = silence.issued["ventura"]
    assert "origin_status" not in await _view(far, alert_id)

    # From now on nothing from the origin reaches the far node, either way.
    to_far.status = to_origin.status = 503
    clock.advance(STALE)
    assert "origin_status" not in await _view(far, alert_id)  # not yet: exactly stale_after
    clock.advance(timedelta(seconds=1))
    assert clock() - last_word <= STALE + EVERY
    assert (await _view(far, alert_id))["origin_status"] == "silent"
    assert [item.get("origin_status") for item in await _listed(far)] == ["silent"]
    assert json.loads(await _first_event(far))["origin_status"] == "silent"
    metrics = await far.metrics()
    assert 'avisa_origin_silent{origin="ventura"} 1' in metrics

    # The far node asks the origin directly, once per round, until it answers.
    def asked() -> bool:
        return ("GET", "/federation/v1/checkpoints/ventura") in to_origin.requests

    clock.advance(EVERY)
    await wait_for(asked, what="a direct ask of the origin's checkpoint")
    await wait_for(lambda: silence.asked["ventura", "failed"], what="the failed ask counted")
    assert 'avisa_origin_went_silent_total{origin="ventura"} 1' in await far.metrics()
    to_origin.status = None
    clock.advance(EVERY)
    await wait_for(lambda: silence.asked["ventura", "fresh"], what="the origin's answer")
    assert "origin_status" not in await _view(far, alert_id)
    assert 'avisa_origin_silent{origin="ventura"} 0' in await far.metrics()
