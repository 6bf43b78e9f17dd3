"""Issue 28, done means: a coalition's trust list applied by a node that never met the member.

Four real nodes (``tests.fedkit``: SQLite files, aiohttp servers on 127.0.0.1, one
``FakeClock``). ``la-rrn``, ``oc.resilience`` and ``ventura`` maintain the list
``socal`` (threshold 2) with a fourth member, ``santa-ana`` (Orange County,
fips:06059). ``la-rrn`` hosts the list and is santa-ana's neighbour: they did the
card ceremony, and la-rrn relays what santa-ana says to ventura, endorsing it.
``ventura`` never met santa-ana: it only subscribes to ``socal`` (``--max-speaks-for
fips:06``) and asks for two endorsements from an origin it does not trust itself, so
la-rrn's endorsement alone never carries a santa-ana alert.

Through the list: santa-ana's alert for its county is accepted and one outside it is
held; a local ``trust deny`` beats the list; past the list's expiry new alerts are held
(``trustlist_expired``) while a cancel passes; version 2 removes santa-ana and its
next alert is held after one refresh; a host serving version 1 again is refused
(``rollback``) and the desk shows it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from keys.cards.statements import b64
from keys.cards.trustlist import (
    TRUSTLIST_PAYLOAD_TYPE,
    Maintainers,
    MemberKey,
    OpenedList,
    encode_list,
    make_list,
    read_list,
    set_fingerprint,
)
from keys.cards.trustlist import (
    Member as ListMember,
)
from keys.store import deny_ops, trustlist_ops, trustsub_ops
from relay.core.envelope import endorse, sign
from relay.core.model import encode_envelope
from relay.federation.trustfetch import fetch_forward
from relay.runtime.clock import FakeClock
from tests.fedkit import Member, decision_for, members, trusts
from tests.webdesk.deskclient import DeskClient

MAINTAINERS = ("la-rrn", "oc.resilience", "ventura")
ORANGE = {"label": "Santa Ana", "geohash": "9mup8", "radius_m": 500, "codes": ["fips:06059"]}
LA = {"label": "Boyle Heights", "geohash": "9q5ctr", "radius_m": 500, "codes": ["fips:06037"]}
SCOPE = {"santa-ana": ["fips:06059"], "la-rrn": ["fips:06037"]}


def _ventura_config(text: str) -> str:
    if 'network = "ventura"' not in text:
        return text
    return text.replace("min_endorsements = 1", "min_endorsements = 2")


def _entry(member: Member) -> ListMember:
    key = member.node.key
    return ListMember(
        network=member.network,
        url=member.url,
        keys=[MemberKey(key.keyid, b64(key.public_key), None, None)],
        speaks_for=SCOPE.get(member.network, ["fips:06111"]),
        kinds=["sighting", "operation"],
    )


def version(
    net: dict[str, Member],
    number: int,
    clock: FakeClock,
    days: int,
    signers: tuple[str, ...],
    previous: OpenedList | None = None,
    maintainers: tuple[str, ...] = MAINTAINERS,
) -> OpenedList:
    """One version, drafted and then signed by each of ``signers`` with its node key."""
    names = sorted(n for n in net if number == 1 or n != "santa-ana")
    document = make_list(
        "socal",
        number,
        clock.now,
        clock.now + timedelta(days=days),
        Maintainers(list(maintainers), min(2, len(maintainers))),
        [_entry(net[name]) for name in names],
        None if previous is None else previous.digest,
    )
    payload = encode_list(document)
    envelope = sign(payload, net[signers[0]].node.key, TRUSTLIST_PAYLOAD_TYPE)
    for name in signers[1:]:
        envelope = endorse(envelope, payload, net[name].node.key)
    return read_list(encode_envelope(envelope))


async def said_by_santa_ana(net: dict[str, Member], **draft: Any) -> tuple[str, dict[str, Any]]:
    """Santa-ana publishes; la-rrn relays it; what ventura decided."""
    alert = await net["santa-ana"].publish(**draft)
    return alert["id"], await decision_for(net["ventura"], alert["id"])


def judged(decision: dict[str, Any]) -> tuple[str, str]:
    return decision["decision"], decision["reason"]


async def test_a_coalition_list_applied_by_a_node_that_never_met_the_member(
    tmp_path: Path, clock: FakeClock
) -> None:
    names = [*MAINTAINERS, "santa-ana"]
    async with members(tmp_path, clock, names, _ventura_config) as net:
        la, ventura, santa = net["la-rrn"], net["ventura"], net["santa-ana"]
        await trusts(santa, la)
        await trusts(la, santa, speaks_for=("fips:06",))
        await trusts(la, ventura, endorse=True)

        # Version 1, signed by two maintainers on their own keys, hosted by la-rrn.
        v1 = version(net, 1, clock, days=2, signers=("la-rrn", "ventura"))
        trustlist_ops.publish(la.data_dir, [v1.raw], clock)
        url = f"{la.url}/trustlists/v1/socal"
        fetched = await fetch_forward(ventura.http, url, None)
        fingerprint = set_fingerprint(v1.document)  # read aloud once by a maintainer
        trustsub_ops.subscribe(ventura.data_dir, url, fingerprint, ["fips:06"], fetched, clock)
        await ventura.node.reload_trust()
        peer = await ventura.peer("santa-ana")
        assert peer["trusted_via"] == "list" and peer["lists"][0]["version"] == 1
        assert peer["speaks_for"] == ["fips:06059"]

        first, decision = await said_by_santa_ana(net, area=ORANGE, expires_in="3d")
        assert judged(decision) == ("accept", "authoritative")
        _, decision = await said_by_santa_ana(net, area=LA)
        assert judged(decision) == ("hold", "outside_speaks_for")

        # A local deny beats the list: santa-ana is an unknown origin again.
        deny_ops.deny(ventura.data_dir, "santa-ana", "phone seized", clock)
        await ventura.node.reload_trust()
        _, decision = await said_by_santa_ana(net, area=ORANGE)
        assert judged(decision) == ("hold", "not_enough_endorsements")
        deny_ops.undeny(ventura.data_dir, "santa-ana")
        await ventura.node.reload_trust()

        # Past the list's expiry, nothing newer: frozen. New alerts held, a cancel passes.
        clock.advance("2d")
        clock.advance("1m")
        assert (await ventura.peer("santa-ana"))["frozen"] is True
        _, decision = await said_by_santa_ana(net, area=ORANGE)
        assert judged(decision) == ("hold", "trustlist_expired")
        cancel = await santa.cancel(first)
        assert judged(await decision_for(ventura, cancel["id"])) == ("accept", "origin_cancel")
        page = await desk_page(ventura)
        assert "Trust list socal (version 1) expired" in page

        # Version 2 removes santa-ana: within one refresh its next alert is held.
        v2 = version(net, 2, clock, days=30, signers=("la-rrn", "oc.resilience"), previous=v1)
        trustlist_ops.publish(la.data_dir, [v2.raw], clock)
        await ventura.node.federation.refresh_trustlists()  # type: ignore[union-attr]
        assert "santa-ana" not in ventura.node.trust.peers
        _, decision = await said_by_santa_ana(net, area=ORANGE)
        assert judged(decision) == ("hold", "not_enough_endorsements")

        # A host that serves version 1 again: refused, version 2 kept, shown on the desk.
        await la.node.db.write(
            lambda conn: conn.execute("DELETE FROM trustlist_versions WHERE version = 2")
        )
        await ventura.node.federation.refresh_trustlists()  # type: ignore[union-attr]
        status, body = await ventura.call("GET", "/api/v1/trustlists")
        (listed,) = body["trustlists"]
        assert status == 200 and listed["version"] == 2
        assert listed["refusal"]["reason"] == "rollback"
        assert "refused (rollback)" in await desk_page(ventura)


async def desk_page(member: Member) -> str:
    desk = DeskClient.open(member.url)
    try:
        await desk.login(member.token)
        _, page, _ = await desk.page("/desk/peers?lang=en")
        return str(page)
    finally:
        await desk.close()


async def test_a_list_expiring_within_a_week_warns_in_the_log_and_on_the_desk(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with members(tmp_path, clock, ["ventura", "santa-ana"]) as net:
        ventura = net["ventura"]
        v1 = version(net, 1, clock, days=8, signers=("ventura",), maintainers=("ventura",))
        trustlist_ops.publish(ventura.data_dir, [v1.raw], clock)
        url = f"{ventura.url}/trustlists/v1/socal"
        fingerprint = set_fingerprint(v1.document)
        trustsub_ops.subscribe(ventura.data_dir, url, fingerprint, [], [v1.raw], clock)
        await ventura.node.reload_trust()
        assert (await ventura.peer("santa-ana"))["trusted_via"] == "list"
        with structlog.testing.capture_logs() as quiet:
            await ventura.node.federation.refresh_trustlists()  # type: ignore[union-attr]
        assert not [log for log in quiet if log["event"] == "trustlist expires soon"]
        assert "expires on" not in await desk_page(ventura)

        clock.advance("1d")
        clock.advance("1m")  # now less than a week is left
        with structlog.testing.capture_logs() as logs:
            await ventura.node.federation.refresh_trustlists()  # type: ignore[union-attr]
        (warned,) = [log for log in logs if log["event"] == "trustlist expires soon"]
        assert warned["list"] == "socal" and warned["version"] == 1
        assert "Trust list socal (version 1) expires on" in await desk_page(ventura)
        status, body = await ventura.call("GET", "/api/v1/trustlists")
        assert status == 200 and body["trustlists"][0]["expires_soon"] is True
