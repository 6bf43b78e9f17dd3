"""The node key on disk: private from the first byte, sealed with a passphrase."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keys.core.signing import NodeKey
from keys.store import nodekey
from relay.core.errors import KeyFileError
from relay.storage.files import is_private


def test_plain_key_round_trips_and_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    key = NodeKey.generate()
    old_umask = os.umask(0)  # even a permissive umask must not loosen the file
    try:
        nodekey.save(path, key)
    finally:
        os.umask(old_umask)
    assert is_private(path) and oct(path.stat().st_mode & 0o777) == "0o600"
    assert nodekey.load(path).public_key == key.public_key
    assert nodekey.read_public(path) == key.public_key


def test_sealed_key_needs_the_right_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    key = NodeKey.generate()
    nodekey.save(path, key, b"correct horse battery staple")
    assert nodekey.is_encrypted(path)
    seed = bytes(key.signing_key)
    assert seed not in path.read_bytes()
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        nodekey.load(path, b"wrong")
    with pytest.raises(KeyFileError, match="passphrase-protected"):
        nodekey.load(path, None)
    assert path.read_bytes() == before
    assert nodekey.load(path, b"correct horse battery staple").keyid == key.keyid
    assert nodekey.read_public(path) == key.public_key  # no passphrase needed


def test_loose_permissions_and_damage_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    nodekey.save(path, NodeKey.generate())
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        nodekey.load(path)
    path.chmod(0o600)
    path.write_text(path.read_text().replace('"keyid": "ed25519:', '"keyid": "ed25519:0'))
    with pytest.raises(KeyFileError, match="does not match"):
        nodekey.load(path)
    with pytest.raises(KeyFileError, match="avisa init"):
        nodekey.load(tmp_path / "missing.key")
