"""CAP import against a local aiohttp server serving the fixtures, and a round trip:
node A's feed read by node B's importer (both real nodes, real SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import structlog
from aiohttp import web

from bridges.cap import store as cap_store
from bridges.cap.importer import PURGE_EVERY_S, CapImporter, SourcePoller
from bridges.cap.parse import source_ref
from relay.core.bridgeconfig import CapSource
from relay.core.times import to_epoch
from relay.runtime.clock import FakeClock
from tests.cap.kit import DRAFT, HOSTILE, cap_node, fixture, publish
from tests.cap.spy import DeskSpy
from tests.conftest import RunningNode
from tests.helpers import wait_for

THUNDERSTORM_REF = "KSTO@NWS.NOAA.GOV,KSTO1055887203"
BEFORE_STORM_ENDS = datetime(2003, 6, 17, 22, 30, tzinfo=UTC)  # 15:30 PDT


@dataclass
class Origin:
    """A CAP source on 127.0.0.1: paths → bodies, honouring If-None-Match."""

    files: dict[str, bytes] = field(default_factory=dict)
    hits: list[tuple[str, str | None]] = field(default_factory=list)
    fail: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append((request.path, request.headers.get("If-None-Match")))
        if self.fail:
            self.fail -= 1
            return web.Response(status=503)
        body = self.files.get(request.path)
        if body is None:
            return web.Response(status=404)
        etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, headers={"ETag": etag}, content_type="application/xml")


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    served = Origin()
    app = web.Application()
    app.router.add_get("/{tail:.*}", served.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    served.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield served
    await runner.cleanup()


@pytest.fixture
async def node(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningNode]:
    async with cap_node(tmp_path, clock, network="oxnard") as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def poller(
    node: RunningNode, desk: DeskSpy, url: str, http: aiohttp.ClientSession, every: str = "2m"
) -> SourcePoller:
    return SourcePoller(node.node, desk, CapSource(url=url, every=every), lambda: http)


def atom(entries: list[tuple[str, str]], base: str) -> bytes:
    """An Atom index whose entries link to CAP messages (id, path)."""
    body = "".join(
        f"<entry><id>{entry_id}</id><updated>2003-06-17T14:57:00-07:00</updated>"
        f'<title>x</title><link href="{base}{path}"/></entry>'
        for entry_id, path in entries
    )
    return (
        '<feed xmlns="http://www.w3.org/2005/Atom"><id>i</id><title>t</title>'
        f"<updated>2003-06-17T14:57:00-07:00</updated>{body}</feed>"
    ).encode()


async def test_a_cap_message_becomes_a_tip_once_and_polls_are_conditional(
    node: RunningNode, clock: FakeClock, origin: Origin, http: aiohttp.ClientSession
) -> None:
    clock.now = BEFORE_STORM_ENDS
    origin.files["/storm.cap"] = fixture("thunderstorm.cap")
    desk = DeskSpy(node.node.desk)
    source = poller(node, desk, origin.url + "/storm.cap", http)
    assert await source.poll() == 120.0
    tip = await desk.tip_for(THUNDERSTORM_REF)
    assert tip.channel == "cap" and tip.text.startswith("SEVERE THUNDERSTORM WARNING")
    assert tip.where.label.startswith("EXTREME NORTH CENTRAL TUOLUMNE COUNTY")
    assert tip.where.codes == ["fips:06109", "fips:06009", "fips:06003"]
    assert tip.where.geohash is not None and tip.where.geohash.startswith("9q")
    assert tip.observed_at == datetime(2003, 6, 17, 21, 57, tzinfo=UTC)
    await source.poll()
    assert origin.hits[-1][1] is not None  # If-None-Match sent
    assert source.status.not_modified == 1 and source.status.filed == 1
    # A restart keeps the validators and what was filed.
    again = poller(node, desk, origin.url + "/storm.cap", http)
    await again.poll()
    assert again.status.not_modified == 1 and len(await node.node.desk.listing()) == 1


async def test_expired_and_test_messages_are_not_filed(
    node: RunningNode, clock: FakeClock, origin: Origin, http: aiohttp.ClientSession
) -> None:
    origin.files["/storm.cap"] = fixture("thunderstorm.cap")  # expired in 2003
    origin.files["/test.cap"] = (
        fixture("thunderstorm.cap")
        .replace(b"<status>Actual</status>", b"<status>Test</status>")
        .replace(b"KSTO1055887203", b"KSTO-TEST")
    )
    desk = DeskSpy(node.node.desk)
    storm = poller(node, desk, origin.url + "/storm.cap", http)
    await storm.poll()
    clock.now = BEFORE_STORM_ENDS
    test = poller(node, desk, origin.url + "/test.cap", http)
    await test.poll()
    assert await node.node.desk.listing() == []
    assert storm.status.skipped == {"expired": 1} and test.status.skipped == {"not_actual": 1}


async def test_hostile_documents_are_counted_and_the_poller_goes_on(
    node: RunningNode, clock: FakeClock, origin: Origin, http: aiohttp.ClientSession
) -> None:
    clock.now = BEFORE_STORM_ENDS
    desk = DeskSpy(node.node.desk)
    source = poller(node, desk, origin.url + "/feed", http)
    with structlog.testing.capture_logs() as logs:
        for name in HOSTILE:
            origin.files["/feed"] = fixture(name)
            assert await source.poll() == 120.0
    assert source.status.refused == {"dtd": 2, "invalid": 2}
    assert source.status.failures == 0 and await node.node.desk.listing() == []
    logged = repr(logs)
    for secret in ("KSTO", "passwd", "Windsor", "thunderstorm", "12345"):
        assert secret not in logged
    origin.files["/feed"] = fixture("thunderstorm.cap")
    await source.poll()
    assert source.status.filed == 1


async def test_an_index_files_new_entries_updates_and_closes(
    node: RunningNode, clock: FakeClock, origin: Origin, http: aiohttp.ClientSession
) -> None:
    clock.now = BEFORE_STORM_ENDS
    storm = fixture("thunderstorm.cap")
    update = (
        storm.replace(b"KSTO1055887203", b"KSTO1055887299", 1)
        .replace(b"<msgType>Alert</msgType>", b"<msgType>Update</msgType>")
        .replace(
            b"<scope>Public</scope>",
            b"<scope>Public</scope><references>KSTO@NWS.NOAA.GOV,KSTO1055887203,"
            b"2003-06-17T14:57:00-07:00</references>",
        )
        .replace(b"<sent>2003-06-17T14:57:00", b"<sent>2003-06-17T15:10:00")
        .replace(b"SEVERE THUNDERSTORM WARNING<", b"STORM WARNING EXTENDED<")
    )
    cancel = (
        update.replace(b"KSTO1055887299", b"KSTO1055887300", 1)
        .replace(b"<msgType>Update</msgType>", b"<msgType>Cancel</msgType>")
        .replace(b"<sent>2003-06-17T15:10:00", b"<sent>2003-06-17T15:20:00")
    )
    origin.files |= {"/a.cap": storm, "/b.cap": update, "/c.cap": cancel}
    origin.files["/index"] = atom(
        [("b", "/b.cap"), ("a", "/a.cap"), ("far", "http://198.51.100.7/x.cap")], origin.url
    )
    desk = DeskSpy(node.node.desk)
    source = poller(node, desk, origin.url + "/index", http)
    await source.poll()
    assert list(desk.by_ref) == [THUNDERSTORM_REF]  # the Update found its Alert: one tip
    assert desk.updates == [THUNDERSTORM_REF]
    assert (await desk.tip_for(THUNDERSTORM_REF)).text.startswith("STORM WARNING EXTENDED")
    assert source.status.skipped == {"foreign_link": 1}
    fetched = len(origin.hits)
    origin.files["/index"] = atom([("c", "/c.cap"), ("b", "/b.cap"), ("a", "/a.cap")], origin.url)
    await source.poll()
    assert [path for path, _ in origin.hits[fetched:]] == ["/index", "/c.cap"]  # a, b: known
    assert desk.closed and desk.closed[0][0] == THUNDERSTORM_REF
    assert (await desk.tip_for(THUNDERSTORM_REF)).state == "closed"
    assert (source.status.filed, source.status.updated, source.status.closed) == (1, 1, 1)


async def test_a_failing_source_backs_off_then_recovers(
    node: RunningNode, clock: FakeClock, origin: Origin, http: aiohttp.ClientSession
) -> None:
    clock.now = BEFORE_STORM_ENDS
    origin.files["/storm.cap"] = fixture("thunderstorm.cap")
    origin.fail = 3
    desk = DeskSpy(node.node.desk)
    source = poller(node, desk, origin.url + "/storm.cap", http, every="10s")
    assert [await source.poll() for _ in range(3)] == [10.0, 20.0, 40.0]
    assert source.status.failures == 3 and source.status.last_error == "HTTP 503"
    assert source.status.backoff_until is not None
    assert await source.poll() == 10.0
    assert source.status.failures == 0 and source.status.filed == 1
    dead = poller(node, desk, "http://127.0.0.1:9/none.cap", http, every="10s")
    assert await dead.poll() == 10.0 and dead.status.failures == 1


async def test_status_in_the_api(tmp_path: Path, clock: FakeClock, origin: Origin) -> None:
    origin.files["/storm.cap"] = fixture("thunderstorm.cap")
    extra = f'\n[[bridges.cap.sources]]\nurl = "{origin.url}/storm.cap?key=SECRET"\nevery = "5s"\n'
    async with cap_node(tmp_path, clock, extra=extra) as node:
        importer = CapImporter(node.node, node.node.desk, sleep=_never_again)
        node.node.bridges = [importer]
        importer.start()
        await wait_for(lambda: importer.pollers[0].status.last_success, what="a poll")
        status, body = await node.call("GET", "/api/v1/bridges")
        assert status == 200
        (cap,) = body["bridges"]
        assert cap["type"] == "cap"
        assert cap["sources"][0]["name"] == f"{origin.url}/storm.cap"
        assert "SECRET" not in str(body)
        assert cap["sources"][0]["skipped"] == {"expired": 1}


async def _never_again(seconds: float) -> None:
    """The importer's sleep: after its first poll it waits until stopped."""
    await asyncio.Event().wait()


# --- round trip ---------------------------------------------------------------------


async def test_round_trip_export_on_a_import_on_b(
    tmp_path: Path, clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    public = "\n[bridges.cap]\npublic = true\n"
    async with (
        cap_node(tmp_path, clock, network="ventura", extra=public) as a,
        cap_node(tmp_path, clock, network="oxnard") as b,
    ):
        draft = dict(DRAFT, observed_at="2026-11-23T11:55:00Z")
        sent = await publish(a, **draft)
        desk = DeskSpy(b.node.desk)
        source = poller(b, desk, a.url + "/cap/v1/feed.atom", http)
        await source.poll()
        ref = source_ref("ventura", sent["id"])
        tip = await desk.tip_for(ref)
        assert tip.text.startswith("Operativo de ICE en el parque Colonia\n\nVerificado")
        assert tip.text.endswith("Llame a la línea: 805-555-0100.")
        assert tip.language == "es"
        assert tip.where.label == "Colonia, Oxnard"
        assert tip.where.geohash == "9q4gch" and tip.where.codes == ["fips:06111", "zip:93030"]
        assert tip.observed_at == datetime(2026, 11, 23, 11, 55, tzinfo=UTC)
        row = await b.node.db.read(
            lambda conn: conn.execute(
                "SELECT sent, expires_at FROM cap_imports WHERE ref = ?", (ref,)
            ).fetchone()
        )
        assert row == (
            int(clock().timestamp()),
            int((clock() + timedelta(hours=4)).timestamp()),
        )
        # An update and a cancel on A reach the same tip on B.
        clock.advance("1m")
        status, updated = await a.call(
            "POST", f"/api/v1/alerts/{sent['id']}/update", json={**draft, "expires_in": "2h"}
        )
        assert status == 201
        await source.poll()
        assert desk.updates == [ref]
        clock.advance("1m")
        status, _ = await a.call(
            "POST",
            f"/api/v1/alerts/{updated['id']}/cancel",
            json={"text": {"es": {"headline": "Retirada", "body": "Ya se fueron."}}},
        )
        await source.poll()
        assert [r for r, _ in desk.closed] == [ref]
        (only,) = await b.node.desk.listing(open_only=False)
        assert only.state == "closed" and only.channel == "cap"


async def test_an_oversized_document_is_refused_unread(
    node: RunningNode, clock: FakeClock, origin: Origin, http: aiohttp.ClientSession
) -> None:
    origin.files["/big.cap"] = b"<alert>" + b" " * (3 * 1024 * 1024) + b"</alert>"
    desk = DeskSpy(node.node.desk)
    source = poller(node, desk, origin.url + "/big.cap", http)
    assert await source.poll() == 120.0
    assert source.status.refused == {"too_large": 1} and source.status.failures == 0


async def test_avisa_run_wiring_polls_rss_and_counts_in_metrics(
    tmp_path: Path, clock: FakeClock, origin: Origin
) -> None:
    """Through ``start_bridges`` (what ``avisa run`` calls): an RSS 2.0 index is read,
    its same-origin item filed at the node's desk, and /metrics counts it."""
    from bridges.runner import start_bridges

    clock.now = BEFORE_STORM_ENDS
    origin.files["/storm.cap"] = fixture("thunderstorm.cap")
    origin.files["/rss.xml"] = (
        "<rss version='2.0'><channel><title>t</title><item><title>x</title>"
        f"<link>{origin.url}/storm.cap</link><guid>storm</guid></item>"
        "<item><link>/missing.cap</link></item></channel></rss>"
    ).encode()
    extra = f'\n[[bridges.cap.sources]]\nurl = "{origin.url}/rss.xml"\nevery = "5s"\n'
    async with cap_node(tmp_path, clock, extra=extra) as node:
        node.node.bridges = start_bridges(node.node)
        (importer,) = node.node.bridges
        await wait_for(lambda: importer.status()["sources"][0]["filed"] == 1, what="the tip")
        (tip,) = await node.node.desk.listing()
        assert tip.channel == "cap" and tip.text.startswith("SEVERE THUNDERSTORM")
        source = importer.status()["sources"][0]
        assert source["skipped"] == {"link_gone": 1}  # /missing.cap: 404
        status, body = await node.call("GET", "/metrics")
        assert 'avisa_cap_source_total{source="0",event="tip",detail="filed"} 1' in body.decode()


async def test_a_bug_behind_the_poller_does_not_stop_it(
    node: RunningNode, clock: FakeClock, origin: Origin, http: aiohttp.ClientSession
) -> None:
    clock.now = BEFORE_STORM_ENDS
    origin.files["/storm.cap"] = fixture("thunderstorm.cap")
    desk = DeskSpy(node.node.desk)
    source = poller(node, desk, origin.url + "/storm.cap", http)

    async def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("a bug")

    desk.submit = broken  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logs:
        assert await source.poll() == 120.0
    assert source.status.last_error == "internal error (RuntimeError, logged)"
    assert "KSTO" not in repr(logs)
    del desk.submit  # the real one again: the message was not marked as read
    await source.poll()
    assert source.status.filed == 1 and source.status.failures == 0


async def test_old_imports_are_purged_on_the_nodes_clock(tmp_path: Path, clock: FakeClock) -> None:
    """Housekeeping runs on the node's clock (``clock.every``), whatever sleep the pollers
    were given: ten minutes of it forget what is past its keep date, and only that."""
    async with cap_node(tmp_path, clock) as node:
        now_s = to_epoch(clock())

        def row(ref: str, keep_s: int) -> cap_store.Imported:
            return cap_store.Imported(ref, ref, "src", "Alert", now_s, None, "filed", keep_s)

        rows = [row("urn:old", now_s + 60), row("urn:kept", now_s + 3600)]
        await node.node.db.write(lambda c: cap_store.record_all(c, rows))
        parked = clock.sleepers()
        importer = CapImporter(node.node, node.node.desk, sleep=_never_again)
        importer.start()
        try:
            await wait_for(lambda: clock.sleepers() > parked, what="the purge loop parked")

            async def left() -> set[str]:
                refs = ["urn:old", "urn:kept"]
                return set(await node.node.db.read(lambda c: cap_store.known(c, refs)))

            async def purged() -> bool:
                return await left() == {"urn:kept"}

            assert await left() == {"urn:old", "urn:kept"}
            clock.advance(timedelta(seconds=PURGE_EVERY_S))
            await wait_for(purged, what="the old import purged")
        finally:
            await importer.stop()
