"""``avisa policy explain``: the decision for an envelope file, without side effects.

It opens the store read-only, builds the same trust snapshot the node uses,
and runs the same ``prepare`` and ``decide`` as the pipeline, so what it
prints is what the node would do now. Nothing is written: no decision row,
no seq, no tombstone.

An alert already accepted here would be refused now as a ``duplicate``, which
says nothing about the policy: for one, the answer also carries
``accepted_here`` (when, from whom and why it was accepted, from the decision
log while it keeps the row) and ``as_new`` (what the policy decides for it
today, as if it had never been seen).

``origin_trusted`` says which rule makes the origin trusted (or not): this
node, a local ``avisa trust add``, which subscribed trust list and version
(frozen once every list expired), or a local ``avisa trust deny``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from keys.store import nodekey, ownkeys
from relay.core import config as config_mod
from relay.core.errors import ConfigError
from relay.core.model import MAX_ENVELOPE_BYTES
from relay.core.policy import PeerPolicy, decide, inside_scope
from relay.core.times import Clock, from_epoch, rfc3339
from relay.runtime.clock import system_clock
from relay.runtime.pipeline import Rejected, prepare
from relay.storage import configfile, db, store, trust


def explain(
    data_dir: Path, envelope_path: Path, from_peer: str | None, clock: Clock = system_clock
) -> dict[str, Any]:
    config = configfile.load(data_dir)
    public = nodekey.read_public(data_dir / config_mod.KEY_NAME)
    try:
        with envelope_path.open("rb") as handle:
            raw = handle.read(MAX_ENVELOPE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(envelope_path), f"cannot read ({exc.strerror})") from None
    conn = db.open_readonly(data_dir / config_mod.DB_NAME)
    try:
        own = ownkeys.own_entries(conn, config.node.network, public)
        snapshot = trust.load_snapshot(conn, config, own)
        if from_peer is not None and from_peer not in snapshot.policy.peers:
            known = ", ".join(sorted(snapshot.policy.peers)) or "none yet"
            raise ConfigError(
                "--from-peer", f"{from_peer!r} is not a trusted peer here (trusted: {known})"
            )
        return explain_envelope(conn, snapshot, raw, from_peer, clock())
    finally:
        conn.close()


def explain_envelope(
    conn: db.Connection,
    snapshot: trust.TrustSnapshot,
    raw: bytes,
    from_peer: str | None,
    now: datetime,
    *,
    as_new: bool = False,
) -> dict[str, Any]:
    """The decision for ``raw`` under ``snapshot``; ``as_new`` ignores that it is stored
    (the web desk explains a held alert as the policy would judge it arriving now)."""
    prepared = prepare(raw, snapshot)
    if isinstance(prepared, Rejected):
        return {"decision": "reject", "reason": prepared.reason}
    alert = prepared.alert
    state = store.policy_state(conn, alert, from_peer)
    if as_new:
        state = msgspec.structs.replace(state, stored="no")
    decision = decide(prepared.envelope, alert, prepared.verification, snapshot.policy, state, now)
    origin_peer = snapshot.policy.peers.get(alert.network)
    extra: dict[str, Any] = {}
    if state.stored == "accepted":
        extra["accepted_here"] = _accepted_here(conn, alert.id)
        fresh = msgspec.structs.replace(state, stored="no")
        again = decide(prepared.envelope, alert, prepared.verification, snapshot.policy, fresh, now)
        extra["as_new"] = {"decision": again.action, "reason": again.reason}
    return {
        "alert_id": alert.id,
        "origin": alert.network,
        "decision": decision.action,
        "reason": decision.reason,
        "signatures": [
            f"{check.keyid} "
            + (
                f"{check.entry.network} {'valid' if check.valid else 'INVALID'}"
                if check.entry
                else "unknown key"
            )
            for check in prepared.verification.checks
        ],
        "endorsed_by": prepared.incoming.endorsed_by,
        "inside_speaks_for": bool(origin_peer and inside_scope(alert, origin_peer.speaks_for)),
        "origin_trusted": _trusted_by(conn, alert.network, origin_peer, snapshot, now),
        "stored_here": state.stored,
        **extra,
    }


def _trusted_by(
    conn: db.Connection,
    network: str,
    peer: PeerPolicy | None,
    snapshot: trust.TrustSnapshot,
    now: datetime,
) -> str:
    """Which rule makes the origin what it is here: local, which list (version), a deny."""
    if network == snapshot.policy.own_network:
        return "this node"
    if peer is None:
        why = next((reason for name, reason, _ in trust.denied(conn) if name == network), None)
        if why is not None:
            return f"denied here (avisa trust deny: {why}); no list applies"
        return "not trusted here (neither avisa trust add nor a trust list)"
    if not peer.sources:
        return "locally (avisa trust add)"
    lists = "; ".join(
        f"list {s.list} version {s.version}, "
        f"{'expired' if s.expires_at <= now else 'expires'} {rfc3339(s.expires_at)}"
        for s in peer.sources
    )
    return f"through {lists}" + (" (frozen)" if peer.frozen(now) else "")


def _accepted_here(conn: db.Connection, alert_id: str) -> dict[str, Any] | None:
    found = store.acceptance(conn, alert_id)
    if found is None:
        return None
    at_s, peer, reason = found
    return {"at": rfc3339(from_epoch(at_s)), "from_peer": peer, "reason": reason}
