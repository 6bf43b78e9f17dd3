"""``checkpoint.json``: an origin's hash chain over three messages, a signed checkpoint of
its head, checkpoints a receiver refuses, and a cosignature (docs/protocol.md §9).

Made by the node's own code (``relay.core.checkpoints``) from the fixed seeds and time;
each refused checkpoint is first given to ``check_checkpoint``, which must name exactly
the reason written here, so the file never records a bug as the rule.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec

from keys.core.keyring import KeyEntry, Keyring
from relay.core.checkpoints import (
    CHECKPOINT_PAYLOAD_TYPE,
    MAX_CHECKPOINT_BYTES,
    ZERO_HEAD,
    Checkpoint,
    Refused,
    check_checkpoint,
    entry_digest,
    make_checkpoint,
    next_head,
    sign_checkpoint,
)
from relay.core.cosign import cosign, cosigned_bytes, encode_relayed, valid_cosignatures
from relay.core.drafts import ulid
from relay.core.envelope import open_envelope, pae, sign
from relay.core.model import ALERT_PAYLOAD_TYPE, Alert, encode_alert, encode_envelope
from tests.vectors.base import SEEDS, T, b64, node_key, the_alert

SKEW = timedelta(minutes=5)


def _messages() -> list[Alert]:
    """Message 1, 2 and 3 of ``ventura``: an alert, its update, the update's cancel."""
    first = the_alert()
    ids = [first.id] + ["ventura/" + ulid(T + timedelta(minutes=n), bytes(10)) for n in (1, 2)]
    update = msgspec.structs.replace(
        first, id=ids[1], seq=2, msg_type="update", references=[ids[0]]
    )
    cancel = msgspec.structs.replace(
        first, id=ids[2], seq=3, msg_type="cancel", references=[ids[1]], kind="all_clear"
    )
    return [msgspec.structs.replace(first, seq=1), update, cancel]


def chain() -> tuple[list[dict[str, Any]], bytes]:
    key, head = node_key("ventura"), ZERO_HEAD
    entries = []
    for alert in _messages():
        payload = encode_alert(alert)
        digest = entry_digest(ALERT_PAYLOAD_TYPE, payload)
        head = next_head(head, digest)
        entries.append(
            {
                "seq": alert.seq,
                "envelope": encode_envelope(sign(payload, key)).decode("utf-8"),
                "pae_sha256": digest.hex(),
                "head": head.hex(),
            }
        )
    return entries, head


def _receiver() -> Keyring:
    """The receiver knows ventura's and la-rrn's keys, not oc.resilience's."""
    return Keyring(
        [KeyEntry(network, node_key(network).public_key) for network in ("ventura", "la-rrn")]
    )


def _refused(reason: str, raw: bytes, latest: Checkpoint | None, why: str) -> dict[str, Any]:
    seen = {} if latest is None else {latest.network: latest}
    result = check_checkpoint(raw, _receiver(), T, SKEW, seen)
    assert isinstance(result, Refused) and result.reason == reason, (reason, result)
    return {
        "reason": reason,
        "why": why,
        "latest_seen": None if latest is None else msgspec.to_builtins(latest),
        "envelope": raw.decode("utf-8"),
    }


def _padded(raw: bytes) -> bytes:
    """The same envelope with spaces after its first ``{``, one byte over the limit."""
    return b"{" + b" " * (MAX_CHECKPOINT_BYTES + 1 - len(raw)) + raw[1:]


def refused_checkpoints(head: bytes) -> list[dict[str, Any]]:
    ventura = node_key("ventura")
    good = sign_checkpoint(make_checkpoint("ventura", 3, head, T), ventura)
    seen = make_checkpoint("ventura", 3, head, T - timedelta(minutes=1))
    return [
        _refused(
            "unknown_key",
            sign_checkpoint(
                make_checkpoint("oc.resilience", 3, head, T), node_key("oc.resilience")
            ),
            None,
            "signed by a key the receiver's keyring does not hold",
        ),
        _refused(
            "from_future",
            sign_checkpoint(
                make_checkpoint("ventura", 3, head, T + SKEW + timedelta(seconds=1)), ventura
            ),
            None,
            "issued_at more than max_future_skew (5 min) after the receiver's now",
        ),
        _refused(
            "seq_below_seen",
            sign_checkpoint(make_checkpoint("ventura", 2, head, T), ventura),
            seen,
            "seq lower than that of the newest checkpoint the receiver holds of ventura",
        ),
        _refused(
            "too_large",
            _padded(good),
            None,
            f"{MAX_CHECKPOINT_BYTES + 1} bytes, over the limit of {MAX_CHECKPOINT_BYTES}",
        ),
        _refused(
            "origin_mismatch",
            sign_checkpoint(make_checkpoint("ventura", 3, head, T), node_key("la-rrn")),
            None,
            "a valid signature, but by la-rrn's key: only ventura speaks for ventura's chain",
        ),
    ]


def checkpoints() -> dict[str, Any]:
    entries, head = chain()
    checkpoint = make_checkpoint("ventura", 3, head, T)
    raw = sign_checkpoint(checkpoint, node_key("ventura"))
    envelope, payload = open_envelope(raw)
    assert check_checkpoint(raw, _receiver(), T, SKEW, {}) == checkpoint
    return {
        "seed": SEEDS["ventura"],
        "now": "2026-11-23T12:00:00Z",
        "max_future_skew_s": int(SKEW.total_seconds()),
        "max_checkpoint_bytes": MAX_CHECKPOINT_BYTES,
        "head_0": ZERO_HEAD.hex(),
        "chain": entries,
        "checkpoint": {
            "payload": payload.decode("utf-8"),
            "pae_b64": b64(pae(CHECKPOINT_PAYLOAD_TYPE, payload)),
            "signature_b64": envelope.signatures[0].sig,
            "envelope": raw.decode("utf-8"),
        },
        "refused": refused_checkpoints(head),
        "cosigned": cosigned(raw, payload),
    }


def cosigned(raw: bytes, payload: bytes) -> dict[str, Any]:
    """la-rrn's cosignature of the checkpoint (§9.5), and the checkpoint relayed with it."""
    witness = node_key("la-rrn")
    time = T + timedelta(seconds=30)
    item = cosign(payload, witness, time)
    assert valid_cosignatures([item], raw, _receiver(), "ventura", time, SKEW) == [item]
    return {
        "witness_seed": SEEDS["la-rrn"],
        "signed_b64": b64(cosigned_bytes(payload, time)),
        "cosignature": msgspec.to_builtins(item),
        "relayed": encode_relayed(raw, [item]).decode("utf-8"),
    }
