"""``avisa demo``: a first, single-node demonstration.

Creates a throw-away node in a temporary directory, starts it on a free
loopback port, publishes one confirmed sighting through the local API, shows
it listed as active, and (unless ``--scenario-only``) keeps serving until
Ctrl-C so the operator can try the API with the printed token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

import aiohttp

from relay import datadir, log
from relay.app import serve
from relay.node import Node

SIGHTING = {
    "kind": "sighting",
    "certainty": "confirmed",
    "area": {
        "label": "Oxnard, Colonia neighborhood",
        "geohash": "9q4gch",
        "radius_m": 800,
        "codes": ["fips:06111"],
    },
    "agencies": ["ice"],
    "text": {
        "es": {
            "headline": "ICE confirmado cerca de la escuela Ramona",
            "body": "Verificado por el equipo de respuesta a las 7:40.",
        },
        "en": {
            "headline": "ICE confirmed near Ramona school",
            "body": "Verified by the rapid-response team at 7:40.",
        },
    },
    "expires_in": "4h",
}


async def _play(workdir: Path, keep_running: bool) -> bool:
    result = datadir.initialize(workdir / "ventura", "ventura", "127.0.0.1:0")
    node = Node.load(result.data_dir)
    await node.start()
    runner, port = await serve(node, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {result.token}"}
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            print(f"[ventura] node up at {base}, fingerprint {result.fingerprint}")
            async with http.post(f"{base}/api/v1/alerts", json=SIGHTING) as reply:
                published = await reply.json()
            print(f"[ventura] published {published['id']} (signed, seq 1)")
            async with http.get(f"{base}/api/v1/alerts?active=true") as reply:
                listed = (await reply.json())["alerts"]
            ok = [item["alert"]["id"] for item in listed] == [published["id"]]
            print(f"[ventura] active alerts: {json.dumps([i['alert']['id'] for i in listed])}")
            if keep_running:
                print(f"\nAPI: {base}   token: {result.token}\nCtrl-C to stop.")
                await asyncio.Event().wait()
            return ok
    finally:
        await runner.cleanup()
        await node.stop()


def main(args: argparse.Namespace) -> int:
    log.configure("warning")
    with tempfile.TemporaryDirectory(prefix="avisa-demo-") as tmp:
        workdir = args.workdir or Path(tmp)
        try:
            ok = asyncio.run(_play(workdir, keep_running=not args.scenario_only))
        except KeyboardInterrupt:
            return 0
    print("scenario: ok" if ok else "scenario: FAILED")
    return 0 if ok else 1
