"""A verification worker process: Ed25519 checks read from stdin, answers on stdout.

    python -m relay.verify_worker        (started by ``relay.verifier.VerifierPool``)

It holds no key and no state: it is given public keys, signatures and the
signed bytes, and says which verify. Running it as a process of its own
means verification never waits for the node's GIL, and the node's threads
never wait for it.

Frames (little-endian), one answer per request, in order:

    request  = id:u32 size:u32 body[size]
    body     = group*                  (one group per envelope)
    group    = msg_len:u32 count:u8 message[msg_len] (public_key[32] signature[64])*count
    answer   = id:u32 size:u32 result:u8*size    (one per signature sent)

``result`` is 1 (verifies), 0 (does not) or 2 (not checked: an earlier
signature of the same group failed, so the envelope is forged whatever the
rest say; a flood of forgeries costs one verification per envelope).

It lowers its own CPU priority to the least (niceness 19): the node's process
does the work that has to happen in order (parsing, the database writer, the
event loop) and must not wait behind a verification, while the workers soak up
whatever CPU it leaves. Only the standard library and PyNaCl are imported, so
it starts fast and stays small.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
from typing import BinaryIO

import nacl.bindings
import nacl.exceptions

HEADER = struct.Struct("<II")
GROUP = struct.Struct("<IB")
KEY_AND_SIG = 32 + 64
VALID, INVALID, SKIPPED = 1, 0, 2
MAX_FRAME = 64 * 1024 * 1024
NICENESS = 19


def check_group(message: bytes, pairs: list[tuple[bytes, bytes]]) -> bytes:
    """Verify each (public key, signature) over ``message``, stopping at the first failure."""
    results = bytearray()
    for public_key, signature in pairs:
        try:
            nacl.bindings.crypto_sign_open(signature + message, public_key)
        except nacl.exceptions.BadSignatureError:
            results.append(INVALID)
            results.extend([SKIPPED] * (len(pairs) - len(results)))
            break
        results.append(VALID)
    return bytes(results)


def check_body(body: bytes) -> bytes:
    out = []
    offset = 0
    while offset < len(body):
        length, count = GROUP.unpack_from(body, offset)
        offset += GROUP.size
        message = body[offset : offset + length]
        offset += length
        pairs = []
        for _ in range(count):
            pairs.append((body[offset : offset + 32], body[offset + 32 : offset + KEY_AND_SIG]))
            offset += KEY_AND_SIG
        out.append(check_group(message, pairs))
    return b"".join(out)


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    while (header := _read(stdin, HEADER.size)) is not None:
        ident, size = HEADER.unpack(header)
        if size > MAX_FRAME:
            return
        body = _read(stdin, size)
        if body is None:
            return
        results = check_body(body)
        stdout.write(HEADER.pack(ident, len(results)) + results)
        stdout.flush()


if __name__ == "__main__":
    with contextlib.suppress(OSError):  # a sandbox may forbid it; the worker still works
        os.nice(NICENESS)
    serve(sys.stdin.buffer, sys.stdout.buffer)
