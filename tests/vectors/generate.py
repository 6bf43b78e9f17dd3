"""Known-answer vectors for docs/protocol.md, made by the node's own code.

    python -m tests.vectors.generate            # rewrite tests/vectors/*.json
    python -m tests.vectors.generate --check    # exit 1 if a file would change

Fixed seeds (RFC 8032 §7.1 TEST 1, 2 and 3 secret keys), fixed times, fixed
ULID randomness: the same code gives the same bytes on every machine, and
``tests/test_vectors.py`` regenerates them and compares byte for byte. A
change to any file here is a change to the wire protocol, never a refactor.

Each refused payload states the reason the protocol requires; the generator
asserts that the node's own pipeline gives exactly that reason before it
writes the vector, so the files can never record a bug as the rule.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from keys.cards.card import build_key_document
from keys.core.keyring import KeyEntry, Keyring
from keys.core.signing import NodeKey
from relay.core.drafts import ulid
from relay.core.envelope import endorse, pae, sign
from relay.core.model import (
    ALERT_PAYLOAD_TYPE,
    Alert,
    Area,
    Envelope,
    Signature,
    Text,
    encode_alert,
    encode_envelope,
)
from relay.core.policy import Policy
from relay.federation.auth import REQUEST_TYPE, authorization, signed_bytes
from relay.runtime.pipeline import Prepared, prepare
from relay.storage.trust import TrustSnapshot

HERE = Path(__file__).parent
SEEDS = {
    "ventura": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "la-rrn": "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    "oc.resilience": "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
}
T = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
URL = "https://avisa.ventura.example.org"


def node_key(network: str) -> NodeKey:
    return NodeKey.from_seed(bytes.fromhex(SEEDS[network]))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def dump(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# --- fingerprints --------------------------------------------------------------


def fingerprint_steps(public_key: bytes) -> dict[str, Any]:
    """Written out step by step, independently of ``keys.core.fingerprint``."""
    digest = hashlib.sha512(b"avisa-fingerprint-v1\x00" + public_key).digest()
    first = digest.hex()
    for _ in range(5200):
        digest = hashlib.sha512(digest + public_key).digest()
    chunks = [digest[i * 5 : i * 5 + 5] for i in range(6)]
    return {
        "digest_after_prefix_round": first,
        "digest_after_5200_rounds": digest.hex(),
        "chunks": [chunk.hex() for chunk in chunks],
        "groups": [f"{int.from_bytes(chunk, 'big') % 100_000:05d}" for chunk in chunks],
    }


def fingerprints() -> dict[str, Any]:
    vectors = []
    for network, seed in SEEDS.items():
        key = node_key(network)
        steps = fingerprint_steps(key.public_key)
        assert " ".join(steps["groups"]) == key.fingerprint
        vectors.append(
            {
                "network": network,
                "seed": seed,
                "public_key": key.public_key.hex(),
                "public_key_b64": b64(key.public_key),
                "sha256_of_public_key": hashlib.sha256(key.public_key).hexdigest(),
                "keyid": key.keyid,
                **steps,
                "fingerprint": key.fingerprint,
            }
        )
    return {"fingerprints": vectors}


# --- the card and key document ------------------------------------------------


def card() -> dict[str, Any]:
    key = node_key("ventura")
    envelope = build_key_document("ventura", URL, key, [], [], T)
    payload = base64.b64decode(envelope.payload)
    message = pae(envelope.payloadType, payload)
    return {
        "seed": SEEDS["ventura"],
        "now": "2026-11-23T12:00:00Z",
        "payload": payload.decode("utf-8"),
        "pae_b64": b64(message),
        "signature_b64": envelope.signatures[0].sig,
        "envelope": encode_envelope(envelope).decode("utf-8"),
        "card_file": json.dumps(msgspec.to_builtins(envelope), indent=2) + "\n",
    }


# --- alert payloads and envelopes ---------------------------------------------


def the_alert() -> Alert:
    return Alert(
        id="ventura/" + ulid(T, bytes(range(10))),
        network="ventura",
        seq=42,
        msg_type="alert",
        references=[],
        kind="checkpoint",
        certainty="confirmed",
        observed_at=T - timedelta(minutes=25, microseconds=-123456),
        sent_at=T,
        expires_at=T + timedelta(hours=4),
        area=Area(
            label="Avenida Saviers y Bard, Oxnard",
            geohash="9q4gcv",
            radius_m=800,
            codes=["fips:06111", "zip:93033"],
        ),
        agencies=["cbp", "police"],
        text={
            "es": Text(
                headline="Retén de CBP en Saviers y Bard",
                body="Verificado en el lugar por dos voluntarias a las 3:35 a. m.",
                instruction="No abra la puerta. Tiene derecho a guardar silencio.",
            ),
            "en": Text(
                headline="CBP checkpoint at Saviers & Bard",
                body='Verified on site by two volunteers at 3:35 a.m. "Stay safe" \\ <b>',
            ),
        },
    )


def payloads() -> dict[str, Any]:
    origin, relay_key = node_key("ventura"), node_key("la-rrn")
    payload = encode_alert(the_alert())
    signed = sign(payload, origin)
    endorsed = endorse(signed, payload, relay_key)
    return {
        "payload": payload.decode("utf-8"),
        "payload_b64": b64(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "pae_b64": b64(pae(ALERT_PAYLOAD_TYPE, payload)),
        "signed_by": [origin.keyid],
        "signed_envelope": encode_envelope(signed).decode("utf-8"),
        "endorsed_by": [origin.keyid, relay_key.keyid],
        "endorsed_envelope": encode_envelope(endorsed).decode("utf-8"),
    }


# --- request signing ------------------------------------------------------------


def requests() -> dict[str, Any]:
    key = node_key("ventura")
    payload = encode_alert(the_alert())
    body = b'{"envelopes":[' + encode_envelope(sign(payload, key)) + b"]}"
    cases = [
        ("PUT", "/federation/v1/send/01JDBX7Q0000000000000000", body),
        ("GET", "/federation/v1/alerts?since=0&limit=50", b""),
    ]
    vectors = []
    for method, path, sent in cases:
        ts = int(T.timestamp())
        message = signed_bytes(method, path, "ventura", "la-rrn", ts, sent)
        prefix = f"DSSEv1 {len(REQUEST_TYPE)} {REQUEST_TYPE} "
        assert message.startswith(prefix.encode())
        vectors.append(
            {
                "method": method,
                "path_and_query": path,
                "origin": "ventura",
                "destination": "la-rrn",
                "ts": str(ts),
                "body_b64": b64(sent),
                "body_sha256": hashlib.sha256(sent).hexdigest(),
                "signed_text": message[message.index(b" ", len(prefix)) + 1 :].decode(),
                "pae_b64": b64(message),
                "authorization": authorization(key, method, path, "ventura", "la-rrn", T, sent),
            }
        )
    return {"seed": SEEDS["ventura"], "requests": vectors}


# --- payloads that must be refused ---------------------------------------------

Edit = Callable[[str], str]


def _alert_with(**changes: Any) -> str:
    return encode_alert(msgspec.structs.replace(the_alert(), **changes)).decode("utf-8")


def _text(headline: str) -> dict[str, Text]:
    return {"en": Text(headline=headline, body="x")}


def _refusals() -> list[tuple[str, str, str, Callable[[], bytes]]]:
    """(name, why, reason, envelope bytes) for each payload a receiver must refuse."""
    key = node_key("ventura")
    good = encode_alert(the_alert()).decode("utf-8")

    def signed(payload: str) -> Callable[[], bytes]:
        return lambda: encode_envelope(sign(payload.encode("utf-8"), key))

    def with_signatures(count: int) -> Callable[[], bytes]:
        def make() -> bytes:
            envelope = sign(good.encode("utf-8"), key)
            extra = [
                Signature(NodeKey.from_seed(bytes([n]) * 32).keyid, envelope.signatures[0].sig)
                for n in range(count - 1)
            ]
            return encode_envelope(
                Envelope(envelope.payloadType, envelope.payload, [*envelope.signatures, *extra])
            )

        return make

    def altered_signature() -> bytes:
        envelope = sign(good.encode("utf-8"), key)
        sig = bytearray(base64.b64decode(envelope.signatures[0].sig))
        sig[0] ^= 1
        signature = Signature(key.keyid, b64(bytes(sig)))
        return encode_envelope(Envelope(envelope.payloadType, envelope.payload, [signature]))

    spaced = good.replace('"seq":42', '"seq": 42')
    escaped = good.replace("Retén", "Ret\\u00e9n")
    slash = good.replace("Oxnard", "Oxnard\\/CA")
    null = _alert_with(text=_text("Vehicles")).replace(
        '"body":"x"}', '"body":"x","instruction":null}'
    )
    millis = good.replace('"sent_at":"2026-11-23T12:00:00Z"', '"sent_at":"2026-11-23T12:00:00.5Z"')
    offset = good.replace(
        '"sent_at":"2026-11-23T12:00:00Z"', '"sent_at":"2026-11-23T12:00:00+00:00"'
    )
    duplicate = good.replace('"seq":42', '"seq":41,"seq":42')
    floaty = good.replace('"seq":42', '"seq":42.0')
    unknown = good.replace('"seq":42', '"seq":42,"hops":1')
    ulid_id = the_alert().id.split("/")[1]
    overflow = good.replace(ulid_id, "8" + ulid_id[1:])
    bad_network = good.replace('"ventura', '"1ventura')
    return [
        ("whitespace", "a space after a colon", "non_canonical", signed(spaced)),
        ("u_escape", "\\u00e9 instead of the raw UTF-8 é", "non_canonical", signed(escaped)),
        ("escaped_slash", "\\/ instead of /", "non_canonical", signed(slash)),
        ("null_optional", "instruction: null instead of absent", "non_canonical", signed(null)),
        ("fraction", "time with one fractional digit", "non_canonical", signed(millis)),
        ("offset", "time with +00:00 instead of Z", "non_canonical", signed(offset)),
        ("duplicate_key", "seq given twice", "non_canonical", signed(duplicate)),
        ("float", "seq written as 42.0", "malformed_payload", signed(floaty)),
        ("unknown_field", "a field the schema lacks", "malformed_payload", signed(unknown)),
        (
            "ulid_overflow",
            "a ULID above 2^128 (first digit 8)",
            "malformed_payload",
            signed(overflow),
        ),
        ("network", "network id starting with a digit", "malformed_payload", signed(bad_network)),
        (
            "seq_zero",
            "seq 0 (seq runs from 1 to 2^53-1)",
            "malformed_payload",
            signed(_alert_with(seq=0)),
        ),
        (
            "seq_2_53",
            "seq 2^53",
            "malformed_payload",
            signed(_alert_with(seq=2**53)),
        ),
        (
            "bidi_override",
            "U+202E RIGHT-TO-LEFT OVERRIDE in a headline",
            "malformed_payload",
            signed(_alert_with(text=_text("CBP \u202eEREH ON"))),
        ),
        (
            "zero_width_space",
            "U+200B ZERO WIDTH SPACE in a headline",
            "malformed_payload",
            signed(_alert_with(text=_text("CBP\u200b checkpoint"))),
        ),
        (
            "line_separator",
            "U+2028 LINE SEPARATOR in a headline",
            "malformed_payload",
            signed(_alert_with(text=_text("CBP\u2028checkpoint"))),
        ),
        (
            "blank_headline",
            "a headline of spaces only",
            "malformed_payload",
            signed(_alert_with(text=_text(" \u3000 "))),
        ),
        (
            "nine_languages",
            "nine languages (at most 8)",
            "malformed_payload",
            signed(
                _alert_with(
                    text={
                        lang: Text(headline="x", body="x")
                        for lang in ("en", "es", "fr", "de", "it", "pt", "zh", "vi", "ko")
                    }
                )
            ),
        ),
        (
            "duplicate_code",
            "an area code listed twice",
            "malformed_payload",
            signed(good.replace('"zip:93033"', '"fips:06111"')),
        ),
        (
            "references_on_alert",
            "an alert that references another",
            "malformed_payload",
            signed(good.replace('"references":[]', '"references":["ventura/' + ulid_id + '"]')),
        ),
        ("seventeen_signatures", "17 signatures", "too_many_signatures", with_signatures(17)),
        ("bad_signature", "one bit of the signature flipped", "bad_signature", altered_signature),
    ]


def refused() -> dict[str, Any]:
    key = node_key("ventura")
    snapshot = TrustSnapshot(Policy("la-rrn"), Keyring([KeyEntry("ventura", key.public_key)]))
    vectors = []
    for name, why, reason, make in _refusals():
        raw = make()
        outcome = prepare(raw, snapshot)
        got = "accepted-so-far" if isinstance(outcome, Prepared) else outcome.reason
        if got != reason:
            raise AssertionError(f"{name}: the node says {got}, the protocol says {reason}")
        envelope = json.loads(raw)
        payload = base64.b64decode(envelope["payload"])
        vectors.append(
            {
                "name": name,
                "why": why,
                "reason": reason,
                "payload": payload.decode("utf-8"),
                "envelope": raw.decode("utf-8"),
            }
        )
    return {"trusted_key": {"network": "ventura", "seed": SEEDS["ventura"]}, "refused": vectors}


FILES: dict[str, Callable[[], dict[str, Any]]] = {
    "fingerprint.json": fingerprints,
    "card.json": card,
    "payload.json": payloads,
    "request.json": requests,
    "refused.json": refused,
}


def generate() -> dict[str, bytes]:
    return {name: dump(make()) for name, make in FILES.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    stale = []
    for name, data in generate().items():
        path = HERE / name
        if path.exists() and path.read_bytes() == data:
            continue
        stale.append(name)
        if not args.check:
            path.write_bytes(data)
    if args.check and stale:
        print("stale vectors: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
