"""Known answers: fixed seeds give fixed key ids, fingerprints, signatures and statements.

The seeds are the secret keys of RFC 8032 §7.1 TEST 1 and TEST 2, so the raw
Ed25519 layer can be checked against the RFC itself; everything above it
(key id, fingerprint, DSSE signature, rotation statement, key document) is
committed here as literals so another implementation can compare byte for
byte. If one of these changes, existing fingerprints and documents break:
that is a protocol change, not a refactor.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from keys.cards.card import build_key_document, verify_key_document
from keys.cards.statements import ROTATION_PAYLOAD_TYPE, make_rotation
from keys.core.fingerprint import fingerprint, matches
from keys.core.signing import NodeKey
from relay.core.envelope import pae
from relay.core.model import encode_envelope

SEED_1 = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
SEED_2 = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"
PUBLIC_1 = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC_SIG_EMPTY = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
    "39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
KEYID_1 = "ed25519:21fe31dfa154a261626bf854046fd227"
KEYID_2 = "ed25519:39f713d0a644253f04529421b9f51b9b"
FINGERPRINT_1 = "55025 77177 01177 93067 49735 36937"
FINGERPRINT_2 = "04615 35426 84771 91941 40400 85029"
DSSE_SIG_1 = (
    "2441592033584542a60f3d1e7649e3e404e140476b8f2fe232b9bd6b46b27972f882bcfdaf093b60a459"
    "48ce12446cb37366d1af2fb182041c781b8f39e75a0c"
)
T = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ROTATION_PAYLOAD = (
    '{"network":"ventura","old_keyid":"ed25519:21fe31dfa154a261626bf854046fd227",'
    '"new_keyid":"ed25519:39f713d0a644253f04529421b9f51b9b",'
    '"new_public_key":"PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=",'
    '"rotated_at":"2026-11-23T12:00:00Z"}'
)
ROTATION_SIGS = [
    "cOcawuzJUwxX1pYKYSKnZAKRM4Q/kbIHTe2is5S3p6gwTOOBQ8jt1UkldCNazkb4J3TGjrI11FTcv61S69KJBw==",
    "nHpCEbCXpL/Xf03S+z1QKfEuPyOiHxbvBUyZOI9xOk2RN9Seg6yACfUwVv43rEemlbZOYFzrLjXd1qKWIiCtBA==",
]
DOCUMENT_SHA256 = "377ea13867e0d8f0cf48c3688fb032289fc9f525cbaebf571bf24760ad208bb0"


def keys() -> tuple[NodeKey, NodeKey]:
    return NodeKey.from_seed(bytes.fromhex(SEED_1)), NodeKey.from_seed(bytes.fromhex(SEED_2))


def test_raw_ed25519_matches_rfc_8032() -> None:
    first, _ = keys()
    assert first.public_key.hex() == PUBLIC_1
    assert first.sign(b"").hex() == RFC_SIG_EMPTY


def test_keyid_and_fingerprint_are_fixed() -> None:
    first, second = keys()
    assert first.keyid == KEYID_1 == "ed25519:" + hashlib.sha256(first.public_key).hexdigest()[:32]
    assert second.keyid == KEYID_2
    assert fingerprint(first.public_key) == first.fingerprint == FINGERPRINT_1
    assert fingerprint(second.public_key) == FINGERPRINT_2
    assert matches(first.public_key, FINGERPRINT_1.replace(" ", "-"))
    assert matches(first.public_key, FINGERPRINT_1.replace(" ", ""))
    assert not matches(first.public_key, FINGERPRINT_2)


def test_dsse_signature_is_fixed() -> None:
    first, _ = keys()
    message = pae("application/vnd.avisa.alert.v1+json", b"avisa known answer")
    assert message == b"DSSEv1 35 application/vnd.avisa.alert.v1+json 18 avisa known answer"
    assert first.sign(message).hex() == DSSE_SIG_1


def test_rotation_statement_is_fixed() -> None:
    first, second = keys()
    envelope = make_rotation("ventura", first, second, T)
    assert envelope.payloadType == ROTATION_PAYLOAD_TYPE
    assert base64.b64decode(envelope.payload).decode() == ROTATION_PAYLOAD
    assert [s.keyid for s in envelope.signatures] == [KEYID_1, KEYID_2]
    assert [s.sig for s in envelope.signatures] == ROTATION_SIGS


def test_key_document_is_fixed() -> None:
    first, _ = keys()
    envelope = build_key_document("ventura", "https://avisa.example.org", first, [], [], T)
    raw = encode_envelope(envelope)
    assert hashlib.sha256(raw).hexdigest() == DOCUMENT_SHA256
    verified = verify_key_document(raw)
    assert verified.document.keys[0].keyid == KEYID_1
    assert verified.document.issued_at == T
