"""The coalition's tables as migrations: trust lists, checkpoints and their evidence.

Appended to ``relay.storage.schema.MIGRATIONS`` in this order, after the node's
own tables; the same rules hold (append only, never edit an applied one). A
later feature appends to whichever list holds its responsibility, keeping the
names' numbers increasing across both.
"""

from __future__ import annotations

COALITION_MIGRATIONS: list[tuple[str, str]] = [
    (
        "0750_trustlists",
        """
        CREATE TABLE trustlist_versions (
            list TEXT NOT NULL,
            version INTEGER NOT NULL,
            digest TEXT NOT NULL,
            issued_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            stored_at INTEGER NOT NULL,
            envelope BLOB NOT NULL,
            PRIMARY KEY (list, version)
        );
        CREATE TABLE trustlist_subscriptions (
            list TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            max_speaks_for TEXT NOT NULL,
            version INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            envelope BLOB NOT NULL,
            subscribed_at INTEGER NOT NULL,
            checked_at INTEGER NOT NULL,
            refusal TEXT,
            refusal_message TEXT,
            refused_at INTEGER
        );
        CREATE TABLE trustlist_evidence (
            list TEXT NOT NULL,
            version INTEGER NOT NULL,
            digest TEXT NOT NULL,
            envelope BLOB NOT NULL,
            at INTEGER NOT NULL,
            PRIMARY KEY (list, version, digest)
        );
        """,
    ),
    (
        "0760_checkpoints",
        """
        CREATE TABLE chain (
            network TEXT NOT NULL,
            seq INTEGER NOT NULL,
            head BLOB NOT NULL,
            PRIMARY KEY (network, seq)
        ) WITHOUT ROWID;
        CREATE TABLE chain_pending (
            network TEXT NOT NULL,
            seq INTEGER NOT NULL,
            digest BLOB NOT NULL,
            PRIMARY KEY (network, seq)
        ) WITHOUT ROWID;
        CREATE TABLE checkpoints (
            network TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            head BLOB NOT NULL,
            issued_at INTEGER NOT NULL,
            envelope BLOB NOT NULL,
            from_peer TEXT,
            received_at INTEGER NOT NULL
        );
        CREATE INDEX alerts_origin_seq ON alerts (network, seq);
        """,
    ),
    (
        # Networks this node refuses whatever a trust list says (avisa trust deny), and keys
        # of list-only peers revoked here (avisa trust revoke): both beat every list (§15).
        "0770_trust_deny",
        """
        CREATE TABLE trust_deny (
            network TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            denied_at INTEGER NOT NULL
        );
        CREATE TABLE trust_revoked_keys (
            keyid TEXT PRIMARY KEY,
            network TEXT NOT NULL,
            revoked_at INTEGER NOT NULL
        );
        """,
    ),
    (
        "0780_checkpoint_cosignatures",
        """
        ALTER TABLE checkpoints ADD COLUMN cosignatures BLOB NOT NULL DEFAULT x'';
        """,
    ),
    (
        "0781_chain_evidence",
        """
        CREATE TABLE chain_evidence (
            id INTEGER PRIMARY KEY,
            network TEXT NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('checkpoints', 'chain')),
            first BLOB NOT NULL,
            second BLOB NOT NULL,
            from_peer TEXT,
            seen_at INTEGER NOT NULL,
            cleared_at INTEGER,
            UNIQUE (network, seq, kind)
        );
        """,
    ),
]
