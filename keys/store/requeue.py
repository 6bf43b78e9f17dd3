"""After a revocation: alerts that rested on the revoked key go back to review.

When a key is revoked from ``revoked_at``, everything this node received at
or after that moment on that key's word is suspect. Revocation is rare and
the active set is small, so the scan reads every active alert received since
the earliest new ``revoked_at`` that came from a peer and carries a signature
by a newly revoked key, and runs the very same ``decide`` again, as of its
``received_at``, with the keyring that now knows of the revocation. An alert
that other valid signatures still carry (an endorsement that satisfies the
policy) stays; any other goes to ``held`` with reason ``revoked_key`` for a
reviewer; its feed rows are removed so no consumer that has not seen it yet
ever will, and a ``withdraw`` feed event tells the bridges that showed it to
take it back (a Matrix room edits the message to "withdrawn for review").

Alerts published here through the authenticated API (``from_peer`` is NULL)
never rested on a signature, so they are left alone. The caller owns the
transaction; this runs inside it.

Limit, documented for operators: an update or cancel moved back to ``held``
does not undo what it already replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from relay.core.envelope import payload_bytes, verify
from relay.core.model import Envelope, decode_alert, envelope_decoder
from relay.core.policy import Decision, PolicyState, decide
from relay.storage import store
from relay.storage.db import Connection
from relay.storage.trust import TrustSnapshot

REASON = "revoked_key"


def _rests_on_revoked(
    envelope: Envelope, received_at: datetime, revoked: Mapping[str, datetime]
) -> bool:
    return any(
        signature.keyid in revoked and received_at >= revoked[signature.keyid]
        for signature in envelope.signatures
    )


def requeue_revoked(
    conn: Connection,
    snapshot: TrustSnapshot,
    revoked: Mapping[str, datetime],
    now: datetime,
) -> list[str]:
    """Move alerts that no longer pass without the revoked keys to ``held``; their ids."""
    if not revoked:
        return []
    moved = []
    for found in store.delivered_since(conn, min(revoked.values())):
        envelope = envelope_decoder.decode(found.envelope)
        if not _rests_on_revoked(envelope, found.received_at, revoked):
            continue
        payload = payload_bytes(envelope)
        alert = decode_alert(payload)
        verification = verify(envelope, payload, snapshot.keyring)
        state = PolicyState(from_peer=found.from_peer)
        decision = decide(envelope, alert, verification, snapshot.policy, state, found.received_at)
        if decision.accepted:
            continue
        store.hold(conn, found.id, REASON)
        store.withdraw(conn, found.id)
        store.record_decision(conn, now, Decision("hold", REASON), alert, found.from_peer)
        moved.append(found.id)
    return moved
