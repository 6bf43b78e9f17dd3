"""The ``/federation/v1/*`` routes: what peers send and fetch (DESIGN §5).

Order of work for a signed request, cheapest refusal first:

1. header only (``auth.precheck``): well formed, for this node, ``ts``
   within 300 s of our clock, a current key of a trusted peer → else 401;
2. the per-peer concurrency gate → else 429;
3. the body, read under its byte limit (413) and deadline (408);
4. the signature over method, path, header fields and the body's digest →
   else 401; only now does the request count against the peer's request
   rate (429), so nobody can spend a peer's budget with forged requests;
5. for a transaction: the stored reply for (origin, txn_id) if one is
   younger than 24 h, returned byte for byte; otherwise the strict JSON
   body, at most 50 envelopes, each through ``node.pipeline.ingest`` as if
   the peer had handed it over alone, and the reply stored in the same
   SQLite transaction as the alerts it describes.

An envelope over 64 KiB or malformed is one ``rejected`` result, not a
failed transaction; a body that is not ``{"envelopes": [...]}`` is a 400.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated

import msgspec
import structlog
from aiohttp import web

from keys.core.keyring import KeyEntry
from keys.store import own_ops
from relay.core.checkpoints import Refused
from relay.core.cosign import MAX_RELAYED_BYTES
from relay.core.errors import BadInput, NotFound
from relay.core.model import MAX_ENVELOPE_BYTES, encode_envelope, valid_network
from relay.federation import auth, catchup
from relay.federation.host import FederationHost
from relay.federation.service import REPLY_TTL, Federation
from relay.runtime.httpio import authorization, read_body, strict_loads
from relay.runtime.pipeline import Outcome
from relay.storage import chain, fedstate, store
from relay.storage.db import Connection
from relay.storage.trust import PeerRecord

MAX_ENVELOPES = 50
TXN_BODY_MAX = MAX_ENVELOPES * (MAX_ENVELOPE_BYTES + 64) + 1024
# RFC 3986 unreserved characters, but never "." or "..": clients and proxies
# rewrite those as path segments, so they would not arrive as sent.
_TXN_ID = re.compile(r"(?!\.\.?$)[A-Za-z0-9._~-]{1,64}")
_CURSOR = re.compile(r"[0-9]{1,18}")
_SEQ = re.compile(r"[1-9][0-9]{0,15}")
MAX_SEQ = 2**53 - 1
routes = web.RouteTableDef()
_log = structlog.get_logger("avisa.federation")
#: The ``Federation`` whose routes these are (set by ``relay.http.app.build_app``).
FEDERATION: web.AppKey[Federation] = web.AppKey("federation", Federation)


class _TxnBody(msgspec.Struct, forbid_unknown_fields=True):
    envelopes: Annotated[list[msgspec.Raw], msgspec.Meta(max_length=MAX_ENVELOPES)]


_txn_decoder = msgspec.json.Decoder(_TxnBody)


def parse_transaction(body: bytes) -> list[bytes]:
    """``{"envelopes": [...]}`` → each envelope's exact bytes; BadInput otherwise.

    The transaction's own structure is strict JSON; each element is only delimited
    by the JSON grammar and then judged as an envelope on its own (strictness
    included), so a malformed envelope is one rejected result however the body
    around it is spaced (docs/protocol.md §6.3). A body exactly as senders build
    it (``{"envelopes":[`` + the envelopes joined by ``,`` + ``]}``) is recognised
    by putting it back together; any other body is walked (``_elements``).
    """
    try:
        raws = [bytes(raw) for raw in _txn_decoder.decode(body).envelopes]
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        raws = None
    if raws is not None and body == b'{"envelopes":[' + b",".join(raws) + b"]}":
        return raws
    raws = _elements(body)
    if raws is not None:
        if len(raws) > MAX_ENVELOPES:
            raise BadInput("AVISA_TOO_MANY_ENVELOPES", f"at most {MAX_ENVELOPES} envelopes")
        return raws
    value = strict_loads(body)
    if not isinstance(value, dict) or set(value) != {"envelopes"}:
        raise BadInput("AVISA_BAD_REQUEST", 'body must be {"envelopes": [...]}')
    if not isinstance(value["envelopes"], list):
        raise BadInput("AVISA_BAD_REQUEST", "envelopes must be a list")
    raise BadInput("AVISA_TOO_MANY_ENVELOPES", f"at most {MAX_ENVELOPES} envelopes")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_WS = re.compile(r"[ \t\n\r]*")
_delimiter = json.JSONDecoder(parse_constant=_no_constant)


def _elements(body: bytes) -> list[bytes] | None:
    """The elements of a strict ``{"envelopes": [...]}`` as sent (text between them
    spaced freely), or None when the body is anything else (``strict_loads`` then
    says what). Bytes that are not UTF-8 stay inside the element that holds them."""
    text = body.decode("utf-8", "surrogateescape")
    elements: list[bytes] = []
    try:
        at = _expect(text, _expect(text, _skip(text, 0), "{") + 1, '"')
        key, at = _delimiter.raw_decode(text, at)
        at = _expect(text, _expect(text, at, ":") + 1, "[")
        at = _skip(text, at + 1)
        while text[at] != "]" and len(elements) <= MAX_ENVELOPES:  # else strict_loads counts
            _, end = _delimiter.raw_decode(text, at)
            elements.append(text[at:end].encode("utf-8", "surrogateescape"))
            at = _skip(text, end)
            if text[at] == ",":
                at = _skip(text, at + 1)
                if text[at] == "]":
                    raise ValueError("a comma before ]")
            elif text[at] != "]":
                raise ValueError("expected , or ]")
        at = _expect(text, at + 1, "}")
    except (ValueError, IndexError, RecursionError):
        return None
    if key != "envelopes" or _skip(text, at + 1) != len(text):
        return None
    return elements


def _skip(text: str, at: int) -> int:
    return _WS.match(text, at).end()  # type: ignore[union-attr]


def _expect(text: str, at: int, char: str) -> int:
    """The position of ``char``, the next character after white space at ``at``."""
    at = _skip(text, at)
    if text[at] != char:
        raise ValueError(f"expected {char!r}")
    return at


def encode_reply(outcomes: list[Outcome]) -> bytes:
    results = [{"id": o.id, "status": o.status, "reason": o.reason} for o in outcomes]
    return msgspec.json.encode({"results": results})


@dataclass(frozen=True, slots=True)
class Checked:
    """A request whose header passed ``precheck``, with the peer as it was then."""

    auth: auth.RequestAuth
    key: KeyEntry
    peer: PeerRecord


def _precheck(request: web.Request, federation: Federation) -> Checked:
    node = federation.host
    snapshot = node.trust
    header = authorization(request)
    try:
        request_auth, entry = auth.precheck(
            header, node.network, frozenset(snapshot.peers), snapshot.keyring, node.clock()
        )
    except BadInput as refused:
        if refused.errcode == "AVISA_UNKNOWN_KEY":
            # Perhaps the peer rotated: its key document will say (rate-limited).
            origin = auth.parse(header).origin
            if origin in snapshot.peers:
                federation.keys.soon(origin)
        raise
    return Checked(request_auth, entry, snapshot.peers[request_auth.origin])


def _verify(request: web.Request, federation: Federation, checked: Checked, body: bytes) -> str:
    """The signature holds: count the request against its peer and return the peer."""
    auth.check_signature(checked.auth, checked.key, request.method, request.raw_path, body)
    origin = checked.peer.network
    federation.gate.count(origin, federation.host.clock(), checked.peer.policy.rate_limit_per_min)
    federation.peer_alive(origin)
    return origin


@routes.put("/federation/v1/send/{txn_id}")
async def send(request: web.Request) -> web.Response:
    federation = request.app[FEDERATION]
    node = federation.host
    txn_id = request.match_info["txn_id"]
    if not _TXN_ID.fullmatch(txn_id):
        raise BadInput(
            "AVISA_BAD_TXN_ID", "txn_id must be 1-64 of A-Z a-z 0-9 . _ ~ -, not . or .."
        )
    checked = _precheck(request, federation)
    with federation.gate.admit(checked.peer.network):
        body = await read_body(request, TXN_BODY_MAX)
        origin = _verify(request, federation, checked, body)
        async with federation.txn_lock(origin, txn_id):
            reply = await _transaction(node, origin, txn_id, body)
    federation.delivered_here(origin)
    return web.Response(body=reply, content_type="application/json")


class _Answered(Exception):
    """This (origin, txn_id) was answered within 24 h: its stored reply, byte for byte."""

    def __init__(self, reply: bytes, reused: bool) -> None:
        super().__init__("transaction already answered")
        self.reply = reply
        self.reused = reused


async def _transaction(node: FederationHost, origin: str, txn_id: str, body: bytes) -> bytes:
    now = node.clock()

    # The stored reply is looked up by the writer job that would store one, so a
    # retry is answered exactly as the first time and costs no thread hand-off
    # on every other transaction's path (a retry is verified again first: rare,
    # and no dearer than a new transaction the peer could send instead).
    digest = hashlib.sha256(body).digest()

    def unless_answered(conn: Connection) -> None:
        stored = fedstate.stored_reply(conn, origin, txn_id, now - REPLY_TTL)
        if stored is not None:
            raise _Answered(stored.reply, stored.body_sha256 not in (None, digest))

    kept: list[bytes] = []

    def remember(conn: Connection, outcomes: list[Outcome]) -> None:
        reply = encode_reply(outcomes)
        kept.append(
            fedstate.store_reply(
                conn, origin, txn_id, reply, digest, at=now, replaces_before=now - REPLY_TTL
            )
        )

    try:
        await node.pipeline.ingest(
            lambda: parse_transaction(body),
            from_peer=origin,
            then=remember,
            first=unless_answered,
            size=len(body),
        )
    except _Answered as answered:
        if answered.reused:
            # As Matrix does, the first reply stands and the new body is not read; a
            # sender must never reuse an id (docs/protocol.md §6.3). Counted and logged
            # so an operator sees a peer that loses envelopes this way.
            node.metrics.txn_reused[origin] += 1
            _log.warning("transaction id reused with a different body", peer=origin, txn_id=txn_id)
        return answered.reply
    return kept[0]


def _one(request: web.Request, name: str, default: str) -> str:
    """A query parameter given at most once: two ``since`` could mean two cursors."""
    values = request.query.getall(name, [default])
    if len(values) > 1:
        raise BadInput("AVISA_BAD_QUERY", f"give {name} once")
    return values[0]


@routes.get("/federation/v1/alerts")
async def alerts(request: web.Request) -> web.Response:
    federation = request.app[FEDERATION]
    node = federation.host
    checked = _precheck(request, federation)
    with federation.gate.admit(checked.peer.network):
        caller = _verify(request, federation, checked, b"")
        since = _one(request, "since", "0")
        if not _CURSOR.fullmatch(since):
            raise BadInput("AVISA_BAD_QUERY", "since must be a cursor from an earlier reply")
        limit_text = _one(request, "limit", str(catchup.PAGE_LIMIT_DEFAULT))
        if not _CURSOR.fullmatch(limit_text) or not 1 <= int(limit_text) <= catchup.PAGE_LIMIT_MAX:
            raise BadInput("AVISA_BAD_QUERY", f"limit must be 1 to {catchup.PAGE_LIMIT_MAX}")
        snapshot, now = node.trust, node.clock()
        envelopes, next_pos = await node.db.read(
            lambda conn: catchup.page(
                conn, int(since), int(limit_text), caller, snapshot, node.key, now
            )
        )
    return web.Response(
        body=catchup.encode_page(envelopes, next_pos), content_type="application/json"
    )


@routes.get("/federation/v1/keys")
async def key_document(request: web.Request) -> web.Response:
    federation = request.app[FEDERATION]
    node = federation.host
    key, now = node.key, node.clock()
    document = await node.db.read(lambda conn: own_ops.key_document(conn, node.config, key, now))
    return web.Response(body=encode_envelope(document), content_type="application/json")


@routes.get("/federation/v1/checkpoints/{network}")
async def checkpoint(request: web.Request) -> web.Response:
    """The newest checkpoint this node holds of ``network`` (its own, or a peer's), as signed."""
    federation = request.app[FEDERATION]
    node = federation.host
    network = request.match_info["network"]
    if not valid_network(network):
        raise BadInput("AVISA_BAD_NETWORK", "not a network id like ventura or oc.resilience")
    checked = _precheck(request, federation)
    with federation.gate.admit(checked.peer.network):
        _verify(request, federation, checked, b"")
        if network == node.network:
            raw = federation.checkpointer.latest
        else:
            raw = await node.db.read(lambda conn: chain.checkpoint_envelope(conn, network))
    if raw is None:
        raise NotFound(f"this node holds no checkpoint of {network}")
    return web.Response(body=raw, content_type="application/json")


@routes.put("/federation/v1/checkpoints/{network}")
async def take_checkpoint(request: web.Request) -> web.Response:
    """A peer's checkpoint of ``network`` (its own, or one it passes on): checked, kept if
    newer, and compared with this node's chain (``relay.federation.repair``)."""
    federation = request.app[FEDERATION]
    network = request.match_info["network"]
    if not valid_network(network):
        raise BadInput("AVISA_BAD_NETWORK", "not a network id like ventura or oc.resilience")
    checked = _precheck(request, federation)
    with federation.gate.admit(checked.peer.network):
        body = await read_body(request, MAX_RELAYED_BYTES)
        peer = _verify(request, federation, checked, body)
        result = await federation.repairs.receive(body, peer, network)
    if isinstance(result, Refused):
        return web.json_response({"status": "refused", "reason": result.reason})
    return web.json_response({"status": "accepted", "reason": ""})


@routes.get("/federation/v1/messages/{origin}/{seq}")
async def message(request: web.Request) -> web.Response:
    """Message ``seq`` of ``origin`` as stored (so a peer can repair its chain)."""
    federation = request.app[FEDERATION]
    node = federation.host
    origin, seq_text = request.match_info["origin"], request.match_info["seq"]
    if not valid_network(origin):
        raise BadInput("AVISA_BAD_NETWORK", "not a network id like ventura or oc.resilience")
    if not _SEQ.fullmatch(seq_text) or not 1 <= int(seq_text) <= MAX_SEQ:
        raise BadInput("AVISA_BAD_SEQ", f"seq must be a whole number from 1 to {MAX_SEQ}")
    checked = _precheck(request, federation)
    with federation.gate.admit(checked.peer.network):
        _verify(request, federation, checked, b"")
        raw = await node.db.read(lambda conn: store.message_at(conn, origin, int(seq_text)))
    if raw is None:
        raise NotFound(f"this node holds no message {seq_text} of {origin}")
    return web.Response(body=raw, content_type="application/json")
