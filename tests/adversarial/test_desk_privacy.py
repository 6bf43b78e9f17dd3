"""A reporter's phone number is in no file and no log line; a tip leaves nothing behind.

Two ``avisa run`` processes on a shared test clock file, logging at debug
level (as ``test_privacy.py``). On ``net-a`` a hotline volunteer enters a tip
with the caller's number through the API, a resident sends one with their
number through the public form, and one more arrives with a number that does
not parse. The first tip is claimed, confirmed, published (its alert reaches
``net-b``; a published tip is never closed); the second is claimed and closed.

Then every file of both data directories (database, WAL, shared memory and
every other file, so free pages too) and both logs are searched for every
number in every form it could take: as typed, E.164, digits alone, with each
separator, URL-encoded, UTF-16 and UTF-32, hex, base64 at all three
alignments, and unkeyed SHA-256 / BLAKE2b digests (a guessable hash is the
number). None may be found while the nodes run, nor after they stop. The
control: the sealed contact column was filled while the tip was open.

Then the clock moves past ``[desk] retention``: the tips' own words (marker
words in text, place, vehicles, note) are gone from the database and its WAL
as well. ``net-b`` never held any of them but the place, which the published
alert carries as its area label.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, quote_plus

import aiohttp
import pytest

from relay.runtime.clock import TEST_CLOCK_ENV
from tests.adversarial.kit import figure
from tests.adversarial.test_privacy import DebugProc, b64_forms
from tests.helpers import T0, report_token, wait_for
from tests.test_federation_process import (
    Proc,
    api,
    free_port,
    set_clock,
    setup_node,
    tick,
    trust_peer,
)

pytestmark = pytest.mark.slow
NUMBERS = {
    "hotline caller": ("(805) 555-0143", "8055550143"),
    "form reporter": ("805.555.0178", "8055550178"),
    "refused": ("+1 805 555 01999999999", "805555019"),
}
MARKERS = [b"Axolotl3Text", b"Tapir3Place", b"Okapi3Vehicles", b"Numbat3Note", b"Ibis3Form"]


def number_forms(typed: str, national: str) -> list[bytes]:
    e164 = "+1" + national
    spelled = {
        typed,
        e164,
        e164[1:],
        national,
        f"{national[:3]}-{national[3:6]}-{national[6:]}",
        f"{national[:3]}.{national[3:6]}.{national[6:]}",
        f"{national[:3]} {national[3:6]} {national[6:]}",
        f"({national[:3]}) {national[3:6]}-{national[6:]}",
        f"{national[3:6]}-{national[6:]}",
    }
    forms: list[bytes] = []
    for text in spelled:
        raw = text.encode()
        forms += [raw, quote(text).encode(), quote_plus(text).encode(), raw.hex().encode()]
        forms += [text.encode(codec) for codec in ("utf-16-le", "utf-16-be", "utf-32-le")]
        forms += [form for form in b64_forms(raw) if len(form) >= 8]
        for digest in (hashlib.sha256(raw).digest(), hashlib.blake2b(raw).digest()):
            forms += [digest, digest.hex().encode()]
    return forms


def every_file(proc: Proc) -> dict[str, bytes]:
    found = {f"{proc.data.name}.log": proc.log.read_bytes()}
    for path in proc.data.rglob("*"):
        if path.is_file():
            found[f"{proc.data.name}/{path.name}"] = path.read_bytes()
    return found


def search(procs: list[Proc], needles: dict[str, list[bytes]]) -> list[str]:
    hits = []
    for proc in procs:
        for name, data in every_file(proc).items():
            for label, forms in needles.items():
                if any(form in data for form in forms):
                    hits.append(f"{name}: {label}")
    return hits


def query(proc: Proc, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{proc.data / 'avisa.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_no_trace_of_a_reporter_or_a_tip(tmp_path: Path, procs: list[Proc]) -> None:
    clock_file = tmp_path / "clock"
    set_clock(clock_file, T0)
    env = {**os.environ, TEST_CLOCK_ENV: str(clock_file)}
    port_a, port_b = free_port(), free_port()
    data_a, data_b = setup_node(tmp_path, "net-a", port_a), setup_node(tmp_path, "net-b", port_b)
    for data in (data_a, data_b):
        config = data / "avisa.toml"
        config.write_text(
            config.read_text().replace('purge_interval = "10m"', 'purge_interval = "1s"')
        )
    trust_peer(data_a, data_b, "net-b", port_b)
    trust_peer(data_b, data_a, "net-a", port_a)
    a, b = DebugProc(data_a, port_a, env), DebugProc(data_b, port_b, env)
    procs += [a, b]
    await a.start()
    await b.start()

    async with aiohttp.ClientSession() as http:
        tip = {
            "text": "Axolotl3Text: two vans",
            "where": {"label": "Tapir3Place", "geohash": "9q4gch", "codes": ["fips:06111"]},
            "vehicles": "Okapi3Vehicles",
            "contact": NUMBERS["hotline caller"][0],
        }
        first = (await api(http, a, "POST", "/api/v1/tips", json=tip))["id"]
        form = {"text": "Ibis3Form agents", "place": "Tapir3Place", "zip": "93030",
                "contact": NUMBERS["form reporter"][0],
                "t": await report_token(http, a.url)}  # fmt: skip
        async with http.post(a.url + "/report", data=form) as reply:
            assert reply.status == 200
        async with http.post(
            a.url + "/api/v1/tips",
            json={**tip, "contact": NUMBERS["refused"][0]},
            headers={"Authorization": f"Bearer {a.token}"},
        ) as reply:
            assert reply.status == 400
            assert "555" not in await reply.text()
        listed = await api(http, a, "GET", "/api/v1/tips")
        second = next(t["id"] for t in listed["tips"] if t["channel"] == "web")
        sealed = query(a, "SELECT count(*) FROM tips WHERE contact IS NOT NULL")
        assert sealed == [(2,)]  # the control: both numbers were kept, sealed

        await api(http, a, "POST", f"/api/v1/tips/{first}/claim", json={"note": "Numbat3Note"})
        await api(http, a, "POST", f"/api/v1/tips/{first}/outcome", json={"outcome": "confirmed"})
        published = await api(http, a, "POST", f"/api/v1/tips/{first}/publish", json={})
        await api(http, a, "POST", f"/api/v1/tips/{second}/claim", json={})
        await api(http, a, "POST", f"/api/v1/tips/{second}/close", json={})

        async def b_has_it() -> bool:
            async with http.get(
                f"{b.url}/api/v1/alerts/{published['id']}",
                headers={"Authorization": f"Bearer {b.token}"},
            ) as reply:
                return reply.status == 200

        await wait_for(b_has_it, timeout=30, what="net-b received the alert")
        assert query(a, "SELECT count(*) FROM tips WHERE contact IS NOT NULL") == [(0,)]

        numbers = {name: number_forms(*typed) for name, typed in NUMBERS.items()}
        words = {marker.decode(): [marker, *b64_forms(marker)] for marker in MARKERS}
        numbers_running = search([a, b], numbers)
        words_before = search([a], words)
        assert any("avisa.db" in hit for hit in words_before), words_before  # the control
        # The place becomes the alert's area label (the publisher may change it): it
        # travels with the alert; the reporter's words, vehicles and notes do not.
        words_on_b = search([b], {k: v for k, v in words.items() if k != "Tapir3Place"})

        set_clock(clock_file, T0 + timedelta(days=8))

        def purged() -> bool:
            tick(clock_file)  # the purge loop runs on this clock: keep it moving
            if query(a, "SELECT count(*) FROM tips") != [(0,)]:
                return False
            wal = a.data / "avisa.db-wal"
            return not wal.exists() or wal.stat().st_size == 0

        await wait_for(purged, timeout=60, what="tips purged and the WAL truncated")
        words_after = search([a], words)
    a.stop()
    b.stop()
    numbers_stopped = search([a, b], numbers)
    words_stopped = [hit for hit in search([a], words) if not hit.endswith(".log")]
    logs = a.log.read_bytes() + b.log.read_bytes()
    figure(
        "desk_privacy",
        number_forms=sum(len(forms) for forms in numbers.values()),
        numbers_found_running=len(numbers_running),
        numbers_found_stopped=len(numbers_stopped),
        tip_words_on_peer=len(words_on_b),
        tip_words_after_retention=len([h for h in words_after if not h.endswith(".log")]),
        tip_words_in_logs=len([h for h in words_after + words_stopped if h.endswith(".log")]),
        log_lines=logs.count(b"\n"),
    )
    assert not numbers_running, numbers_running
    assert not numbers_stopped, numbers_stopped
    assert not words_on_b, words_on_b
    assert not [h for h in words_after if h.endswith(".log")], words_after
    assert not [h for h in words_after if not h.endswith(".log")], words_after
    assert not words_stopped, words_stopped
    assert not re.search(rb"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9.])", logs)
