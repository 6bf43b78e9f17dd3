"""Issue 27: a peer's last error on the desk's peers page says when it happened, and
goes once a later delivery succeeded (an error from the minutes of the key ceremony
must not sit beside a healthy badge). Two real nodes on the fake clock."""

from __future__ import annotations

from pathlib import Path

from relay.core.times import rfc3339
from relay.runtime.clock import FakeClock
from tests.fedkit import Member, members, trusts
from tests.helpers import wait_for
from tests.webdesk.deskclient import DeskClient


async def _failed(member: Member, network: str) -> bool:
    entry = await member.peer(network)
    return entry["last_error"] is not None


async def test_the_last_error_says_when_and_goes_after_a_success(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with members(tmp_path, clock, ["ventura", "oxnard"]) as nodes:
        a, b = nodes["ventura"], nodes["oxnard"]
        await trusts(a, b)  # ventura sends; oxnard does not know ventura's key yet
        await a.publish()
        await wait_for(lambda: _failed(a, "oxnard"), what="the refused delivery")
        entry = await a.peer("oxnard")
        assert entry["last_error"].startswith("HTTP 401")
        assert entry["last_error_at"] == rfc3339(clock.now)
        desk = DeskClient.open(a.url)
        try:
            await desk.login(a.token)
            _, page, _ = await desk.page("/desk/peers?lang=es")
            assert (
                "Último error" in page and "AVISA_UNKNOWN_KEY</span> <small>(ahora mismo)" in page
            )

            await trusts(b, a)  # the ceremony's second half: oxnard trusts ventura
            await b.node.federation.reconcile()  # type: ignore[union-attr]
            await wait_for(lambda: _delivered(a, "oxnard"), what="the delivery after the ceremony")
            entry = await a.peer("oxnard")
            assert (entry["last_error"], entry["last_error_at"]) == (None, None)
            _, page, _ = await desk.page("/desk/peers?lang=es")
            assert "Último error" not in page and "AVISA_UNKNOWN_KEY" not in page
        finally:
            await desk.close()


async def _delivered(member: Member, network: str) -> bool:
    entry = await member.peer(network)
    return bool(entry["last_success"]) and entry["failures"] == 0 and entry["backlog"] == 0
