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
from pathlib import Path
from typing import Any

import msgspec

from keys.cards.card import (
    KEYS_PAYLOAD_TYPE,
    KeyDocumentError,
    build_key_document,
    verify_key_document,
)
from relay.core.envelope import endorse, pae, sign
from relay.core.model import ALERT_PAYLOAD_TYPE, encode_alert, encode_envelope, valid_node_url
from relay.federation.auth import REQUEST_TYPE, authorization, signed_bytes
from tests.vectors.base import (
    SEEDS,
    URL,
    URLS_INVALID,
    URLS_VALID,
    T,
    b64,
    node_key,
    the_alert,
)
from tests.vectors.checkpoints import checkpoints
from tests.vectors.refusals import refused
from tests.vectors.trustlists import trustlists

HERE = Path(__file__).parent


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
        "urls": {"valid": URLS_VALID, "invalid": URLS_INVALID},
        "refused_documents": [_with_url(payload, url) for url in URLS_INVALID[:3]],
    }


def _with_url(payload: bytes, url: str) -> dict[str, str]:
    """The same document with another url, signed: a receiver must refuse it."""
    assert all(valid_node_url(good) for good in URLS_VALID)
    assert not any(valid_node_url(bad) for bad in URLS_INVALID)
    changed = payload.replace(json.dumps(URL).encode(), json.dumps(url).encode())
    raw = encode_envelope(sign(changed, node_key("ventura"), KEYS_PAYLOAD_TYPE))
    try:
        verify_key_document(raw)
    except KeyDocumentError:
        return {"url": url, "envelope": raw.decode("utf-8")}
    raise AssertionError(f"the node takes a key document whose url is {url}")


# --- alert payloads and envelopes ---------------------------------------------


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


FILES: dict[str, Callable[[], dict[str, Any]]] = {
    "fingerprint.json": fingerprints,
    "card.json": card,
    "payload.json": payloads,
    "request.json": requests,
    "refused.json": refused,
    "trustlist.json": trustlists,
    "checkpoint.json": checkpoints,
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
