"""A verification worker process: opens envelopes and checks their signatures.

    python -m relay.runtime.verify_worker    (started by ``relay.runtime.verifier.VerifierPool``)

It holds no secret and no state between requests: each request carries the
public keys it may use (keyid → key) and the envelopes' raw bytes. For each
envelope it runs ``relay.core.envelope.open_and_check`` — the same function
the node runs itself for a few envelopes: the strict, canonical reading of
the envelope and of its base64, the payload type, and the Ed25519 checks of
every signature of a known key, up to the first that fails — and frames its
result, the parts the node needs to carry on without reading the envelope
again. The node decodes the payload itself, with its own strict decoder,
and applies the policy.

Frames (little-endian), one answer per request, in order:

    request  = id:u32 size:u32 body[size]
    body     = keys:u16 (keyid_len:u8 keyid public_key[32])* count:u16 (size:u32 envelope)*
    answer   = id:u32 size:u32 result*                  (one per envelope, in order)
    result   = refusal:u8                               (REFUSALS: 1 to 4)
             | OPENED:u8 b64_len:u32 payload_b64 size:u32 payload
               count:u8 (keyid_len:u8 keyid sig_b64[88])*count checked:u8 valid:u8*checked

``valid`` is ``Opened.valid``, 1 or 0 per signature checked.

It lowers its own CPU priority to the least (niceness 19): the node's process
does the work that has to happen in order (decoding, the database writer, the
event loop) and must not wait behind a verification, while the workers soak
up whatever CPU it leaves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import sys
from collections.abc import Iterator
from typing import BinaryIO


def quiet_on_signals() -> None:
    """The node starts us in a process group of our own, so a terminal's Ctrl-C is
    the node's; one meant for us (run by hand) is left to whoever closes our stdin
    (we then end), and SIGTERM ends us without a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":  # before the imports below, so a Ctrl-C during them is quiet too
    quiet_on_signals()

from relay.core.envelope import Refusal, open_and_check  # noqa: E402

HEADER = struct.Struct("<II")
U8, U16, U32 = struct.Struct("<B"), struct.Struct("<H"), struct.Struct("<I")
OPENED = 0
#: The refusal byte of each ``envelope.Refusal``.
REFUSALS: dict[Refusal, int] = {
    "too_large": 1,
    "malformed": 2,
    "unsupported_payload_type": 3,
    "too_many_signatures": 4,
}
SIG_B64_LEN = 88
MAX_FRAME = 64 * 1024 * 1024
NICENESS = 19


def _sized(data: bytes) -> bytes:
    return U32.pack(len(data)) + data


def _short(text: str) -> bytes:
    data = text.encode("ascii")
    return U8.pack(len(data)) + data


def result_frame(raw: bytes, keys: dict[str, bytes]) -> bytes:
    """One envelope's ``result`` frame: ``open_and_check`` with the request's keys."""
    opened = open_and_check(raw, keys.get)
    if isinstance(opened, str):
        return U8.pack(REFUSALS[opened])
    envelope = opened.envelope
    signatures = b"".join(_short(s.keyid) + s.sig.encode("ascii") for s in envelope.signatures)
    return b"".join(
        (
            U8.pack(OPENED),
            _sized(envelope.payload.encode("ascii")),
            _sized(opened.payload),
            U8.pack(len(envelope.signatures)),
            signatures,
            U8.pack(len(opened.valid)),
            bytes(opened.valid),
        )
    )


def _read_keys(body: bytes, offset: int) -> tuple[dict[str, bytes], int]:
    (count,) = U16.unpack_from(body, offset)
    offset += U16.size
    keys: dict[str, bytes] = {}
    for _ in range(count):
        (length,) = U8.unpack_from(body, offset)
        keyid = body[offset + 1 : offset + 1 + length].decode("ascii")
        offset += 1 + length
        keys[keyid] = body[offset : offset + 32]
        offset += 32
    return keys, offset


def _envelopes(body: bytes, offset: int) -> Iterator[bytes]:
    (count,) = U16.unpack_from(body, offset)
    offset += U16.size
    for _ in range(count):
        (size,) = U32.unpack_from(body, offset)
        offset += U32.size
        yield body[offset : offset + size]
        offset += size


def check_body(body: bytes) -> bytes:
    """The answer to one request body (empty for an empty body: the start-up ping)."""
    if not body:
        return b""
    keys, offset = _read_keys(body, 0)
    return b"".join(result_frame(raw, keys) for raw in _envelopes(body, offset))


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
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(sys.stdin.buffer, sys.stdout.buffer)
