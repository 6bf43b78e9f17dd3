"""Median time from ``accepted`` at the node to the event in a member's sync.

    python -m bench.matrix_latency [--alerts 30] [--encrypted]

Starts a real Synapse (installed into ``.cache/`` on first use, like the
tests), a node with a Matrix bridge on the real clock, and a second user
syncing with matrix-nio. Each alert is published through the node's own
pipeline; the clock starts when the pipeline returns (the alert is accepted
and on disk, consumers woken) and stops when the second user's sync callback
sees the event (decrypted, in an encrypted room). Alerts go one at a time, so
this is the latency of one alert on an idle node, not throughput.

Prints one JSON object on stdout: median, p90, min and max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bridges.matrix.localsynapse import launch
from bridges.runner import start_bridges
from relay.cli import datadir
from relay.core import drafts
from relay.core.model import Area, Text
from relay.runtime import log
from relay.runtime.node import Node
from relay.storage.files import write_private
from tests.matrix.reader import Reader


def _route(homeserver: str, bot: str, room: str, encrypted: bool) -> str:
    return f"""
[[bridges.matrix]]
homeserver = "{homeserver}"
user_id = "{bot}"
password_file = "matrix.password"
[[bridges.matrix.routes]]
room = "{room}"
languages = ["es", "en"]
encrypted = {"true" if encrypted else "false"}
"""


async def _publish(node: Node, n: int) -> str:
    draft = drafts.Draft(
        kind="sighting",
        certainty="confirmed",
        area=Area(label="Colonia, Oxnard", geohash="9q4gch", radius_m=500, codes=["fips:06111"]),
        text={
            "es": Text(headline=f"ICE en el parque #{n}", body="Verificado."),
            "en": Text(headline=f"ICE at the park #{n}", body="Verified."),
        },
        agencies=["ice"],
        expires_in="4h",
    )
    now = node.clock()
    alert_id = f"{node.network}/{drafts.ulid(now, os.urandom(10))}"
    outcome, _ = await node.pipeline.publish(
        lambda seq: drafts.build(
            draft,
            network=node.network,
            seq=seq,
            alert_id=alert_id,
            now=now,
            max_lifetime=node.trust.policy.max_lifetime,
        ),
        node.key,
    )
    assert outcome.status == "accepted"
    return alert_id


async def measure(base: Path, alerts: int, encrypted: bool) -> dict[str, Any]:
    homeserver, install_seconds = launch(base / "synapse")
    reader: Reader | None = None
    node: Node | None = None
    try:
        tag = uuid.uuid4().hex[:8]
        owner = await homeserver.register(f"owner{tag}", admin=True)
        bot = await homeserver.register(f"avisa{tag}")
        member = await homeserver.register(f"member{tag}")
        alias = f"bench{tag}"
        room_id = await homeserver.create_room(owner, alias, encrypted=encrypted)
        reader = Reader(homeserver, member, base / "reader")
        await reader.start()
        await reader.join(room_id)

        init = datadir.initialize(base / "node", "ventura", "127.0.0.1:0")
        config = init.data_dir / "avisa.toml"
        route = _route(homeserver.url, bot.user_id, f"#{alias}:localhost", encrypted)
        config.write_text(config.read_text() + route)
        write_private(init.data_dir / "matrix.password", bot.password.encode())
        node = Node.load(init.data_dir)
        await node.start()
        node.bridges = start_bridges(node)

        samples = []
        for n in range(alerts + 1):  # the first one warms up login, join and key sharing
            alert_id = await _publish(node, n)
            accepted = time.perf_counter()
            seen = await reader.wait_post(room_id, alert_id, timeout=120)
            if n:
                samples.append((seen.at - accepted) * 1000)
        samples.sort()
        return {
            "figure": "matrix_latency_accepted_to_member_sync",
            "encrypted": encrypted,
            "alerts": len(samples),
            "median_ms": round(statistics.median(samples), 1),
            "p90_ms": round(statistics.quantiles(samples, n=10)[-1], 1),
            "min_ms": round(samples[0], 1),
            "max_ms": round(samples[-1], 1),
            "synapse_install_s": round(install_seconds, 1),
            "synapse_startup_s": round(homeserver.startup_seconds[0], 1),
        }
    finally:
        if node is not None:
            await node.stop()
        if reader is not None:
            await reader.stop()
        homeserver.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=30)
    parser.add_argument("--encrypted", action="store_true", help="an end-to-end encrypted room")
    args = parser.parse_args(argv)
    log.configure("warning", json_output=True)  # stdout is for the figure alone
    with tempfile.TemporaryDirectory(prefix="avisa-bench-") as tmp:
        result = asyncio.run(measure(Path(tmp), args.alerts, args.encrypted))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
