"""The key document served at ``GET /federation/v1/keys`` (DESIGN §5).

PLACEHOLDER: to be replaced by the real builder in ``keys.card`` (key
management issue), which adds rotation statements and old keys with
``expired_at``. The endpoint calls ``build_key_document`` only, so swapping
the builder is a one-line change in ``inbound``.

The document is a DSSE envelope of type
``application/vnd.avisa.keys.v1+json`` signed by the node's current key:
``{network, url, issued_at, keys: [{keyid, public_key, valid_from,
valid_until}]}``. It carries only public keys, so it is served without
request authentication: anyone may fetch it, and trust in it comes from its
signature checked against keys the fetcher already holds.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import msgspec

from keys.keyring import KeyEntry
from keys.nodekey import NodeKey
from relay.envelope import sign
from relay.model import encode_envelope
from relay.timeutil import rfc3339

KEYS_PAYLOAD_TYPE: Final = "application/vnd.avisa.keys.v1+json"


class KeyInfo(msgspec.Struct, frozen=True):
    keyid: str
    public_key: str
    valid_from: str | None
    valid_until: str | None


class KeyDocument(msgspec.Struct, frozen=True):
    network: str
    url: str
    issued_at: str
    keys: list[KeyInfo]


def _info(entry: KeyEntry) -> KeyInfo:
    return KeyInfo(
        keyid=entry.keyid,
        public_key=base64.b64encode(entry.public_key).decode("ascii"),
        valid_from=rfc3339(entry.valid_from) if entry.valid_from else None,
        valid_until=rfc3339(entry.valid_until) if entry.valid_until else None,
    )


def build_key_document(
    network: str, url: str, key: NodeKey, own_keys: Sequence[KeyEntry], now: datetime
) -> bytes:
    """The signed key document as envelope bytes; ``own_keys`` lists current ones first."""
    document = KeyDocument(
        network=network, url=url, issued_at=rfc3339(now), keys=[_info(k) for k in own_keys]
    )
    return encode_envelope(sign(msgspec.json.encode(document), key, KEYS_PAYLOAD_TYPE))
