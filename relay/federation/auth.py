"""Signed federation requests (DESIGN §5): build and check the Authorization header.

    Authorization: Avisa origin="<net>",destination="<net>",keyid="ed25519:…",
                   ts="<unix seconds>",sig="<base64>"
    signed bytes = PAE("application/vnd.avisa.request.v1",
                       METHOD \\n PATH_AND_QUERY \\n origin \\n destination \\n ts \\n
                       hex(SHA-256(body)))

Checking is split in two so a receiver can refuse cheaply before it reads a
body: ``precheck`` parses the header and checks destination, time and key
(no body needed); ``check_signature`` then verifies the signature over the
method, path, the header's fields and the body's digest. The digest is
computed here, never taken from the sender, so a body altered after signing
simply fails the signature. Each refusal is an ``Unauthorized`` (401) with
its own errcode.

Pure: no clock, no I/O; the receiver passes ``now`` and its keyring.
Ed25519 verification is libsodium's (constant time); nothing secret is
compared here.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from keys.core.keyring import KeyEntry, Keyring
from keys.core.signing import NodeKey
from relay.core.envelope import canonical_b64decode, pae, verify_signature
from relay.core.errors import Unauthorized
from relay.core.model import valid_network
from relay.core.times import to_epoch

REQUEST_TYPE: Final = "application/vnd.avisa.request.v1"
MAX_SKEW_S: Final = 300
SCHEME: Final = "Avisa"
FIELDS: Final = ("origin", "destination", "keyid", "ts", "sig")

_KEYID = re.compile(r"ed25519:[0-9a-f]{32}")
# ts is signed as written, so it has exactly one spelling: ASCII decimal without
# a sign or leading zeros (``str(int)``); "0123" is malformed, not a bad signature.
_TS = re.compile(r"0|[1-9][0-9]{0,11}")
# Optional white space around a parameter is SP and HTAB only (RFC 9110 OWS), not
# every character ``\s`` knows (line breaks, NBSP, U+3000).
_PARAM = re.compile(r'[ \t]*([a-z]+)="([^"\\]*)"[ \t]*')


@dataclass(frozen=True, slots=True)
class RequestAuth:
    """The fields of one Authorization header, syntactically valid."""

    origin: str
    destination: str
    keyid: str
    ts: int
    sig: bytes


def signed_bytes(
    method: str, path_and_query: str, origin: str, destination: str, ts: int, body: bytes
) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    text = "\n".join((method.upper(), path_and_query, origin, destination, str(ts), digest))
    return pae(REQUEST_TYPE, text.encode())


def authorization(
    key: NodeKey,
    method: str,
    path_and_query: str,
    origin: str,
    destination: str,
    now: datetime,
    body: bytes = b"",
) -> str:
    """The header value a sender puts on a request to ``destination``."""
    ts = to_epoch(now)
    sig = key.sign(signed_bytes(method, path_and_query, origin, destination, ts, body))
    fields = {
        "origin": origin,
        "destination": destination,
        "keyid": key.keyid,
        "ts": str(ts),
        "sig": base64.b64encode(sig).decode("ascii"),
    }
    return SCHEME + " " + ",".join(f'{name}="{value}"' for name, value in fields.items())


def _refuse(errcode: str, message: str) -> Unauthorized:
    return Unauthorized(errcode, message)


def parse(header: str | None) -> RequestAuth:
    """Strictly parse the header: the five fields, each once, each well formed."""
    if not header:
        raise _refuse("AVISA_UNAUTHORIZED", "federation requests must be signed (Authorization)")
    scheme, _, rest = header.partition(" ")
    if scheme != SCHEME:
        raise _refuse("AVISA_UNAUTHORIZED", f"Authorization scheme must be {SCHEME}")
    values: dict[str, str] = {}
    for part in rest.split(","):
        match = _PARAM.fullmatch(part)
        if match is None or match.group(1) in values:
            raise _refuse("AVISA_UNAUTHORIZED", "malformed Authorization header")
        values[match.group(1)] = match.group(2)
    if set(values) != set(FIELDS):
        raise _refuse("AVISA_UNAUTHORIZED", "Authorization needs exactly " + ", ".join(FIELDS))
    try:
        sig = canonical_b64decode(values["sig"])
    except ValueError:
        sig = b""
    well_formed = (
        valid_network(values["origin"])
        and valid_network(values["destination"])
        and _KEYID.fullmatch(values["keyid"])
        and _TS.fullmatch(values["ts"])
        and len(sig) == 64
    )
    if not well_formed:
        raise _refuse("AVISA_UNAUTHORIZED", "malformed Authorization header")
    return RequestAuth(
        values["origin"], values["destination"], values["keyid"], int(values["ts"]), sig
    )


def precheck(
    header: str | None, own_network: str, peers: frozenset[str], keyring: Keyring, now: datetime
) -> tuple[RequestAuth, KeyEntry]:
    """Everything that needs no body: destination, time, a usable key of a peer."""
    auth = parse(header)
    if auth.destination != own_network:
        raise _refuse("AVISA_WRONG_DESTINATION", "request was signed for another node")
    if abs(to_epoch(now) - auth.ts) > MAX_SKEW_S:
        raise _refuse("AVISA_STALE_REQUEST", f"ts is more than {MAX_SKEW_S} s from our clock")
    entry = keyring.get(auth.keyid)
    if entry is None or entry.network != auth.origin or auth.origin not in peers:
        raise _refuse("AVISA_UNKNOWN_KEY", "key is not a known key of a peer network")
    status = entry.status(now)
    if status == "revoked":
        raise _refuse("AVISA_KEY_REVOKED", "key has been revoked")
    if status != "valid":
        raise _refuse("AVISA_KEY_NOT_VALID", "key is outside its validity period")
    return auth, entry


def check_signature(
    auth: RequestAuth, entry: KeyEntry, method: str, path_and_query: str, body: bytes
) -> None:
    message = signed_bytes(method, path_and_query, auth.origin, auth.destination, auth.ts, body)
    if not verify_signature(entry.public_key, message, auth.sig):
        raise _refuse("AVISA_BAD_SIGNATURE", "request signature does not verify")
