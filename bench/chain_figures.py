"""Issue 29's figures: checkpoints' cost and what they buy, one JSON object.

    python -m bench.chain_figures [--quick] [--rounds 3] [--idle-seconds 60]
                                  [--before COMMIT] [--parts repair idle ingest]

- ``repair``: three real ``avisa run`` nodes, ``checkpoint_every = 4s``: the origin
  publishes and cancels; its alerts reach the far node through a relay node whose link
  to the far node (a proxy in this bench) drops every transaction holding a cancel. The
  far node learns of the cancel from checkpoints (the origin's own, and the relay's
  cosigned copy), waits its grace (half an interval) and fetches it. Seconds from the
  cancel's ``201`` at the origin to ``"state": "cancelled"`` at the far node, each
  round, against the goal of 2 × ``checkpoint_every``.
- ``bytes``: what checkpoints cost on the wire per peer per hour at the default
  ``checkpoint_every`` (60 s), from the real encodings: the envelope, a relayed one
  with four cosignatures, the signed ``Authorization`` header, the request line and
  the other headers aiohttp sends, and the reply.
- ``idle``: ``bench.idle_peers`` (a hub with ten peers, nothing published) for
  ``--idle-seconds``.
- ``ingest``: ``bench.cpu_split`` run in turn (interleaved, ``--rounds`` each) in two
  exported trees: ``before`` = the commit before checkpoints were merged (b4528db),
  ``after`` = this tree's HEAD; each in its own process with its own ``PYTHONPATH`` and
  working directory, so every module (the node and the load generator) is that tree's.

Progress goes to stderr; nothing is asserted. Take figures at a quiet moment and compare
the spread of the rounds, not single numbers (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from bench.harness import SIGHTING, NodeProcess, Trusted, free_port, stopping, wait_until
from bench.idle_peers import measure as idle_measure
from keys.core.signing import NodeKey
from relay.core.checkpoints import make_checkpoint, sign_checkpoint
from relay.core.cosign import MAX_COSIGNATURES, cosign, encode_relayed
from relay.core.envelope import open_envelope
from relay.federation.auth import authorization
from relay.runtime.clock import system_clock

BEFORE = "b4528db"  # the trustlist merge, the parent of the checkpoint merge (ba93d91)
EVERY_S = 4
REPO = Path(__file__).resolve().parent.parent


def _log(text: str) -> None:
    print(f"chain_figures: {text}", file=sys.stderr, flush=True)


# --- repair -----------------------------------------------------------------------------


class LosesCancels:
    """A proxy in front of the far node for the relay's pushes: passes everything but
    transactions holding a cancel, which it answers as accepted and drops."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dropped = 0
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LosesCancels:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "PUT" and request.path.startswith("/federation/v1/send/"):
            payloads = [
                json.loads(base64.b64decode(item["payload"]))
                for item in json.loads(body)["envelopes"]
            ]
            if any(payload["msg_type"] == "cancel" for payload in payloads):
                self.dropped += 1
                results = [{"id": p["id"], "status": "accepted", "reason": ""} for p in payloads]
                return web.json_response({"results": results})
        headers = {
            k: v for k, v in request.headers.items() if k in ("Authorization", "Content-Type")
        }
        assert self._http is not None
        try:
            async with self._http.request(
                request.method,
                URL(self.target + request.raw_path, encoded=True),
                data=body or None,
                headers=headers,
            ) as reply:
                return web.Response(
                    body=await reply.read(), status=reply.status, content_type="application/json"
                )
        except (aiohttp.ClientError, OSError):  # the far node is not up yet
            return web.json_response({"errcode": "AVISA_BENCH_PROXY", "error": "down"}, status=502)


def _every(node: NodeProcess) -> None:
    config = node.data / "avisa.toml"
    config.write_text(config.read_text() + f'\n[federation]\ncheckpoint_every = "{EVERY_S}s"\n')


async def _state(http: aiohttp.ClientSession, node: NodeProcess, alert_id: str) -> str | None:
    async with http.get(f"{node.url}/api/v1/alerts/{alert_id}", headers=node.headers()) as r:
        return str((await r.json())["state"]) if r.status == 200 else None


async def _post(http: aiohttp.ClientSession, node: NodeProcess, path: str, body: object) -> str:
    async with http.post(node.url + path, json=body, headers=node.headers()) as reply:
        answer = await reply.json()
        if reply.status != 201:
            raise SystemExit(f"bench: {path} failed: {reply.status} {answer}")
        return str(answer["id"])


async def repair(rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="avisa-chain-") as tmp:
        return await _repair(Path(tmp), rounds)


async def _repair(root: Path, rounds: int) -> dict[str, Any]:
    origin, relay, far = (NodeProcess(root, name) for name in ("ventura", "ojai", "oxnard"))
    for node in (origin, relay, far):
        _every(node)
    times: list[float] = []
    async with LosesCancels(far.url) as link, aiohttp.ClientSession() as http:
        origin.trust(relay.as_peer(), far.as_peer(forward=False))
        relay.trust(origin.as_peer(forward=False), Trusted(far.network, link.url, far.public_key))
        far.trust(origin.as_peer(forward=False), relay.as_peer(forward=False))
        with stopping([origin, relay, far]):
            for node in (origin, relay, far):
                node.start()
            for node in (origin, relay, far):
                await node.ready(http)
            for n in range(rounds):
                alert_id = await _post(http, origin, "/api/v1/alerts", SIGHTING)
                await wait_until(
                    lambda a=alert_id: _state(http, far, a), 30, "the alert at the far node"
                )
                text = {"en": {"headline": "Withdrawn", "body": ""}}
                await _post(http, origin, f"/api/v1/alerts/{alert_id}/cancel", {"text": text})
                signed = time.perf_counter()

                async def cancelled(a: str = alert_id) -> bool:
                    return await _state(http, far, a) == "cancelled"

                await wait_until(cancelled, 6 * EVERY_S, "the cancel repaired", every=0.01)
                times.append(time.perf_counter() - signed)
                _log(f"repair round {n + 1}: {times[-1]:.2f} s")
            dropped = link.dropped
    return {
        "checkpoint_every_s": EVERY_S,
        "seconds": [round(t, 2) for t in times],
        "max_over_checkpoint_every": round(max(times) / EVERY_S, 2),
        "cancels_dropped_by_the_link": dropped,
    }


# --- bytes ------------------------------------------------------------------------------


def wire_bytes() -> dict[str, Any]:
    origin, witnesses = NodeKey.generate(), [NodeKey.generate() for _ in range(4)]
    now = system_clock()
    raw = sign_checkpoint(make_checkpoint("la-rapid-response", 123456, bytes(32), now), origin)
    _, payload = open_envelope(raw)
    relayed = encode_relayed(raw, [cosign(payload, key, now) for key in witnesses])
    path = "/federation/v1/checkpoints/la-rapid-response"
    header = authorization(origin, "PUT", path, "la-rapid-response", "oc.resilience", now, raw)
    # What aiohttp sends besides: request line, Host, Content-Type, Content-Length,
    # Accept, Accept-Encoding, User-Agent; the reply: status line, headers, the JSON.
    request_overhead = len(f"PUT {path} HTTP/1.1\r\n") + 220 + len(header) + 17
    reply = len(b'{"status":"accepted","reason":""}') + 150
    per_push = len(raw) + request_overhead + reply
    per_relay = len(relayed) + request_overhead + reply
    per_hour = 3600 // 60
    return {
        "envelope_bytes": len(raw),
        f"relayed_with_{MAX_COSIGNATURES}_cosignatures_bytes": len(relayed),
        "authorization_header_bytes": len(header),
        "push_on_the_wire_bytes": per_push,
        "own_per_peer_per_hour_bytes": per_push * per_hour,
        "relayed_per_peer_per_origin_per_hour_bytes": per_relay * per_hour,
    }


# --- ingest A/B ---------------------------------------------------------------------------


def _export(commit: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=REPO, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _cpu_split(tree: Path, seconds: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.cpu_split", "--seconds", str(seconds)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def ingest(rounds: int, seconds: float, before_commit: str = BEFORE) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="avisa-ab-") as tmp:
        root = Path(tmp)
        trees = {
            "before": _export(before_commit, root / "before"),
            "after": _export("HEAD", root / "after"),
        }
        for n in range(rounds):
            for name in ("before", "after") if n % 2 == 0 else ("after", "before"):
                figures = _cpu_split(trees[name], seconds)
                runs[name].append(figures)
                _log(f"ingest {name} round {n + 1}: {figures['alerts_per_s']} alerts/s")

    def summary(items: list[dict[str, Any]]) -> dict[str, Any]:
        rates = [item["alerts_per_s"] for item in items]
        cpu = [item["node_cpu_us_per_alert"] for item in items]
        return {
            "alerts_per_s": rates,
            "alerts_per_s_median": statistics.median(rates),
            "node_cpu_us_per_alert": cpu,
            "main_process_us_per_alert": [item["main_process_us_per_alert"] for item in items],
        }

    return {
        "before_commit": before_commit,
        "before": summary(runs["before"]),
        "after": summary(runs["after"]),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"bytes": wire_bytes()}
    rounds = 1 if args.quick else args.rounds
    if "repair" in args.parts:
        _log("repair")
        figures["repair"] = await repair(rounds)
    if "idle" in args.parts:
        _log("idle")
        figures["idle"] = await idle_measure(5.0 if args.quick else args.idle_seconds)
    if "ingest" in args.parts:
        _log("ingest A/B")
        figures["ingest"] = ingest(rounds, 3.0 if args.quick else 12.0, args.before)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, figures meaningless")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--before", default=BEFORE, help="the commit the ingest A/B compares")
    parser.add_argument(
        "--parts", nargs="+", default=["repair", "idle", "ingest"], help="which figures"
    )
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
