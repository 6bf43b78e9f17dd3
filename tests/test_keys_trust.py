"""``avisa trust add|update|list|remove|revoke`` on a real data directory.

Cards that must be refused are table-driven; each refusal must say what to
check and must leave the database exactly as it was.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from keys.cards.card import CurrentKey, KeyDocument, encode_document
from keys.cards.cardcheck import CardRefused
from keys.cards.statements import b64
from keys.core.fingerprint import fingerprint
from keys.core.keyring import KeyEntry
from keys.store import own_ops, peer_ops
from keys.store.nodekey import read_public
from relay.cli import datadir
from relay.core import config as config_mod
from relay.core.errors import BadInput
from relay.core.model import encode_envelope
from relay.runtime.clock import FakeClock
from tests.helpers import T0, key
from tests.key_helpers import URL, document, revocation, rotation, signed_document

K1, K2, K3, OTHER = key(1), key(2), key(3), key(20)
H = timedelta(hours=1)


@pytest.fixture
def home(tmp_path: Path, clock: FakeClock) -> Path:
    return datadir.initialize(tmp_path / "ventura", "ventura", "127.0.0.1:0", clock=clock).data_dir


def card(current=K1, statements=(), history=(), now=T0, network="la") -> bytes:  # type: ignore[no-untyped-def]
    return document(current, statements, history, now, network).raw


def own_fingerprint(data_dir: Path) -> str:
    return fingerprint(read_public(data_dir / config_mod.KEY_NAME))


def state(data_dir: Path) -> list[object]:
    conn = sqlite3.connect(data_dir / config_mod.DB_NAME)
    try:
        return [
            conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("peers", "peer_keys", "peer_key_documents", "meta", "alerts")
        ]
    finally:
        conn.close()


def add(home: Path, clock: FakeClock, raw: bytes, fp: str, **scope: object) -> peer_ops.Added:
    return peer_ops.add(home, raw, fp, peer_ops.Scope(**scope), clock)  # type: ignore[arg-type]


def test_the_ceremony_stores_peer_scope_and_keys(home: Path, clock: FakeClock) -> None:
    history = [KeyEntry("la", K3.public_key, valid_until=T0 - H)]
    added = add(
        home,
        clock,
        card(history=history),
        K1.fingerprint,
        speaks_for=["fips:06037", "9q5"],
        kinds=["sighting", "checkpoint"],
        rate_limit_per_min=30,
        forward=False,
        endorse=True,
    )
    assert not added.plan.already_trusted
    (peer,) = peer_ops.listing(home, clock)
    assert peer["speaks_for"] == ["fips:06037", "9q5"]
    assert peer["kinds"] == ["checkpoint", "sighting"]
    assert (peer["rate_limit_per_min"], peer["forward"], peer["endorse"]) == (30, False, True)
    assert peer["document_issued_at"] == "2026-11-23T12:00:00Z"
    keys = {k["keyid"]: k for k in peer["keys"]}
    assert keys[K1.keyid]["status"] == "current"
    assert keys[K1.keyid]["fingerprint"] == K1.fingerprint
    assert keys[K3.keyid]["status"].startswith("rotated out 2026-11-23T11:00:00Z")

    # Adding the same card again changes only what the options say.
    again = add(home, clock, card(history=history), K1.fingerprint.replace(" ", ""), endorse=False)
    assert again.plan.already_trusted
    (peer,) = peer_ops.listing(home, clock)
    assert peer["speaks_for"] == ["fips:06037", "9q5"] and peer["endorse"] is False
    assert len(peer["keys"]) == 2


def _tampered(raw: bytes) -> bytes:
    envelope = json.loads(raw)
    payload = base64.b64decode(envelope["payload"]).replace(URL.encode(), b"https://evil.example")
    envelope["payload"] = base64.b64encode(payload).decode()
    return json.dumps(envelope).encode()


def _duplicate_keys() -> bytes:
    document = KeyDocument(
        "la", URL, T0, [CurrentKey(K1.keyid, b64(K1.public_key), None, None)], [], [], []
    )
    raw = json.loads(signed_document(encode_document(document), K1))
    payload = json.loads(base64.b64decode(raw["payload"]))
    payload["old_keys"] = [
        {
            "keyid": K1.keyid,
            "public_key": b64(K1.public_key),
            "valid_from": None,
            "expired_at": "2026-11-23T11:00:00Z",
        }
    ]
    return signed_document(json.dumps(payload, separators=(",", ":")).encode(), K1)


def _claims_other_network(home: Path, clock: FakeClock) -> bytes:
    add(home, clock, card(OTHER, network="sf"), OTHER.fingerprint)
    return card(history=[KeyEntry("la", OTHER.public_key, valid_until=T0 - H)])


def _replayed_older(home: Path, clock: FakeClock) -> bytes:
    add(home, clock, card(now=T0), K1.fingerprint)
    return card(now=T0 - H)


def _same_time_other_content(home: Path, clock: FakeClock) -> bytes:
    add(home, clock, card(now=T0), K1.fingerprint)
    return card(now=T0, history=[KeyEntry("la", K3.public_key, revoked_at=T0 - H)])


def _rotated_out_presented_as_current(home: Path, clock: FakeClock) -> bytes:
    """Whoever kept K1 after the peer rotated makes a fresh card around it."""
    add(home, clock, card(now=T0 - 2 * H), K1.fingerprint)
    peer_ops.update(home, card(K2, [rotation(K1, K2, at=T0 - H)], now=T0 - H), clock)
    return card(K1, now=T0)


def _revoked_presented_as_current(home: Path, clock: FakeClock) -> bytes:
    add(home, clock, card(now=T0 - 2 * H), K1.fingerprint)
    peer_ops.revoke(home, "la", K1.keyid, None, clock)
    return card(K1, now=T0)


@dataclass
class BadCard:
    name: str
    make: Callable[[Path, FakeClock], bytes]
    fingerprint: str
    message: str


BAD_CARDS = [
    BadCard("wrong fingerprint", lambda h, c: card(), K2.fingerprint, "read the six groups"),
    BadCard("fingerprint not 30 digits", lambda h, c: card(), "12345 67890", "30 digits"),
    BadCard("tampered card", lambda h, c: _tampered(card()), K1.fingerprint, "altered after"),
    BadCard("duplicate keys in the card", lambda h, c: _duplicate_keys(), K1.fingerprint, "twice"),
    BadCard("a key of another network", _claims_other_network, K1.fingerprint, "belongs to sf"),
    BadCard("replayed: older than trusted", _replayed_older, K1.fingerprint, "replayed or stale"),
    BadCard(
        "replayed: same date, other content",
        _same_time_other_content,
        K1.fingerprint,
        "replayed or stale",
    ),
    BadCard(
        "current key already rotated out",
        _rotated_out_presented_as_current,
        K1.fingerprint,
        "rotated out",
    ),
    BadCard(
        "current key revoked here", _revoked_presented_as_current, K1.fingerprint, "revoked here"
    ),
    BadCard("dated in the future", lambda h, c: card(now=T0 + H), K1.fingerprint, "future"),
    BadCard(
        "this node's own card",
        lambda h, c: encode_envelope(own_ops.export_card(h, None, c)),
        "",
        "own card",
    ),
]


@pytest.mark.parametrize("case", BAD_CARDS, ids=[case.name for case in BAD_CARDS])
def test_bad_cards_are_refused_and_change_nothing(
    home: Path, clock: FakeClock, case: BadCard
) -> None:
    raw = case.make(home, clock)
    fingerprint = case.fingerprint or own_fingerprint(home)
    before = state(home)
    with pytest.raises(CardRefused, match=case.message):
        add(home, clock, raw, fingerprint)
    assert state(home) == before


def test_update_takes_a_rotation_and_refuses_strangers(home: Path, clock: FakeClock) -> None:
    with pytest.raises(BadInput, match="not a trusted peer"):
        peer_ops.update(home, card(), clock)
    add(home, clock, card(now=T0 - 2 * H), K1.fingerprint)
    stored = peer_ops.update(home, card(K2, [rotation(K1, K2, at=T0 - H)]), clock)
    assert stored.result.trusted
    statuses = {k["keyid"]: k["status"] for k in peer_ops.listing(home, clock)[0]["keys"]}
    assert statuses[K2.keyid] == "current"
    assert statuses[K1.keyid].startswith("rotated out 2026-11-23T11:00:00Z")
    # The card exported before the rotation can no longer be re-added.
    with pytest.raises(CardRefused, match="replayed or stale"):
        add(home, clock, card(now=T0 - 2 * H), K1.fingerprint)


def test_revoke_and_remove(home: Path, clock: FakeClock) -> None:
    add(home, clock, card(), K1.fingerprint)
    clock.advance("1h")
    with pytest.raises(BadInput, match="in the future"):
        peer_ops.revoke(home, "la", K1.keyid, "2026-11-23T18:00:00Z", clock)
    with pytest.raises(BadInput, match="own keys"):
        peer_ops.revoke(home, "ventura", K1.keyid, None, clock)
    stored = peer_ops.revoke(home, "la", K1.keyid[8:20], "2026-11-23T12:30:00Z", clock)
    assert stored.result.revoked == {K1.keyid: T0 + timedelta(minutes=30)}
    (peer,) = peer_ops.listing(home, clock)
    assert peer["keys"][0]["status"] == "REVOKED from 2026-11-23T12:30:00Z"
    # A later revocation never moves the time forward.
    peer_ops.revoke(home, "la", K1.keyid, None, clock)
    assert peer_ops.listing(home, clock)[0]["keys"][0]["revoked_at"] == "2026-11-23T12:30:00Z"
    # A revocation statement the peer publishes later cannot move it either.
    peer_ops.update(home, card(K2, [revocation(K1, at=T0 + H)], now=T0 + H), clock)
    assert peer_ops.listing(home, clock)[0]["keys"][0]["revoked_at"] == "2026-11-23T12:30:00Z"
    peer_ops.remove(home, "la")
    assert peer_ops.listing(home, clock) == []
    with pytest.raises(BadInput, match="no trusted peer"):
        peer_ops.remove(home, "la")


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ({"speaks_for": ["fips:6"]}, "--speaks-for"),
        ({"speaks_for": ["9q5", "9q5"]}, "--speaks-for"),
        ({"speaks_for": ["AB"]}, "--speaks-for"),
        ({"kinds": ["parade"]}, "--kinds"),
        ({"rate_limit_per_min": 0}, "--rate-limit"),
    ],
)
def test_bad_scope_changes_nothing(
    home: Path, clock: FakeClock, scope: dict[str, object], message: str
) -> None:
    before = state(home)
    with pytest.raises(BadInput, match=message):
        add(home, clock, card(), K1.fingerprint, **scope)
    assert state(home) == before
