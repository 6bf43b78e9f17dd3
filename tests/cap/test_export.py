"""The CAP 1.2 / Atom export of a real node (aiohttp on port 0, real SQLite), read by
lxml against the OASIS schema and by a real feed reader (feedparser)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import feedparser
from lxml import etree

from bridges.cap.render import render_alert
from relay.runtime.clock import FakeClock
from tests.cap.kit import CATALOGUES, assert_xsd_valid, cap_node, get, publish
from tests.helpers import key, make_alert, raw_envelope

PUBLIC = "\n[bridges.cap]\npublic = true\n"
C = "{urn:oasis:names:tc:emergency:cap:1.2}"


def texts(document: etree._Element, name: str) -> list[str]:
    return [element.text or "" for element in document.iter(C + name)]


async def feed_entries(node: object, query: str = "") -> list[feedparser.FeedParserDict]:
    status, body, headers = await get(node, "/cap/v1/feed.atom" + query)  # type: ignore[arg-type]
    assert status == 200 and headers["Content-Type"].startswith("application/atom+xml")
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return list(parsed.entries)


async def test_every_field_as_section_12_maps_it(tmp_path: Path, clock: FakeClock) -> None:
    async with cap_node(tmp_path, clock, extra=PUBLIC) as node:
        first = await publish(node)
        clock.advance("1m")
        status, updated = await node.call(
            "POST",
            f"/api/v1/alerts/{first['id']}/update",
            json={**_draft(), "certainty": "false", "kind": "rumor"},
        )
        assert status == 201
        status, body, _ = await get(node, f"/cap/v1/alerts/{updated['id']}.xml")
        assert status == 200
        assert_xsd_valid(body)
        document = etree.fromstring(body)
        assert texts(document, "identifier") == [updated["id"]]
        assert texts(document, "sender") == ["ventura"]
        assert texts(document, "sent") == ["2026-11-23T12:01:00+00:00"]
        assert texts(document, "status") == ["Actual"] and texts(document, "scope") == ["Public"]
        assert texts(document, "msgType") == ["Update"]
        assert texts(document, "references") == [f"ventura,{first['id']},2026-11-23T12:00:00+00:00"]
        assert texts(document, "language") == ["es", "en"]
        assert texts(document, "certainty") == ["Unlikely", "Unlikely"]
        assert texts(document, "headline")[0] == "Operativo de ICE en el parque Colonia"
        assert texts(document, "instruction") == [
            "No abra la puerta. Llame a la línea: 805-555-0100."
        ]
        assert texts(document, "areaDesc") == ["Colonia, Oxnard"] * 2
        assert texts(document, "circle")[0].endswith(" 0.5")
        pairs = list(zip(texts(document, "valueName"), texts(document, "value"), strict=True))
        assert ("SAME", "006111") in pairs and ("ZIP", "93030") in pairs
        dsse = [value for name, value in pairs if name == "AVISA_DSSE"]
        assert len(dsse) == 2 and json.loads(dsse[0]) == updated["envelope"]
        # Times carry a numeric offset, never Z (an identifier's ULID may end in Z).
        assert not re.search(r"T\d\d:\d\d:\d\dZ<", body.decode())


def _draft() -> dict[str, object]:
    from tests.cap.kit import DRAFT

    return dict(DRAFT)


async def test_feed_lists_what_is_in_force_and_each_link_resolves(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with cap_node(tmp_path, clock, extra=PUBLIC) as node:
        kept = await publish(node, expires_in="2h")
        clock.advance("1m")
        withdrawn = await publish(node, expires_in="1h")
        await publish(node, certainty="unconfirmed")  # not a listed certainty
        debunk = await publish(node, kind="rumor", certainty="false")
        clock.advance("1m")
        status, cancel = await node.call(
            "POST",
            f"/api/v1/alerts/{withdrawn['id']}/cancel",
            json={"text": {"es": {"headline": "Retirada", "body": "Era otro vehículo."}}},
        )
        assert status == 201
        entries = await feed_entries(node)
        identifiers = [entry["cap_identifier"] for entry in entries]
        assert identifiers == [cancel["id"], debunk["id"], kept["id"]]  # newest first
        assert [entry["cap_msgtype"] for entry in entries] == ["Cancel", "Alert", "Alert"]
        assert entries[1]["title"].startswith("FALSO:")
        assert entries[0]["title"] == "RETIRADA"  # its headline says it already: said once
        # The node's first language by default; ?lang= picks another it serves.
        english = await feed_entries(node, "?lang=en")
        assert english[1]["title"] == "FALSE: ICE operation at Colonia park"
        assert english[0]["title"].startswith("WITHDRAWN")
        assert [e["title"] for e in await feed_entries(node, "?lang=fr")] == [
            e["title"] for e in entries
        ]
        for entry in entries:
            path = entry.link.split(node.url, 1)[1]
            status, body, headers = await get(node, path)
            assert status == 200 and headers["Content-Type"].startswith("application/cap+xml")
            assert_xsd_valid(body)
        # The Cancel stays while the alert it withdraws would have held, then nothing.
        clock.advance(timedelta(minutes=59))
        assert [e["cap_identifier"] for e in await feed_entries(node)] == [
            debunk["id"],
            kept["id"],
        ]
        clock.advance("4h")
        assert await feed_entries(node) == []
        status, _, _ = await get(node, f"/cap/v1/alerts/{kept['id']}.xml")
        assert status == 410


async def test_conditional_requests_get_304(tmp_path: Path, clock: FakeClock) -> None:
    async with cap_node(tmp_path, clock, extra=PUBLIC) as node:
        await publish(node)
        status, body, headers = await get(node, "/cap/v1/feed.atom")
        etag, modified = headers["ETag"], headers["Last-Modified"]
        status, again, _ = await get(node, "/cap/v1/feed.atom", **{"If-None-Match": etag})
        assert (status, again) == (304, b"")
        status, _, _ = await get(node, "/cap/v1/feed.atom", **{"If-Modified-Since": modified})
        assert status == 304
        clock.advance("1m")
        fresh = await publish(node)
        status, changed, headers = await get(node, "/cap/v1/feed.atom", **{"If-None-Match": etag})
        assert status == 200 and headers["ETag"] != etag and fresh["id"].encode() in changed
        status, _, _ = await get(node, "/cap/v1/feed.atom", **{"If-Modified-Since": modified})
        assert status == 200
        path = f"/cap/v1/alerts/{fresh['id']}.xml"
        status, _, headers = await get(node, path)
        status, _, _ = await get(node, path, **{"If-None-Match": headers["ETag"]})
        assert status == 304
        later = format_datetime(clock() + timedelta(hours=1), usegmt=True)
        status, _, _ = await get(node, path, **{"If-Modified-Since": later})
        assert status == 304


async def test_not_public_needs_a_token_and_size_is_bounded(
    tmp_path: Path, clock: FakeClock
) -> None:
    extra = "\n[bridges.cap]\nmax_entries = 2\n"
    async with cap_node(tmp_path, clock, extra=extra) as node:
        ids = []
        for _ in range(3):
            ids.append((await publish(node))["id"])
            clock.advance("1s")
        status, body, _ = await get(node, "/cap/v1/feed.atom")
        assert status == 401 and json.loads(body)["errcode"] == "AVISA_UNAUTHORIZED"
        status, _, _ = await get(node, f"/cap/v1/alerts/{ids[0]}.xml")
        assert status == 401
        status, body, headers = await get(node, "/cap/v1/feed.atom", **node.headers())
        assert status == 200 and "private" in headers["Cache-Control"]
        parsed = feedparser.parse(body)
        assert [e["cap_identifier"] for e in parsed.entries] == [ids[2], ids[1]]
        status, _, _ = await get(node, "/cap/v1/alerts/ventura/NOTAULID.xml", **node.headers())
        assert status == 404


def test_hostile_text_still_gives_valid_cap() -> None:
    nasty = 'Fin & <script>"x"</script> \ufffe\U0001f6a8 \u202eabc ]]> --> <!-- \t\n ok'
    alert = make_alert(headline=nasty[:140].replace("\n", " ").replace("\t", " "))
    body = render_alert(alert, raw_envelope(alert, key(1)), catalogues=CATALOGUES)
    assert_xsd_valid(body)
    headline = etree.fromstring(body).find(f"{C}info/{C}headline")
    assert headline is not None and "<script>" in (headline.text or "")
