"""``avisa trust deny|undeny``: networks this node refuses whatever a trust list says.

A deny (DESIGN §15) beats every subscribed list: the network's list entries
are not taken (``keys.cards.trustmerge``), so its alerts are judged as from an
unknown network (they need endorsements) and it gets nothing from us. It is a
statement about lists only: a network trusted here with ``avisa trust add`` is
not denied (``avisa trust remove`` it first), since two local decisions must
not contradict each other. Each operation is one IMMEDIATE transaction on the
data directory and bumps ``trust_version``, so a running node applies it
within seconds.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from keys.store.own_ops import open_store
from relay.core.errors import BadInput
from relay.core.model import NETWORK_MAX, NETWORK_MIN, NETWORK_PATTERN
from relay.core.times import Clock, rfc3339
from relay.storage import db, trust

_NETWORK = re.compile(NETWORK_PATTERN)
MAX_REASON = 200


def _check(network: str, reason: str) -> str:
    if not (NETWORK_MIN <= len(network) <= NETWORK_MAX and _NETWORK.match(network)):
        raise BadInput("AVISA_USAGE", f"{network!r} is not a network name (e.g. santa-ana)")
    reason = reason.strip()
    if not 1 <= len(reason) <= MAX_REASON or not reason.isprintable():
        raise BadInput("AVISA_USAGE", f"--reason is 1-{MAX_REASON} printable characters")
    return reason


def deny(data_dir: Path, network: str, reason: str, clock: Clock) -> bool:
    """Deny ``network``; False when it already was."""
    reason = _check(network, reason)
    with open_store(data_dir) as (config, conn):
        if network == config.node.network:
            raise BadInput("AVISA_USAGE", "this is this node's own network")

        def job(c: sqlite3.Connection) -> bool:
            if any(peer.network == network for peer in trust.load_peers(c)):
                raise BadInput(
                    "AVISA_TRUSTED_LOCALLY",
                    f"{network} is trusted here with 'avisa trust add'; a deny only overrides"
                    f" trust lists: 'avisa trust remove {network}' first",
                )
            return trust.deny(c, network, reason, clock())

        done: bool = db.transaction(conn, job)
    return done


def undeny(data_dir: Path, network: str) -> None:
    with open_store(data_dir) as (_, conn):
        if not db.transaction(conn, lambda c: trust.undeny(c, network)):
            raise BadInput("AVISA_NOT_DENIED", f"{network} is not denied here")


def denied(data_dir: Path) -> list[dict[str, Any]]:
    with open_store(data_dir) as (_, conn):
        rows = trust.denied(conn)
    return [{"network": n, "reason": r, "denied_at": rfc3339(at)} for n, r, at in rows]
