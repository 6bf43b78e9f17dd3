"""DSSE envelopes: pre-authentication encoding, signing and verification.

``open_envelope`` turns untrusted bytes into an ``Envelope`` and the exact
payload bytes, refusing non-canonical base64 (otherwise one signature could
travel in several spellings). One loop checks signatures
(``check_signatures``, each key once, ``keys_to_check``), behind two entry
points: ``open_and_check`` is how the node reads every envelope it receives
(in its own process or in a verification worker, which has public keys but
no keyring), and ``verify`` checks an envelope already open against a keyring
(key rotation, re-queueing, tests). Neither raises for a bad signature: the
result lists what held (``Opened.valid``, ``Verification``), so the policy can
explain the outcome.

Signatures are Ed25519 over ``PAE(type, body)`` exactly as DSSE v1 defines.
Nothing here parses the payload: verification comes before anything else.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

import msgspec
import nacl.bindings
import nacl.exceptions

from keys.core.keyring import KeyEntry, Keyring
from keys.core.signing import NodeKey
from relay.core.errors import BadInput
from relay.core.model import (
    ALERT_PAYLOAD_TYPE,
    MAX_ENVELOPE_BYTES,
    MAX_SIGNATURES_HARD,
    Envelope,
    Signature,
    encode_envelope,
    envelope_decoder,
)
from relay.core.strictjson import strict_loads

TOO_LARGE = "AVISA_TOO_LARGE"
TOO_MANY_SIGNATURES = "AVISA_TOO_MANY_SIGNATURES"
SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32
_base64_decoder = msgspec.json.Decoder(bytes)
_Key = TypeVar("_Key")
#: Why an envelope was refused before any signature was checked.
Refusal = Literal["too_large", "malformed", "too_many_signatures", "unsupported_payload_type"]


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSEv1 SP LEN(type) SP type SP LEN(body) SP body."""
    type_bytes = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(body), body)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def canonical_b64decode(text: str) -> bytes:
    """Standard base64 that must re-encode to the same text (no spare bits).

    msgspec decodes it (a third of ``binascii.a2b_base64``'s time on a payload)
    and refuses anything outside the alphabet and misplaced padding;
    re-encoding and comparing with the text refuses every other spelling,
    whatever the decoder let through.
    """
    try:
        encoded = text.encode("ascii")
        data = _base64_decoder.decode(b'"%s"' % encoded)
    except (UnicodeEncodeError, msgspec.DecodeError, msgspec.ValidationError):
        raise ValueError("not standard base64") from None
    if binascii.b2a_base64(data, newline=False) != encoded:
        raise ValueError("non-canonical base64")
    return data


def sign(payload: bytes, key: NodeKey, payload_type: str = ALERT_PAYLOAD_TYPE) -> Envelope:
    signature = Signature(keyid=key.keyid, sig=_b64(key.sign(pae(payload_type, payload))))
    return Envelope(payloadType=payload_type, payload=_b64(payload), signatures=[signature])


def endorse(envelope: Envelope, payload: bytes, key: NodeKey) -> Envelope:
    """Append this node's signature; never removes or reorders the others."""
    if any(existing.keyid == key.keyid for existing in envelope.signatures):
        return envelope
    signature = Signature(keyid=key.keyid, sig=_b64(key.sign(pae(envelope.payloadType, payload))))
    return Envelope(
        payloadType=envelope.payloadType,
        payload=envelope.payload,
        signatures=[*envelope.signatures, signature],
    )


def open_envelope(
    raw: bytes,
    max_bytes: int = MAX_ENVELOPE_BYTES,
    decode: Callable[[bytes], Envelope] = envelope_decoder.decode,
) -> tuple[Envelope, bytes]:
    """Parse untrusted envelope bytes; returns the envelope and payload bytes.

    ``max_bytes`` and ``decode`` serve documents larger than an alert (trust
    lists, ``keys.cards.trustlist``): the same reading under their own bound.

    The JSON must be strict (``relay.core.strictjson``): msgspec alone would take
    the last of two ``payload`` keys where another parser takes the first. No
    keyid may sign twice: the envelope is ``malformed`` whichever signature of
    the two is good, so a valid signature cannot cover a forged one.
    """
    if len(raw) > max_bytes:
        raise BadInput(TOO_LARGE, f"envelope over {max_bytes} bytes")
    try:
        envelope = decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadInput("AVISA_BAD_ENVELOPE", f"malformed envelope: {exc}") from None
    except (UnicodeDecodeError, RecursionError):
        raise BadInput("AVISA_BAD_ENVELOPE", "malformed envelope: invalid JSON text") from None
    if encode_envelope(envelope) != raw:
        try:
            strict_loads(raw)
        except BadInput as exc:
            raise BadInput("AVISA_BAD_ENVELOPE", f"malformed envelope: {exc.message}") from None
    keyids = {signature.keyid for signature in envelope.signatures}
    if len(keyids) != len(envelope.signatures):
        # Whichever copy came first: a relay never signs twice, and one key with a
        # good and a bad signature must not read as the good one (docs/protocol.md §2).
        raise BadInput("AVISA_BAD_ENVELOPE", "malformed envelope: a keyid signs twice")
    payload = payload_bytes(envelope)
    if len(envelope.signatures) > MAX_SIGNATURES_HARD:
        raise BadInput(
            TOO_MANY_SIGNATURES, f"envelope carries more than {MAX_SIGNATURES_HARD} signatures"
        )
    return envelope, payload


def refusal_reason(exc: BadInput) -> Refusal:
    """The decision reason for an envelope ``open_envelope`` refused: one per rule, so
    17 signatures are refused for the same reason as 9 over a policy cap of 8."""
    if exc.errcode == TOO_LARGE:
        return "too_large"
    if exc.errcode == TOO_MANY_SIGNATURES:
        return "too_many_signatures"
    return "malformed"


def payload_bytes(envelope: Envelope) -> bytes:
    try:
        payload = canonical_b64decode(envelope.payload)
        for signature in envelope.signatures:
            canonical_b64decode(signature.sig)
    except ValueError as exc:
        raise BadInput("AVISA_BAD_ENVELOPE", f"malformed envelope: {exc}") from None
    return payload


class SignatureCheck(msgspec.Struct, frozen=True):
    """One signature's outcome: ``entry`` is None when the keyid is unknown."""

    keyid: str
    entry: KeyEntry | None
    valid: bool


class Verification(msgspec.Struct, frozen=True):
    checks: tuple[SignatureCheck, ...]

    @property
    def any_valid(self) -> bool:
        return any(check.valid for check in self.checks)

    @property
    def forged(self) -> bool:
        """A signature that names a key we know but does not verify."""
        return any(check.entry is not None and not check.valid for check in self.checks)

    @property
    def origin(self) -> SignatureCheck:
        return self.checks[0]

    def valid_networks(self) -> list[str]:
        """Networks with a valid signature, in signature order, each once."""
        seen: dict[str, None] = {}
        for check in self.checks:
            if check.valid and check.entry is not None:
                seen.setdefault(check.entry.network)
        return list(seen)


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    # crypto_sign_open reads the first 64 bytes of signature+message as the
    # signature: a short signature would borrow the message's first bytes.
    if len(signature) != SIGNATURE_BYTES or len(public_key) != PUBLIC_KEY_BYTES:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


class Opened(msgspec.Struct, frozen=True):
    """An envelope read strictly, and which of its signatures verify.

    ``valid`` has one flag per signature up to the first signature of a
    known key that fails (the envelope is forged whatever follows, so a flood
    of forgeries costs one Ed25519 check per envelope). A keyid the keys do
    not know is False and checking goes on (a keyid that signs twice never
    gets here: ``open_envelope`` refuses the envelope).
    """

    envelope: Envelope
    payload: bytes
    valid: list[bool]


def keys_to_check(keyids: Sequence[str], lookup: Callable[[str], _Key | None]) -> list[_Key | None]:
    """Per signature, the key to check it with (``lookup`` of its keyid): None for an
    unknown keyid and for a keyid that signed before (a key counts once however
    often it signs)."""
    keys, seen = [], set()
    for keyid in keyids:
        keys.append(None if keyid in seen else lookup(keyid))
        seen.add(keyid)
    return keys


def check_signatures(
    message: bytes,
    signatures: Sequence[Signature],
    public_keys: Sequence[bytes | None],
    stop_at_forgery: bool,
) -> list[bool]:
    """Each signature's validity, in order; with ``stop_at_forgery`` only up to the first
    signature of a known key that fails (the envelope is forged whatever follows)."""
    valid: list[bool] = []
    for signature, public_key in zip(signatures, public_keys, strict=True):
        ok = public_key is not None and verify_signature(
            public_key, message, binascii.a2b_base64(signature.sig)
        )
        valid.append(ok)
        if stop_at_forgery and public_key is not None and not ok:
            break
    return valid


def open_and_check(raw: bytes, public_key: Callable[[str], bytes | None]) -> Opened | Refusal:
    """The one way a node reads an envelope it received and checks its signatures.

    The strict reading (``open_envelope``), the payload type, then Ed25519 for
    every signature of a key that ``public_key`` knows, up to the first
    forgery. Nothing reads the payload before this has run (DESIGN §3: verify
    before anything else). The pipeline runs it in its own process for a few
    envelopes and in the verification workers for a batch
    (``relay.runtime.verify_worker``), which send its result back as is.
    """
    try:
        envelope, payload = open_envelope(raw)
    except BadInput as exc:
        return refusal_reason(exc)
    if envelope.payloadType != ALERT_PAYLOAD_TYPE:
        return "unsupported_payload_type"
    keys = keys_to_check([signature.keyid for signature in envelope.signatures], public_key)
    message = pae(envelope.payloadType, payload)
    return Opened(envelope, payload, check_signatures(message, envelope.signatures, keys, True))


def verification_of(
    keyids: Sequence[str], entries: Sequence[KeyEntry | None], valid: Sequence[bool]
) -> Verification:
    """The ``Verification`` of the first ``len(valid)`` signatures, given the keyring's entry
    for each (``keys_to_check``)."""
    return Verification(
        tuple(
            SignatureCheck(keyid, entry, ok)
            for keyid, entry, ok in zip(keyids, entries, valid, strict=False)
        )
    )


def verify(
    envelope: Envelope, payload: bytes, keyring: Keyring, stop_at_forgery: bool = False
) -> Verification:
    """Check each signature against the keyring; a key counts once however often it signs.

    With ``stop_at_forgery`` the checks end at the first signature of a known
    key that does not verify: the result is ``forged`` whatever follows, and a
    flood of forgeries costs one Ed25519 verification per envelope, not one
    per signature.
    """
    keyids = [signature.keyid for signature in envelope.signatures]
    entries = keys_to_check(keyids, keyring.get)
    public_keys = [None if entry is None else entry.public_key for entry in entries]
    message = pae(envelope.payloadType, payload)
    valid = check_signatures(message, envelope.signatures, public_keys, stop_at_forgery)
    return verification_of(keyids, entries, valid)
