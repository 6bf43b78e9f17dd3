"""Tools the adversarial suite shares: a target node with a trusted peer, raw HTTP, figures.

``Target`` is one real node (real SQLite file, real aiohttp server on
127.0.0.1:0, a ``FakeClock``) that trusts one peer network, ``net-a``, whose
key the test holds, so the test can speak for that peer: sign federation
requests and alerts exactly as a (possibly compromised) peer would. The
peer's URL is a ``QuietPeer``: a real HTTP server that offers no catch-up
and no key document (404), and the node does not forward to it, so once the
link's start-up calls have been answered (``target_node`` waits for them) no
background task writes to the store while a test compares dumps.

``raw_exchange`` speaks HTTP/1.1 over a plain socket, for what a well-behaved
client library will not send: bodies that trickle, bodies that keep coming
after the server answered, bytes that are not what ``Content-Length`` says.

``figure`` prints one JSON line per measured figure (and appends it to the
file named by ``AVISA_FIGURES``), which is where docs/security.md's numbers
come from.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from keys.core.keyring import KeyEntry
from keys.core.signing import NodeKey
from relay.core.policy import PeerPolicy
from relay.federation.auth import authorization
from relay.runtime.clock import FakeClock
from relay.storage import trust
from tests.fedkit import Member, members
from tests.helpers import key, wait_for

PEER = "net-a"
PEER_KEY = key(31)
TARGET = "net-b"
NOWHERE = "http://127.0.0.1:9"  # nothing listens: the peer is only a key here


def figure(name: str, **values: Any) -> None:
    line = json.dumps({"figure": name, **values}, sort_keys=True)
    print(f"\nFIGURE {line}")
    path = os.environ.get("AVISA_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


def txn(*raws: bytes) -> bytes:
    return b'{"envelopes":[' + b",".join(raws) + b"]}"


def db_dump(path: Path) -> list[str]:
    """Every row of every table (sequences included), as SQL text."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def table_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT * FROM {table}").fetchall()
    finally:
        conn.close()


@dataclass
class Target:
    """A node, the peer it trusts, and how to speak as that peer."""

    member: Member
    peer_key: NodeKey = PEER_KEY

    @property
    def node(self) -> Any:
        return self.member.node

    @property
    def port(self) -> int:
        return int(self.member.url.rsplit(":", 1)[1])

    def dump(self) -> list[str]:
        return db_dump(self.node.db.path)

    def fed_headers(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        signer: NodeKey | None = None,
        origin: str = PEER,
    ) -> dict[str, str]:
        header = authorization(
            signer or self.peer_key, method, path, origin, TARGET, self.node.clock(), body
        )
        return {"Authorization": header, "Content-Type": "application/json"}

    async def fed(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        signer: NodeKey | None = None,
        origin: str = PEER,
    ) -> tuple[int, bytes]:
        headers = self.fed_headers(method, path, body, signer=signer, origin=origin)
        async with self.member.http.request(
            method, self.member.url + path, data=body or None, headers=headers
        ) as reply:
            return reply.status, await reply.read()

    async def api(
        self, method: str, path: str, body: bytes | None = None, **extra: str
    ) -> tuple[int, bytes]:
        headers = {**self.member.headers(), "Content-Type": "application/json", **extra}
        async with self.member.http.request(
            method, self.member.url + path, data=body, headers=headers
        ) as reply:
            return reply.status, await reply.read()

    async def healthy(self) -> bool:
        async with self.member.http.get(self.member.url + "/healthz") as reply:
            return reply.status == 200


class QuietPeer:
    """The far side of a peer that answers every call with a 404 (no catch-up, no keys)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.seen.append(request.path)
        return web.json_response({"errcode": "AVISA_NOT_FOUND", "error": "no"}, status=404)


async def trust_peer(
    member: Member,
    network: str,
    peer_key: NodeKey,
    *,
    url: str = NOWHERE,
    speaks_for: tuple[str, ...] = ("fips:06",),
    **policy: Any,
) -> None:
    record = trust.PeerRecord(
        network,
        url,
        (KeyEntry(network, peer_key.public_key),),
        PeerPolicy(network=network, speaks_for=speaks_for, **policy),
    )
    await member.node.db.write(lambda conn: trust.save_peer(conn, record, member.node.clock()))
    await member.node.reload_trust()


@asynccontextmanager
async def target_node(
    tmp_path: Path,
    clock: FakeClock,
    edit_config: Any = None,
    extra_peers: dict[str, NodeKey] | None = None,
    **peer_policy: Any,
) -> AsyncIterator[Target]:
    """The target node, trusting ``net-a`` (and ``extra_peers``), each behind a QuietPeer."""
    peers = {PEER: PEER_KEY, **(extra_peers or {})}
    quiet = {network: QuietPeer() for network in peers}
    for far_side in quiet.values():
        await far_side.start()
    try:
        async with members(tmp_path, clock, [TARGET], edit_config) as net:
            target = Target(net[TARGET])
            for network, peer_key in peers.items():
                policy = {"forward": False, **(peer_policy if network == PEER else {})}
                await trust_peer(target.member, network, peer_key, url=quiet[network].url, **policy)

            def answered() -> bool:
                wanted = {"/federation/v1/alerts", "/federation/v1/keys"}
                return all(wanted <= set(far_side.seen) for far_side in quiet.values())

            await wait_for(answered, timeout=20, what="the node's start-up calls to its peers")
            yield target
    finally:
        for far_side in quiet.values():
            await far_side.stop()


# --- raw HTTP -------------------------------------------------------------------


@dataclass(frozen=True)
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


def _parse_reply(data: bytes, started: float) -> RawReply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(body)))
    return RawReply(status, headers, body[:length], time.monotonic() - started)


async def raw_exchange(
    port: int,
    head: bytes,
    body: Iterable[bytes] = (),
    *,
    pause: float = 0.0,
    timeout: float = 30.0,
) -> RawReply:
    """Send ``head`` then each body part (``pause`` s apart) while reading the reply.

    Stops sending as soon as a complete reply arrived or the server closed
    the connection, so a server that answers early (413, 408) is observed
    the way a real client would see it.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()

    async def send() -> None:
        try:
            writer.write(head)
            await writer.drain()
            for part in body:
                if pause:
                    await asyncio.sleep(pause)
                writer.write(part)
                await writer.drain()
        except (ConnectionError, OSError):
            return

    sender = asyncio.create_task(send())
    data = b""
    try:
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
                if _complete(data):
                    break
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()
        with suppress(ConnectionError, OSError):
            await writer.wait_closed()
    assert data, "the server closed the connection without a reply"
    return _parse_reply(data, started)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return len(body) >= int(value.strip())
    return False


def request_head(
    method: str, path: str, headers: dict[str, str], content_length: int | None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    else:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunked(parts: Iterable[bytes]) -> Iterable[bytes]:
    for part in parts:
        yield b"%x\r\n%s\r\n" % (len(part), part)
    yield b"0\r\n\r\n"
