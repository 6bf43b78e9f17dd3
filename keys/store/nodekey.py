"""The node's own Ed25519 signing key on disk.

The file is JSON so an operator can see what it is, and holds the 32-byte
seed either in the clear (protected by mode 0600 and the host) or sealed with
a passphrase: argon2id (PyNaCl ``pwhash``, moderate limits) derives a key for
``SecretBox``. A wrong passphrase is reported as such and never touches the
file. Writes are atomic and private (``relay.storage.files``).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from keys.core.signing import NodeKey
from relay.core.errors import KeyFileError
from relay.storage.files import is_private, write_private

FORMAT = "avisa-node-key-v1"
_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str, path: Path) -> bytes:
    if not isinstance(text, str):
        raise KeyFileError(f"{path}: {what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise KeyFileError(f"{path}: {what} is not base64") from None


def _seal(seed: bytes, passphrase: bytes) -> dict[str, Any]:
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box_key = nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=_OPSLIMIT, memlimit=_MEMLIMIT
    )
    sealed = nacl.secret.SecretBox(box_key).encrypt(seed)
    return {
        "kdf": "argon2id",
        "opslimit": _OPSLIMIT,
        "memlimit": _MEMLIMIT,
        "salt": _b64(salt),
        "sealed_seed": _b64(bytes(sealed)),
    }


def save(path: Path, key: NodeKey, passphrase: bytes | None = None) -> None:
    seed = bytes(key.signing_key)
    document: dict[str, Any] = {
        "format": FORMAT,
        "keyid": key.keyid,
        "public_key": _b64(key.public_key),
    }
    if passphrase:
        document |= _seal(seed, passphrase)
    else:
        document["seed"] = _b64(seed)
    write_private(path, (json.dumps(document, indent=2) + "\n").encode())


def read_public(path: Path) -> bytes:
    """The public key, readable without the passphrase."""
    public = _unb64(_read_document(path).get("public_key"), "public_key", path)
    if len(public) != 32:
        raise KeyFileError(f"{path}: public_key must be 32 bytes")
    return public


def is_encrypted(path: Path) -> bool:
    return "sealed_seed" in _read_document(path)


def _read_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no key file (run 'avisa init' first)") from None
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: cannot read key file ({type(exc).__name__})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KeyFileError(f"{path}: not an Avisa node key ({FORMAT})")
    return document


def load(path: Path, passphrase: bytes | None = None) -> NodeKey:
    """Read the key; refuses a file others can read, and a wrong passphrase."""
    document = _read_document(path)
    if not is_private(path):
        raise KeyFileError(f"{path}: key file is readable by others; run: chmod 600 {path}")
    if "sealed_seed" in document:
        seed = _unseal(document, passphrase, path)
    else:
        seed = _unb64(document.get("seed"), "seed", path)
    if len(seed) != 32:
        raise KeyFileError(f"{path}: seed must be 32 bytes")
    key = NodeKey.from_seed(seed)
    if document.get("keyid") != key.keyid or document.get("public_key") != _b64(key.public_key):
        raise KeyFileError(f"{path}: keyid or public_key does not match the key (file damaged?)")
    return key


def _unseal(document: dict[str, Any], passphrase: bytes | None, path: Path) -> bytes:
    if not passphrase:
        raise KeyFileError(
            f"{path}: key is passphrase-protected; set AVISA_PASSPHRASE or use --passphrase-file"
        )
    opslimit, memlimit = document.get("opslimit"), document.get("memlimit")
    if document.get("kdf") != "argon2id" or not isinstance(opslimit, int):
        raise KeyFileError(f"{path}: unknown key derivation")
    if not isinstance(memlimit, int) or memlimit > 1 << 31:
        raise KeyFileError(f"{path}: unreasonable argon2id memlimit")
    salt = _unb64(document.get("salt"), "salt", path)
    box_key = nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=opslimit, memlimit=memlimit
    )
    try:
        return bytes(
            nacl.secret.SecretBox(box_key).decrypt(_unb64(document["sealed_seed"], "seed", path))
        )
    except nacl.exceptions.CryptoError:
        raise KeyFileError(f"{path}: wrong passphrase (the key file is unchanged)") from None
