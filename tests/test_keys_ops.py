"""This node's own keys: rotation, revocation, passphrases, interrupted rotations, the CLI."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from keys.cards.card import verify_key_document
from keys.cards.statements import REVOCATION_PAYLOAD_TYPE, ROTATION_PAYLOAD_TYPE
from keys.core.signing import NodeKey
from keys.store import nodekey, own_ops, ownkeys
from relay.cli import datadir
from relay.core import config as config_mod
from relay.core.errors import BadInput, KeyFileError
from relay.core.model import encode_envelope
from relay.runtime.clock import FakeClock
from relay.storage.files import is_private
from tests.helpers import T0

PASSPHRASE = b"correct horse battery staple"


@pytest.fixture
def home(tmp_path: Path, clock: FakeClock) -> Path:
    return datadir.initialize(tmp_path / "ventura", "ventura", "127.0.0.1:0", clock=clock).data_dir


@pytest.fixture
def sealed_home(tmp_path: Path, clock: FakeClock) -> Path:
    return datadir.initialize(
        tmp_path / "sealed", "ventura", "127.0.0.1:0", passphrase=PASSPHRASE, clock=clock
    ).data_dir


def key_file(data_dir: Path) -> Path:
    return data_dir / config_mod.KEY_NAME


def seed_of(data_dir: Path, passphrase: bytes | None = None) -> bytes:
    return bytes(nodekey.load(key_file(data_dir), passphrase).signing_key)


def rows(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(data_dir / config_mod.DB_NAME)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def everything_on_disk(data_dir: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(data_dir.iterdir()) if path.is_file())


def test_rotation_replaces_the_key_and_erases_the_old_one(home: Path, clock: FakeClock) -> None:
    old_seed = seed_of(home)
    old_keyid = nodekey.load(key_file(home)).keyid
    clock.advance("1h")
    report = own_ops.rotate(home, None, clock)
    assert report.old_keyid == old_keyid and report.at == T0 + timedelta(hours=1)
    assert nodekey.load(key_file(home)).keyid == report.keyid != old_keyid
    assert is_private(key_file(home)) and not (home / ownkeys.NEXT_NAME).exists()
    disk = everything_on_disk(home)
    assert old_seed not in disk and base64.b64encode(old_seed) not in disk
    assert rows(home, "SELECT keyid, valid_until IS NOT NULL FROM own_keys ORDER BY rowid") == [
        (old_keyid, 1),
        (report.keyid, 0),
    ]
    document = verify_key_document(encode_envelope(own_ops.export_card(home, None, clock))).document
    assert [k.keyid for k in document.keys] == [report.keyid]
    assert [(k.keyid, k.expired_at) for k in document.old_keys] == [(old_keyid, report.at)]
    assert [s.payloadType for s in document.statements] == [ROTATION_PAYLOAD_TYPE]


def test_sealed_key_is_resealed_with_the_same_passphrase(
    sealed_home: Path, clock: FakeClock
) -> None:
    report = own_ops.rotate(sealed_home, PASSPHRASE, clock)
    assert nodekey.is_encrypted(key_file(sealed_home))
    assert nodekey.load(key_file(sealed_home), PASSPHRASE).keyid == report.keyid


@pytest.mark.parametrize(
    ("passphrase", "message"),
    [(b"wrong", "wrong passphrase"), (None, "passphrase-protected")],
    ids=["wrong passphrase", "no passphrase"],
)
@pytest.mark.parametrize("operation", ["rotate", "revoke", "export-card"])
def test_passphrase_failures_are_clear_and_touch_nothing(
    sealed_home: Path, clock: FakeClock, passphrase: bytes | None, message: str, operation: str
) -> None:
    before_key = key_file(sealed_home).read_bytes()
    before_db = rows(sealed_home, "SELECT * FROM own_keys"), rows(sealed_home, "SELECT * FROM meta")
    with pytest.raises(KeyFileError, match=message):
        if operation == "rotate":
            own_ops.rotate(sealed_home, passphrase, clock)
        elif operation == "revoke":
            own_ops.revoke_own(sealed_home, None, None, passphrase=passphrase, clock=clock)
        else:
            own_ops.export_card(sealed_home, passphrase, clock)
    assert key_file(sealed_home).read_bytes() == before_key
    assert not (sealed_home / ownkeys.NEXT_NAME).exists()
    assert (
        rows(sealed_home, "SELECT * FROM own_keys"),
        rows(sealed_home, "SELECT * FROM meta"),
    ) == (before_db)


def test_a_rotation_interrupted_before_commit_is_undone(home: Path) -> None:
    before = key_file(home).read_bytes()
    ownkeys.stage(home, NodeKey.generate(), None)
    key = ownkeys.load_signing_key(home, "ventura", None)
    assert key_file(home).read_bytes() == before and key.keyid == nodekey.load(key_file(home)).keyid
    assert not (home / ownkeys.NEXT_NAME).exists()


def test_a_rotation_interrupted_after_commit_is_finished(
    home: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(data_dir: Path) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(ownkeys, "install", crash)
    with pytest.raises(RuntimeError):
        own_ops.rotate(home, None, clock)
    monkeypatch.undo()
    committed = ownkeys.current_keyid(sqlite3.connect(home / config_mod.DB_NAME))
    assert (home / ownkeys.NEXT_NAME).exists()
    assert ownkeys.load_signing_key(home, "ventura", None).keyid == committed
    assert nodekey.load(key_file(home)).keyid == committed
    assert not (home / ownkeys.NEXT_NAME).exists()


def test_an_old_backup_of_the_key_file_is_refused(home: Path, clock: FakeClock) -> None:
    backup = key_file(home).read_bytes()
    own_ops.rotate(home, None, clock)
    key_file(home).write_bytes(backup)
    with pytest.raises(KeyFileError, match="old backup"):
        ownkeys.load_signing_key(home, "ventura", None)


def test_revoking_the_current_key_makes_a_new_one(home: Path, clock: FakeClock) -> None:
    old_keyid = nodekey.load(key_file(home)).keyid
    clock.advance("2h")
    report = own_ops.revoke_own(home, None, "2026-11-23T13:00:00Z", clock=clock)
    assert report.old_keyid == old_keyid and report.at == T0 + timedelta(hours=1)
    assert "new key ceremony" in report.warning
    assert report.made_new_key
    assert nodekey.load(key_file(home)).keyid == report.keyid != old_keyid
    document = verify_key_document(encode_envelope(own_ops.export_card(home, None, clock))).document
    assert [(k.keyid, k.revoked_at) for k in document.revoked] == [(old_keyid, report.at)]
    (statement,) = document.statements
    assert statement.payloadType == REVOCATION_PAYLOAD_TYPE
    assert [s.keyid for s in statement.signatures] == [old_keyid]  # self-signed


def test_revoking_a_lost_key(home: Path, clock: FakeClock) -> None:
    old_keyid = nodekey.load(key_file(home)).keyid
    key_file(home).unlink()
    with pytest.raises(KeyFileError, match=r"no key file.*add --lost"):
        own_ops.revoke_own(home, None, None, clock=clock)
    report = own_ops.revoke_own(home, None, None, lost=True, clock=clock)
    assert report.old_keyid == old_keyid
    assert nodekey.load(key_file(home)).keyid == report.keyid
    document = verify_key_document(encode_envelope(own_ops.export_card(home, None, clock))).document
    assert [k.keyid for k in document.revoked] == [old_keyid]
    assert document.statements == []  # nothing could sign for the lost key


def test_revoking_an_old_key_from_before_its_rotation_is_refused(
    home: Path, clock: FakeClock
) -> None:
    first = nodekey.load(key_file(home)).keyid
    clock.advance("1h")
    own_ops.rotate(home, None, clock)
    clock.advance("1h")
    before = rows(home, "SELECT * FROM own_keys"), rows(home, "SELECT * FROM own_key_statements")
    with pytest.raises(BadInput, match="also discredits the current key"):
        own_ops.revoke_own(home, first, "2026-11-23T12:30:00Z", clock=clock)
    assert (
        rows(home, "SELECT * FROM own_keys"),
        rows(home, "SELECT * FROM own_key_statements"),
    ) == (before)
    report = own_ops.revoke_own(home, first, "2026-11-23T13:30:00Z", clock=clock)
    assert report.old_keyid == first and "stop trusting it too" in report.warning
    assert not report.made_new_key
    document = verify_key_document(encode_envelope(own_ops.export_card(home, None, clock))).document
    assert [k.keyid for k in document.revoked] == [first]
    assert document.old_keys == []
    with pytest.raises(BadInput, match="already revoked"):
        own_ops.revoke_own(home, first[:16], None, clock=clock)
    statuses = [(k["keyid"], k["status"].split(" ")[0]) for k in own_ops.own_listing(home, clock)]
    assert statuses == [(first, "REVOKED"), (report.keyid, "current")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "must look like"),
        ("2026-11-23T12:00:00", "time zone"),
        ("2026-11-24T12:00:00Z", "in the future"),
    ],
)
def test_bad_at(text: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        own_ops.parse_at(text, T0)
    assert own_ops.parse_at("2026-11-23T13:00:00+02:00", T0) == T0 - timedelta(hours=1)


# --- the command line, as a subprocess ---------------------------------------------


def avisa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_ceremony_between_two_nodes(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert avisa("init", "--data", a, "--network", "ventura").returncode == 0
    assert avisa("init", "--data", b, "--network", "la").returncode == 0
    card = str(tmp_path / "ventura.card")
    assert avisa("keys", "export-card", "--data", a, "--out", card).returncode == 0
    assert json.loads(avisa("keys", "export-card", "--data", a).stdout)["payloadType"]
    shown = json.loads(avisa("keys", "show", "--json", "--data", a).stdout)

    wrong = avisa("trust", "add", card, "--fingerprint", "1" * 30, "--data", b)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert wrong.stderr.count("\n") == 1 and "separate channel" not in wrong.stdout
    assert "read the six groups" in wrong.stderr and shown["keyid"] in wrong.stderr

    added = avisa(
        "trust",
        "add",
        card,
        "--fingerprint",
        shown["fingerprint"],
        "--speaks-for",
        "fips:06111",
        "--no-forward",
        "--relay",
        "own",
        "--data",
        b,
    )
    assert added.returncode == 0, added.stderr
    listed = json.loads(avisa("trust", "list", "--json", "--data", b).stdout)["peers"]
    assert [
        (p["network"], p["forward"], p["relay"], p["keys"][0]["fingerprint"]) for p in listed
    ] == [("ventura", False, "own", shown["fingerprint"])]
    shown_peer = avisa("trust", "list", "ventura", "--data", b).stdout
    assert "current" in shown_peer and "(our own alerts only)" in shown_peer
    bad = avisa("trust", "add", card, "--relay", "some", "--data", b)
    assert bad.returncode == 2 and "invalid choice: 'some'" in bad.stderr

    assert avisa("keys", "rotate", "--data", a).returncode == 0
    # The old card is there: replacing it takes --force (issue 22).
    assert avisa("keys", "export-card", "--data", a, "--out", card).returncode == 1
    assert avisa("keys", "export-card", "--data", a, "--out", card, "--force").returncode == 0
    updated = avisa("trust", "update", card, "--data", b)
    assert updated.returncode == 0 and "rotated" in updated.stdout
    assert avisa("trust", "remove", "ventura", "--data", b).returncode == 0
    assert "No trusted peers" in avisa("trust", "list", "--data", b).stdout
