"""The key document / peer card: form, canonical bytes, self-signature, bounds."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta

import pytest

from keys.cards.card import (
    CurrentKey,
    KeyDocument,
    KeyDocumentError,
    OldKey,
    RevokedKey,
    build_key_document,
    encode_document,
    verify_key_document,
)
from keys.cards.statements import b64
from keys.core.keyring import KeyEntry
from relay.core.model import MAX_ENVELOPE_BYTES, encode_envelope
from relay.runtime.httpio import status_for
from tests.helpers import T0, key, make_alert, raw_envelope
from tests.key_helpers import URL, revocation, rotation, signed_document

K1, K2, K3 = key(1), key(2), key(3)


def _doc(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "network": "la",
        "url": URL,
        "issued_at": "2026-11-23T12:00:00Z",
        "keys": [
            {
                "keyid": K1.keyid,
                "public_key": b64(K1.public_key),
                "valid_from": None,
                "valid_until": None,
            }
        ],
        "old_keys": [],
        "revoked": [],
        "statements": [],
    }
    return base | changes


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def test_round_trip_of_what_the_builder_makes() -> None:
    history = [
        KeyEntry("la", K1.public_key, valid_until=T0 - timedelta(hours=1)),
        KeyEntry("la", K3.public_key, revoked_at=T0 - timedelta(minutes=5)),
        KeyEntry("la", K2.public_key, valid_from=T0 - timedelta(hours=1)),
    ]
    statements = [rotation(K1, K2, at=T0 - timedelta(hours=1)), revocation(K3)]
    envelope = build_key_document("la", URL, K2, history, statements, T0)
    verified = verify_key_document(encode_envelope(envelope))
    document = verified.document
    assert [k.keyid for k in document.keys] == [K2.keyid]
    assert document.keys[0].valid_from == T0 - timedelta(hours=1)
    assert [(k.keyid, k.expired_at) for k in document.old_keys] == [
        (K1.keyid, T0 - timedelta(hours=1))
    ]
    assert [(k.keyid, k.revoked_at) for k in document.revoked] == [
        (K3.keyid, T0 - timedelta(minutes=5))
    ]
    assert len(document.statements) == 2
    # A pretty-printed card (what export-card writes) verifies the same.
    pretty = json.dumps(json.loads(encode_envelope(envelope)), indent=2).encode()
    assert verify_key_document(pretty).raw == verified.raw


def _tampered(raw: bytes) -> bytes:
    envelope = json.loads(raw)
    payload = base64.b64decode(envelope["payload"]).replace(URL.encode(), b"https://evil.example")
    envelope["payload"] = base64.b64encode(payload).decode()
    return _compact(envelope)


BAD_DOCUMENTS: list[tuple[str, Callable[[], bytes], str]] = [
    ("tampered", lambda: _tampered(signed_document(_compact(_doc()), K1)), "does not verify"),
    ("signed by a stranger", lambda: signed_document(_compact(_doc()), K2), "not one of its keys"),
    (
        "current key did not sign",
        lambda: signed_document(
            _compact(
                _doc(
                    keys=[
                        {
                            "keyid": K1.keyid,
                            "public_key": b64(K1.public_key),
                            "valid_from": None,
                            "valid_until": None,
                        },
                        {
                            "keyid": K2.keyid,
                            "public_key": b64(K2.public_key),
                            "valid_from": None,
                            "valid_until": None,
                        },
                    ]
                )
            ),
            K1,
        ),
        "not signed by its current key",
    ),
    (
        "duplicate key in two lists",
        lambda: signed_document(
            _compact(
                _doc(
                    revoked=[
                        {
                            "keyid": K1.keyid,
                            "public_key": b64(K1.public_key),
                            "revoked_at": "2026-11-23T12:00:00Z",
                        }
                    ]
                )
            ),
            K1,
        ),
        "twice",
    ),
    (
        "duplicate JSON field",
        lambda: signed_document(
            _compact(_doc()).replace(b'"network":"la"', b'"network":"la","network":"la"'), K1
        ),
        "canonical",
    ),
    (
        "extra whitespace",
        lambda: signed_document(json.dumps(_doc()).encode(), K1),
        "canonical",
    ),
    (
        "keyid not of its key",
        lambda: signed_document(
            _compact(
                _doc(
                    keys=[
                        {
                            "keyid": K2.keyid,
                            "public_key": b64(K1.public_key),
                            "valid_from": None,
                            "valid_until": None,
                        }
                    ]
                )
            ),
            K1,
        ),
        "does not match",
    ),
    (
        "fractional seconds",
        lambda: signed_document(_compact(_doc(issued_at="2026-11-23T12:00:00.5Z")), K1),
        "whole seconds",
    ),
    (
        "not UTC",
        lambda: signed_document(_compact(_doc(issued_at="2026-11-23T12:00:00+01:00")), K1),
        "UTC",
    ),
    (
        "an alert among the statements",
        lambda: signed_document(
            _compact(_doc(statements=[json.loads(raw_envelope(make_alert("la"), K1))])), K1
        ),
        "statements may only hold",
    ),
    ("an alert, not a document", lambda: raw_envelope(make_alert("la"), K1), "not an Avisa key"),
    ("not JSON", lambda: b"\xff{", "not a key document"),
    ("too large", lambda: b" " * (MAX_ENVELOPE_BYTES + 1), "not a key document"),
]


@pytest.mark.parametrize(
    ("raw", "message"),
    [(make, msg) for _, make, msg in BAD_DOCUMENTS],
    ids=[name for name, _, _ in BAD_DOCUMENTS],
)
def test_bad_documents_are_refused_with_a_reason(raw: Callable[[], bytes], message: str) -> None:
    with pytest.raises(KeyDocumentError, match=message) as info:
        verify_key_document(raw())
    assert status_for(info.value) == 400 and info.value.errcode == "AVISA_BAD_KEY_DOCUMENT"


def test_the_largest_document_fits_one_envelope() -> None:
    many = [key(n) for n in range(10, 82)]
    document = KeyDocument(
        network="a" * 63,
        url="https://" + "x" * 63 + "/" + "y" * 228,  # 300 characters, the most
        issued_at=T0,
        keys=[CurrentKey(k.keyid, b64(k.public_key), T0, T0) for k in many[:8]],
        old_keys=[OldKey(k.keyid, b64(k.public_key), T0, T0) for k in many[8:40]],
        revoked=[RevokedKey(k.keyid, b64(k.public_key), T0) for k in many[40:72]],
        statements=[rotation(K1, K2, network="a" * 63) for _ in range(32)],
    )
    raw = signed_document(encode_document(document), *many[:8])
    assert len(raw) < MAX_ENVELOPE_BYTES
    assert len(verify_key_document(raw).document.statements) == 32
