"""Sealing and phone normal form: the primitives the desk and the SMS bridge share."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from relay.core.errors import BadInput, KeyFileError
from relay.core.phone import normalize
from relay.core.sealing import Sealer, SealError
from relay.storage.sealkey import SEAL_KEY_NAME, load_or_create


def test_seal_opens_only_with_its_key() -> None:
    sealer = Sealer(Sealer.new_key())
    sealed = sealer.seal(b"+18055550134")
    assert b"8055550134" not in sealed
    assert sealer.seal(b"+18055550134") != sealed  # fresh nonce each time
    assert sealer.open(sealed) == b"+18055550134"
    with pytest.raises(SealError):
        Sealer(Sealer.new_key()).open(sealed)
    with pytest.raises(SealError):
        sealer.open(sealed[:-1] + bytes([sealed[-1] ^ 1]))


def test_keyed_hash_is_stable_per_key_and_purpose() -> None:
    key = Sealer.new_key()
    one, same = Sealer(key), Sealer(key)
    assert one.keyed_hash(b"+18055550134") == same.keyed_hash(b"+18055550134")
    assert one.keyed_hash(b"+18055550134") != one.keyed_hash(b"+18055550135")
    assert one.keyed_hash(b"x", b"tips") != one.keyed_hash(b"x", b"sms")
    assert Sealer(Sealer.new_key()).keyed_hash(b"+18055550134") != one.keyed_hash(b"+18055550134")


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create(tmp_path)
    path = tmp_path / SEAL_KEY_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create(tmp_path).open(first.seal(b"a")) == b"a"
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create(tmp_path)
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(KeyFileError, match="not a desk key"):
        load_or_create(tmp_path)


@pytest.mark.parametrize(
    "text", ["(805) 555-0134", "+1 805 555 0134", "805.555.0134", "+18055550134", "18055550134"]
)
def test_phone_numbers_have_one_form(text: str) -> None:
    assert normalize(text) == "+18055550134"


def test_foreign_numbers_keep_their_country() -> None:
    assert normalize("+52 55 1234 5678") == "+525512345678"


@pytest.mark.parametrize("text", ["", "abc", "12", "+999 1234", "9" * 80])
def test_bad_phone_numbers_are_refused_without_echo(text: str) -> None:
    with pytest.raises(BadInput) as refused:
        normalize(text)
    assert refused.value.errcode == "AVISA_BAD_PHONE"
    if len(text) > 3:
        assert text not in str(refused.value)
