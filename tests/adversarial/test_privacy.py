"""Privacy at rest and in logs: after retention, nothing of an alert is left to seize.

Two ``avisa run`` processes on a shared test clock file (``AVISA_TEST_CLOCK_FILE``),
logging at debug level to files: ``net-a`` publishes alerts (one with a
2,000-character body, so its envelope spills into overflow pages; one updated,
one cancelled, one outside net-b's trust so it waits in net-b's review queue)
and forwards them to ``net-b``. Every alert carries its own marker words in
headline, body, instruction and label, its own geohash, and a phone number
in its body.

Before retention the markers are found in each node's database or WAL (the
control: the search works). Then the clock moves past expiry plus retention,
the purge runs, and the raw bytes of ``avisa.db``, ``avisa.db-wal``,
``avisa.db-shm`` and both logs are searched for every marker: as text, as
base64 at all three alignments (the store keeps payloads base64-encoded
inside the envelope) and as windows of each payload's base64. None may be
found, with the nodes running and after they stop.

The logs of the whole run are also searched for both operator tokens, both
node keys (seed and public key, hex and base64), any IPv4 address and any
phone number.
"""

from __future__ import annotations

import base64
import os
import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from keys.store import nodekey
from relay.runtime.clock import TEST_CLOCK_ENV
from tests.adversarial.kit import figure
from tests.helpers import T0, wait_for
from tests.test_api import DRAFT
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
PHONE = "+1 (805) 555-0143"
_IPV4 = re.compile(rb"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9.])")
# North American with separators, or E.164; digits run together (ids, times) are not phones.
_PHONE = re.compile(rb"\(?[0-9]{3}\)?[ .-][0-9]{3}[ .-][0-9]{4}(?![0-9])|\+[0-9]{10,15}(?![0-9])")


class DebugProc(Proc):
    """``avisa run`` logging everything it would log at debug level."""

    log_level = "debug"


def b64_forms(marker: bytes) -> list[bytes]:
    """The marker as it reads inside base64 text, whatever its offset mod 3."""
    forms = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + marker)
        skip = (shift * 4 + 2) // 3 + 1  # characters touched by the padding prefix
        forms.append(encoded[skip:-4])
    return forms


def markers_of(n: int) -> dict[str, bytes]:
    return {
        "headline": f"Kestrel{n}Headline".encode(),
        "body": f"Marmoset{n}Body".encode(),
        "instruction": f"Pangolin{n}Instruction".encode(),
        "label": f"Quokka{n}Label".encode(),
    }


GEOHASHES = ["9q4gchx7u", "9q4gchmw2", "9q4gcjb3e", "dr5ru7vkq"]


def draft_for(n: int) -> dict[str, Any]:
    words = {k: v.decode() for k, v in markers_of(n).items()}
    body = f"{words['body']} Hotline {PHONE}. " + ("Verified on site. " * 120 if n == 0 else "")
    codes = ["fips:36061"] if n == 3 else ["fips:06111"]  # 3 is outside net-b's trust
    return {
        **DRAFT,
        "area": {**DRAFT["area"], "label": words["label"], "geohash": GEOHASHES[n], "codes": codes},
        "text": {
            "en": {
                "headline": words["headline"],
                "body": body[:2000],
                "instruction": words["instruction"],
            }
        },
    }


def needles(alerts: list[tuple[int, bytes]]) -> dict[str, list[bytes]]:
    """What must not be found: per marker, every form it can take at rest."""
    found: dict[str, list[bytes]] = {}
    for n, payload in alerts:
        for name, marker in markers_of(n).items():
            found[f"alert {n} {name}"] = [marker, *b64_forms(marker)]
        geohash = GEOHASHES[n].encode()
        found[f"alert {n} geohash"] = [geohash, *b64_forms(b'"' + geohash + b'"')]
        encoded = base64.b64encode(payload)
        windows = [
            encoded[i : i + 32] for i in range(0, len(encoded) - 32, max(1, len(encoded) // 6))
        ]
        found[f"alert {n} payload base64"] = windows
    return found


def files_of(proc: Proc) -> dict[str, bytes]:
    result = {"log": proc.log.read_bytes()}
    for suffix in ("", "-wal", "-shm"):
        path = proc.data / f"avisa.db{suffix}"
        result[path.name] = path.read_bytes() if path.exists() else b""
    return result


def search(procs: list[Proc], what: dict[str, list[bytes]]) -> list[str]:
    hits = []
    for proc in procs:
        for name, data in files_of(proc).items():
            for label, forms in what.items():
                if any(form and form in data for form in forms):
                    hits.append(f"{proc.data.name}/{name}: {label}")
    return hits


def alert_count(proc: Proc) -> int:
    conn = sqlite3.connect(f"file:{proc.data / 'avisa.db'}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM alerts").fetchone()[0])
    finally:
        conn.close()


async def test_nothing_of_an_alert_outlives_retention(tmp_path: Path, procs: list[Proc]) -> None:
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
        published = []
        for n in range(4):
            body = await api(http, a, "POST", "/api/v1/alerts", json=draft_for(n))
            published.append((n, base64.b64decode(body["envelope"]["payload"])))
        first_id = (await api(http, a, "GET", "/api/v1/alerts?limit=10"))["alerts"][-1]["alert"][
            "id"
        ]
        cancel = {"text": {"en": {"headline": "Kestrel9Headline", "body": "Marmoset9Body"}}}
        await api(http, a, "POST", f"/api/v1/alerts/{first_id}/cancel", json=cancel)
        # Some refused input carrying a phone number, which must not reach a log.
        async with http.post(
            a.url + "/api/v1/alerts",
            json={**draft_for(1), "reporter_phone": PHONE},
            headers={"Authorization": f"Bearer {a.token}"},
        ) as reply:
            assert reply.status == 400
        async with http.get(
            a.url + "/api/v1/alerts", headers={"Authorization": f"Bearer {PHONE}"}
        ) as reply:
            assert reply.status == 401

        async def b_has_them() -> bool:
            listed = await api(http, b, "GET", "/api/v1/alerts?limit=100")
            held = await api(http, b, "GET", "/api/v1/held")
            return len(listed["alerts"]) + len(held["held"]) >= 5

        await wait_for(b_has_them, timeout=30, what="net-b received everything")

        what = needles(published)
        what["cancel text"] = [b"Kestrel9Headline", *b64_forms(b"Kestrel9Headline")]
        before = search([a, b], what)
        for n in range(4):
            assert any(f"alert {n} headline" in hit for hit in before), ("control", n, before)

        set_clock(clock_file, T0 + timedelta(days=8))

        def purged_and_folded() -> bool:
            tick(clock_file)  # the purge loops run on this clock: keep it moving
            if alert_count(a) or alert_count(b):
                return False
            wal_sizes = [(p.data / "avisa.db-wal") for p in (a, b)]
            return all(not w.exists() or w.stat().st_size == 0 for w in wal_sizes)

        await wait_for(purged_and_folded, timeout=60, what="alerts purged and the WAL truncated")
        running = search([a, b], what)
    a.stop()
    b.stop()
    stopped = search([a, b], what)

    secrets: dict[str, list[bytes]] = {}
    for proc in (a, b):
        token = proc.token.encode()
        key = nodekey.load(proc.data / "node.key")
        seed, public = bytes(key.signing_key), key.public_key
        secrets[f"{proc.data.name} token"] = [token, token[6:30]]
        secrets[f"{proc.data.name} key"] = [
            seed.hex().encode(),
            base64.b64encode(seed),
            public.hex().encode(),
            base64.b64encode(public),
        ]
    logs = a.log.read_bytes() + b.log.read_bytes()
    leaked = [name for name, forms in secrets.items() if any(f in logs for f in forms)]
    addresses = _IPV4.findall(logs)
    phones = _PHONE.findall(logs)
    figure(
        "privacy",
        markers=len(what),
        found_before_retention=len(before),
        found_after_retention_running=len(running),
        found_after_stop=len(stopped),
        log_lines=logs.count(b"\n"),
        secrets_in_logs=len(leaked),
        ip_addresses_in_logs=len(addresses),
        phone_numbers_in_logs=len(phones),
    )
    assert not running, running
    assert not stopped, stopped
    assert not leaked, leaked
    assert not addresses, addresses[:5]
    assert not phones, phones[:5]
