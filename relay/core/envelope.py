"""DSSE envelopes: pre-authentication encoding, signing and verification.

``open_envelope`` turns untrusted bytes into an ``Envelope`` and the exact
payload bytes, refusing non-canonical base64 (otherwise one signature could
travel in several spellings). ``verify`` checks every signature against the
receiver's keyring and returns a ``Verification`` value listing what held;
it never raises for a bad signature, so the policy can explain the outcome.
``verify_strict`` is the raising wrapper for callers that only want "yes".

Signatures are Ed25519 over ``PAE(type, body)`` exactly as DSSE v1 defines.
Nothing here parses the payload: verification comes before anything else.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

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

TOO_MANY_SIGNATURES = "AVISA_TOO_MANY_SIGNATURES"
SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32
_base64_decoder = msgspec.json.Decoder(bytes)


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


def open_envelope(raw: bytes) -> tuple[Envelope, bytes]:
    """Parse untrusted envelope bytes; returns the envelope and payload bytes.

    The JSON must be strict (``relay.core.strictjson``): msgspec alone would take
    the last of two ``payload`` keys where another parser takes the first.
    """
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise BadInput("AVISA_TOO_LARGE", f"envelope over {MAX_ENVELOPE_BYTES} bytes")
    try:
        envelope = envelope_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadInput("AVISA_BAD_ENVELOPE", f"malformed envelope: {exc}") from None
    except (UnicodeDecodeError, RecursionError):
        raise BadInput("AVISA_BAD_ENVELOPE", "malformed envelope: invalid JSON text") from None
    if encode_envelope(envelope) != raw:
        try:
            strict_loads(raw)
        except BadInput as exc:
            raise BadInput("AVISA_BAD_ENVELOPE", f"malformed envelope: {exc.message}") from None
    payload = payload_bytes(envelope)
    if len(envelope.signatures) > MAX_SIGNATURES_HARD:
        raise BadInput(
            TOO_MANY_SIGNATURES, f"envelope carries more than {MAX_SIGNATURES_HARD} signatures"
        )
    return envelope, payload


def refusal_reason(exc: BadInput) -> str:
    """The decision reason for an envelope ``open_envelope`` refused: one per rule, so
    17 signatures are refused for the same reason as 9 over a policy cap of 8."""
    if exc.errcode == "AVISA_TOO_LARGE":
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


class Plan(msgspec.Struct, frozen=True):
    """What verifying one envelope takes: its PAE and, per signature, the key to use.

    ``entries[i]`` is None for a keyid the keyring does not know and for a
    keyid already seen in this envelope (a key counts once): those are not
    checked. ``run_plan`` runs one here; ``relay.runtime.verifier`` runs many in
    worker processes. ``conclude`` turns either's answers into a ``Verification``.
    """

    message: bytes
    keyids: tuple[str, ...]
    entries: tuple[KeyEntry | None, ...]
    signatures: tuple[bytes, ...]


def keys_to_check(keyids: Sequence[str], keyring: Keyring) -> tuple[KeyEntry | None, ...]:
    """Per signature, the key to check it with: None for an unknown keyid, and for a
    keyid that signed before (a key counts once however often it signs)."""
    entries, seen = [], set()
    for keyid in keyids:
        entries.append(None if keyid in seen else keyring.get(keyid))
        seen.add(keyid)
    return tuple(entries)


def plan_verification(envelope: Envelope, payload: bytes, keyring: Keyring) -> Plan:
    keyids = tuple(signature.keyid for signature in envelope.signatures)
    return Plan(
        pae(envelope.payloadType, payload),
        keyids,
        keys_to_check(keyids, keyring),
        tuple(binascii.a2b_base64(signature.sig) for signature in envelope.signatures),
    )


def run_plan(plan: Plan, stop_at_forgery: bool) -> list[bool]:
    """Each signature's validity, in order; with ``stop_at_forgery`` only up to the first
    signature of a known key that fails (the envelope is forged whatever follows)."""
    valid: list[bool] = []
    for entry, signature in zip(plan.entries, plan.signatures, strict=True):
        ok = entry is not None and verify_signature(entry.public_key, plan.message, signature)
        valid.append(ok)
        if stop_at_forgery and entry is not None and not ok:
            break
    return valid


def conclude(plan: Plan, valid: Sequence[bool]) -> Verification:
    """The verification of the first ``len(valid)`` signatures."""
    return concluded(plan.keyids, plan.entries, valid)


def concluded(
    keyids: Sequence[str], entries: Sequence[KeyEntry | None], valid: Sequence[bool]
) -> Verification:
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
    checks = plan_verification(envelope, payload, keyring)
    return conclude(checks, run_plan(checks, stop_at_forgery))


class SignatureInvalid(BadInput):
    def __init__(self, message: str) -> None:
        super().__init__("AVISA_BAD_SIGNATURE", message)


def verify_strict(
    envelope: Envelope, payload: bytes, keyring: Keyring, required: Sequence[str] = ()
) -> Verification:
    """Raise unless no signature is forged, one verifies, and ``required`` networks signed."""
    result = verify(envelope, payload, keyring)
    if result.forged or not result.any_valid:
        raise SignatureInvalid("signature does not verify against a known key")
    missing = set(required) - set(result.valid_networks())
    if missing:
        raise SignatureInvalid(f"missing signature from {', '.join(sorted(missing))}")
    return result
