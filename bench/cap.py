"""``python -m bench.cap``: the CAP bridge's figures (issue 19) as one JSON object.

    python -m bench.cap [--alerts 1000] [--xsd PATH] [--quick]

- ``validated``: messages rendered by ``bridges.cap.render`` (every kind,
  certainty and message type, one to three languages) that validate against
  the OASIS ``cap12.xsd`` (the copy in ``tests/cap/fixtures``), out of how
  many;
- ``feed``: rendering the Atom feed of N active alerts, against encoding the
  same alerts as the local API's JSON (``msgspec``, as ``GET /api/v1/alerts``
  does), best of several rounds each, and their ratio;
- ``import``: a real node (SQLite in a temporary directory) polls a local
  aiohttp server's Atom index of N entries, each linking to a CAP message on
  the same server (the usual layout of public feeds: N + 1 GETs), and
  files N tips at a counting desk (the importer alone); alerts per second.
  ``embedded`` is the same with each message inside its entry (one GET);
  ``linked_real_desk`` files at the node's real desk (one durable commit
  per tip, as the desk writes them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from bridges.cap.export import CapExport
from bridges.cap.importer import SourcePoller
from bridges.cap.render import ATOM_NS, CAP_NS, render_alert, render_entry
from keys.core.signing import NodeKey
from relay.cli import datadir
from relay.core.bridgeconfig import CapSource
from relay.core.drafts import ulid
from relay.core.envelope import sign
from relay.core.model import Alert, Area, Text, encode_alert, encode_envelope
from relay.runtime.node import Node
from relay.storage import catalogues
from relay.storage.store import StoredAlert

KINDS = ("sighting", "operation", "checkpoint", "workplace", "rumor", "all_clear", "notice")
CERTAINTIES = ("confirmed", "unconfirmed", "false")
WORDS = catalogues.load(("es", "en"))
DEFAULT_XSD = Path(__file__).resolve().parents[1] / "tests" / "cap" / "fixtures" / "cap12.xsd"


def make_alerts(count: int, now: datetime) -> list[tuple[Alert, bytes]]:
    key = NodeKey.from_seed(b"\x07" * 32)
    made: list[tuple[Alert, bytes]] = []
    for n in range(count):
        sent = now - timedelta(seconds=count - n)
        msg_type = ("alert", "update", "cancel")[n % 3] if n >= 3 else "alert"
        texts = {"es": Text(f"Operativo {n} en Colonia", "Verificado en el sitio.", "No abra.")}
        if n % 2:
            texts["en"] = Text(f"Operation {n} at Colonia", "Verified on site.")
        if n % 5 == 0:
            texts["zh"] = Text(f"行动 {n}", "已核实。")
        alert = Alert(
            id=f"ventura/{ulid(sent, n.to_bytes(10, 'big'))}",
            network="ventura",
            seq=n + 1,
            msg_type=msg_type,  # type: ignore[arg-type]
            references=[made[n - 1][0].id] if msg_type != "alert" else [],
            kind=KINDS[n % len(KINDS)],  # type: ignore[arg-type]
            certainty=CERTAINTIES[n % 3],  # type: ignore[arg-type]
            observed_at=sent,
            sent_at=sent,
            expires_at=now + timedelta(hours=4),
            area=Area("Colonia & <Oxnard>", "9q4gch", 500, ["fips:06111", "zip:93030"]),
            agencies=["ice", "cbp"],
            text=texts,
        )
        made.append((alert, encode_envelope(sign(encode_alert(alert), key))))
    return made


def validated(alerts: list[tuple[Alert, bytes]], xsd: Path) -> dict[str, Any]:
    if not xsd.is_file():
        return {"validated": None, "of": len(alerts), "note": f"no schema at {xsd}"}
    from lxml import etree

    schema = etree.XMLSchema(etree.parse(str(xsd)))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    good = sum(
        bool(schema.validate(etree.fromstring(render_alert(a, e, catalogues=WORDS), parser)))
        for a, e in alerts
    )
    return {"validated": good, "of": len(alerts)}


def best_ms(work: Any, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 3)


class _Node:
    """What ``CapExport.render_feed`` reads: the config and the words."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.catalogues = WORDS


def feed_figures(alerts: list[tuple[Alert, bytes]], now: datetime, rounds: int) -> dict[str, Any]:
    from relay.core.config import parse, render

    export = CapExport(_Node(parse(render("ventura", "127.0.0.1:8470", ""))))  # type: ignore[arg-type]
    plain = [alert for alert, _ in alerts]
    stored = [
        StoredAlert(alert, envelope, [], "active", "local", now, None, n)
        for n, (alert, envelope) in enumerate(alerts)
    ]
    encoder = msgspec.json.Encoder()
    atom_ms = best_ms(lambda: export.render_feed(plain, "https://avisa.example", now), rounds)
    json_ms = best_ms(lambda: encoder.encode({"alerts": [s.view(now) for s in stored]}), rounds)
    body = export.render_feed(plain, "https://avisa.example", now).body
    return {
        "alerts": len(alerts),
        "atom_ms": atom_ms,
        "json_ms": json_ms,
        "ratio_atom_to_json": round(atom_ms / json_ms, 2),
        "atom_bytes": len(body),
    }


class CountingDesk:
    def __init__(self) -> None:
        self.filed = 0

    async def submit(self, tip: Any, **_: Any) -> str:
        self.filed += 1
        return f"T{self.filed}"

    async def update_from_source(self, source_ref: str, tip: Any) -> bool:
        return True

    async def close_from_source(self, source_ref: str, note: str) -> bool:
        return True


def atom_index(alerts: list[tuple[Alert, bytes]], base: str, embedded: bool) -> bytes:
    entries = []
    for alert, envelope in alerts:
        entry = render_entry(alert, f"{base}/m/{alert.id}.xml", WORDS.words())
        if embedded:
            message = render_alert(alert, envelope, catalogues=WORDS).split(b"?>", 1)[1].decode()
            entry = entry.replace(
                "</entry>", f'<content type="text/xml">{message}</content></entry>'
            )
        entries.append(entry)
    return (
        f'<feed xmlns="{ATOM_NS}" xmlns:cap="{CAP_NS}">'
        "<id>x</id><title>t</title><updated>2026-01-01T00:00:00Z</updated>"
        + "".join(entries)
        + "</feed>"
    ).encode()


async def import_rate(
    alerts: list[tuple[Alert, bytes]], embedded: bool, real_desk: bool = False
) -> dict[str, Any]:
    # Only Alerts: each becomes one tip (updates and cancels would need their originals).
    fresh = [(a, e) for a, e in alerts if a.msg_type == "alert"]
    messages = {f"/m/{a.id}.xml": render_alert(a, e, catalogues=WORDS) for a, e in fresh}
    app = web.Application()
    state: dict[str, bytes] = {}

    async def serve(request: web.Request) -> web.Response:
        body = state["index"] if request.path == "/index.atom" else messages.get(request.path)
        return web.Response(body=body, status=200 if body else 404)

    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    state["index"] = atom_index(fresh, base, embedded)
    with tempfile.TemporaryDirectory() as tmp:
        result = datadir.initialize(Path(tmp) / "b", "oxnard", "127.0.0.1:0")
        config = result.data_dir / "avisa.toml"  # room for 1,000 embedded messages
        # one source files every tip here: lift its per-sender caps (3 an hour by default)
        text = re.sub(
            r"(?m)^(tips_per_sender_(hour|day)) = [0-9]+", r"\1 = 100000", config.read_text()
        )
        config.write_text(text + "\n[bridges.cap]\nmax_document_bytes = 16777216\n")
        node = Node.load(result.data_dir)
        await node.start()
        counting = CountingDesk()
        import aiohttp

        async with aiohttp.ClientSession() as http:
            desk = node.desk if real_desk else counting
            poller = SourcePoller(node, desk, CapSource(url=base + "/index.atom"), lambda: http)
            start = time.perf_counter()
            await poller.poll()
            seconds = time.perf_counter() - start
        filed = len(await node.desk.listing(limit=10_000)) if real_desk else counting.filed
        await node.stop()
    await runner.cleanup()
    return {
        "entries": len(fresh),
        "filed": filed,
        "seconds": round(seconds, 3),
        "alerts_per_s": round(filed / seconds, 1),
        "index_bytes": len(state["index"]),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    count = 30 if args.quick else args.alerts
    alerts = make_alerts(count, now)
    figures: dict[str, Any] = {"messages": validated(alerts, args.xsd)}
    figures["feed"] = feed_figures(alerts, now, 3 if args.quick else 15)
    # The import figure wants N Alerts: make N fresh ones (no updates or cancels).
    only_alerts = [(a, e) for a, e in make_alerts(count * 3, now) if a.msg_type == "alert"][:count]
    print("importing…", file=sys.stderr)
    figures["import_linked"] = await import_rate(only_alerts, embedded=False)
    figures["import_embedded"] = await import_rate(only_alerts, embedded=True)
    figures["import_linked_real_desk"] = await import_rate(only_alerts, False, real_desk=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cap", description=__doc__)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--xsd", type=Path, default=DEFAULT_XSD)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks it runs")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
