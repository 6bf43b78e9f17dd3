"""DSSE: PAE, signing, verification, keyids — with known answers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.core.fingerprint import fingerprint
from keys.core.keyring import Keyring
from relay.core.envelope import (
    Opened,
    canonical_b64decode,
    open_and_check,
    open_envelope,
    pae,
    verify,
)
from relay.core.errors import BadInput
from relay.core.model import (
    MAX_ENVELOPE_BYTES,
    Envelope,
    Signature,
    encode_alert,
    encode_envelope,
)
from tests.helpers import entry, envelope_for, key, make_alert

# Known answers for the seed 32 x 0x01 (committed so other implementations can compare).
SEED1_PUBLIC_HEX = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
SEED1_KEYID = "ed25519:" + hashlib.sha256(bytes.fromhex(SEED1_PUBLIC_HEX)).digest()[:16].hex()


def test_pae_matches_the_dsse_specification_example() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_keyid_and_signature_known_answers() -> None:
    signer = key(1)
    assert signer.public_key.hex() == SEED1_PUBLIC_HEX
    assert signer.keyid == SEED1_KEYID
    # Ed25519 is deterministic: the same seed and message give the same signature.
    signature = signer.sign(pae("application/vnd.avisa.alert.v1+json", b"{}"))
    assert (
        signature
        == nacl.signing.SigningKey(bytes([1]) * 32)
        .sign(pae("application/vnd.avisa.alert.v1+json", b"{}"))
        .signature
    )
    assert len(fingerprint(signer.public_key).split()) == 6


def test_signed_envelope_verifies_with_an_independent_check() -> None:
    alert = make_alert()
    document = json.loads(encode_envelope(envelope_for(alert, key(1))))
    payload = base64.b64decode(document["payload"])
    assert payload == encode_alert(alert)
    message = b"DSSEv1 %d %s %d %s" % (
        len(document["payloadType"]),
        document["payloadType"].encode(),
        len(payload),
        payload,
    )
    (signature,) = document["signatures"]
    public = key(1).public_key
    assert signature["keyid"] == "ed25519:" + hashlib.sha256(public).hexdigest()[:32]
    nacl.signing.VerifyKey(public).verify(message, base64.b64decode(signature["sig"]))


def test_verification_lists_what_held() -> None:
    alert = make_alert()
    envelope = envelope_for(alert, key(1), key(2), key(3))
    keyring = Keyring([entry("ventura", key(1)), entry("la", key(2))])
    result = verify(envelope, encode_alert(alert), keyring)
    assert [check.valid for check in result.checks] == [True, True, False]
    assert result.checks[2].entry is None  # unknown key: ignored, not forged
    assert result.valid_networks() == ["ventura", "la"]
    assert not result.forged


def test_a_key_signing_twice_counts_once() -> None:
    alert = make_alert()
    single = envelope_for(alert, key(1))
    doubled = Envelope(single.payloadType, single.payload, [*single.signatures] * 2)
    result = verify(doubled, encode_alert(alert), Keyring([entry("ventura", key(1))]))
    assert sum(check.valid for check in result.checks) == 1


def test_tampered_payload_is_forged() -> None:
    alert = make_alert()
    envelope = envelope_for(alert, key(1))
    other = encode_alert(make_alert(headline="Something else"))
    keyring = Keyring([entry("ventura", key(1))])
    tampered = verify(envelope, other, keyring)
    assert tampered.forged and not tampered.any_valid
    intact = verify(envelope, encode_alert(alert), keyring)
    assert intact.any_valid and not intact.forged


def test_open_and_check_reads_strictly_then_checks_like_verify() -> None:
    """The node's one way in: refusals before any signature, then the same flags as
    ``verify(..., stop_at_forgery=True)`` for an envelope ``open_envelope`` accepts."""
    alert = make_alert()
    keyring = Keyring([entry("ventura", key(1)), entry("other", key(2))])
    good = envelope_for(alert, key(1), key(3), key(2))  # key 3 is unknown
    sig = good.signatures[0].sig
    bad = Signature(good.signatures[0].keyid, ("B" if sig[0] == "A" else "A") + sig[1:])
    forged = Envelope(good.payloadType, good.payload, [bad, *good.signatures[1:]])
    for envelope in (good, forged):
        raw = encode_envelope(envelope)
        opened = open_and_check(raw, keyring.public_key)
        assert isinstance(opened, Opened)
        assert (opened.envelope, opened.payload) == open_envelope(raw)
        expected = verify(envelope, opened.payload, keyring, stop_at_forgery=True)
        assert opened.valid == [check.valid for check in expected.checks]
    stopped = open_and_check(encode_envelope(forged), keyring.public_key)
    assert isinstance(stopped, Opened) and stopped.valid == [False]  # forged first: no more checks
    other_type = Envelope("text/plain", good.payload, list(good.signatures))
    assert open_and_check(encode_envelope(other_type), keyring.public_key) == (
        "unsupported_payload_type"
    )
    assert open_and_check(b"{" + encode_envelope(good), keyring.public_key) == "malformed"
    assert open_and_check(b" " * (MAX_ENVELOPE_BYTES + 1), keyring.public_key) == "too_large"


@pytest.mark.parametrize("text", ["AQ=", "AQ==\n", "AR==", "A===", "!!!!"])
def test_non_canonical_base64_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        canonical_b64decode(text)


def test_signature_in_a_second_spelling_is_refused() -> None:
    alert = make_alert()
    envelope = envelope_for(alert, key(1))
    sig = envelope.signatures[0].sig
    # The last character before "==" carries 4 spare bits; set one of them.
    respelled = sig[:85] + chr(ord(sig[85]) + 1) + "=="
    assert base64.b64decode(respelled) == base64.b64decode(sig)
    forged = Envelope(
        envelope.payloadType, envelope.payload, [Signature(envelope.signatures[0].keyid, respelled)]
    )
    with pytest.raises(BadInput):
        open_envelope(encode_envelope(forged))


def test_envelope_json_is_read_strictly() -> None:
    raw = encode_envelope(envelope_for(make_alert(), key(1)))
    spaced = raw.replace(b'","', b'", "')  # still strict JSON, just not canonical
    assert open_envelope(spaced)[1] == open_envelope(raw)[1]
    twice = raw[:-1] + b',"payloadType":"application/vnd.avisa.alert.v1+json"}'
    with pytest.raises(BadInput):
        open_envelope(twice)


def test_forgery_stops_the_checks_only_when_asked() -> None:
    envelope = envelope_for(make_alert(), key(1), key(2))
    sig = envelope.signatures[0].sig
    bad = Signature(envelope.signatures[0].keyid, ("B" if sig[0] == "A" else "A") + sig[1:])
    forged = Envelope(envelope.payloadType, envelope.payload, [bad, envelope.signatures[1]])
    payload = open_envelope(encode_envelope(forged))[1]
    keyring = Keyring([entry("ventura", key(1)), entry("other", key(2))])
    assert [c.valid for c in verify(forged, payload, keyring).checks] == [False, True]
    stopped = verify(forged, payload, keyring, stop_at_forgery=True)
    assert stopped.forged and [c.valid for c in stopped.checks] == [False]


@settings(max_examples=3000, deadline=None)
@given(
    data=st.binary(max_size=40),
    edits=st.lists(
        st.tuples(st.integers(0, 80), st.sampled_from('AQgwBRhx+/=\n \x00é"\\u')), max_size=3
    ),
    cut=st.integers(0, 3),
)
def test_canonical_base64_is_exactly_reencoding_equality(
    data: bytes, edits: list[tuple[int, str]], cut: int
) -> None:
    text = base64.b64encode(data).decode()
    for where, char in edits:
        at = min(where, len(text))
        text = text[:at] + char + text[at + 1 :]
    text = text[: len(text) - cut] if cut < len(text) else text
    try:
        expected: bytes | None = base64.b64decode(text, validate=True)
        if base64.b64encode(expected).decode() != text:
            expected = None
    except (ValueError, binascii.Error):
        expected = None
    try:
        got: bytes | None = canonical_b64decode(text)
    except ValueError:
        got = None
    assert got == expected
