"""The schema: every table the node keeps, as named migrations applied in order.

``db.migrate`` applies the ones a database has not seen, each in its own
transaction, and records its name in ``schema_migrations``. A feature that needs
a table or a column appends a migration here; an applied one is never edited
(a node upgraded in place would never see the edit). The coalition's tables
(trust lists, checkpoints, evidence: issues 28 and 29) are in
``relay.storage.schema_coalition``, appended after these.
"""

from __future__ import annotations

from relay.storage.schema_coalition import COALITION_MIGRATIONS

_NODE_MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_core",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE alerts (
            id TEXT PRIMARY KEY,
            network TEXT NOT NULL,
            seq INTEGER NOT NULL,
            msg_type TEXT NOT NULL,
            kind TEXT NOT NULL,
            certainty TEXT NOT NULL,
            sent_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            state TEXT NOT NULL
                CHECK (state IN ('active', 'held', 'cancelled', 'superseded')),
            reason TEXT NOT NULL,
            from_peer TEXT,
            endorsed_by TEXT NOT NULL,
            pos INTEGER UNIQUE,
            envelope BLOB NOT NULL
        );
        CREATE INDEX alerts_expires ON alerts (expires_at);
        CREATE INDEX alerts_state ON alerts (state);
        CREATE TABLE feed (
            pos INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id TEXT NOT NULL,
            event TEXT NOT NULL CHECK (event IN ('alert', 'update', 'cancel'))
        );
        CREATE INDEX feed_alert ON feed (alert_id);
        CREATE TABLE tombstones (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('cancelled', 'superseded', 'rejected')),
            by_id TEXT NOT NULL,
            keep_until INTEGER NOT NULL
        );
        CREATE TABLE decisions (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            at INTEGER NOT NULL,
            alert_id TEXT,
            network TEXT,
            peer TEXT,
            action TEXT NOT NULL,
            reason TEXT NOT NULL
        );
        CREATE TABLE origins (network TEXT PRIMARY KEY, max_seq INTEGER NOT NULL);
        CREATE TABLE tokens (
            hash BLOB PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('publisher', 'reviewer', 'admin')),
            label TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE cursors (name TEXT PRIMARY KEY, pos INTEGER NOT NULL);
        CREATE TABLE peers (
            network TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            speaks_for TEXT NOT NULL,
            kinds TEXT NOT NULL,
            certainties TEXT NOT NULL,
            rate_limit_per_min INTEGER NOT NULL,
            forward INTEGER NOT NULL,
            endorse INTEGER NOT NULL,
            added_at INTEGER NOT NULL
        );
        CREATE TABLE peer_keys (
            keyid TEXT PRIMARY KEY,
            network TEXT NOT NULL REFERENCES peers (network) ON DELETE CASCADE,
            public_key BLOB NOT NULL,
            valid_from INTEGER,
            valid_until INTEGER,
            revoked_at INTEGER
        );
        INSERT INTO meta (key, value) VALUES ('trust_version', '0');
        """,
    ),
    (
        # Key management (keys/): this node's key history and statements, how
        # each peer key was learned, and the last key document per peer.
        "0100_keys_history",
        """
        CREATE TABLE own_keys (
            keyid TEXT PRIMARY KEY,
            public_key BLOB NOT NULL,
            valid_from INTEGER,
            valid_until INTEGER,
            revoked_at INTEGER,
            introduced_by TEXT
        );
        CREATE TABLE own_key_statements (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL CHECK (kind IN ('rotation', 'revocation')),
            keyid TEXT NOT NULL,
            at INTEGER NOT NULL,
            envelope BLOB NOT NULL
        );
        ALTER TABLE peer_keys ADD COLUMN learned_at INTEGER;
        ALTER TABLE peer_keys ADD COLUMN introduced_by TEXT;
        CREATE TABLE peer_key_documents (
            network TEXT PRIMARY KEY REFERENCES peers (network) ON DELETE CASCADE,
            issued_at INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            document BLOB NOT NULL
        );
        """,
    ),
    (
        "0200_federation",
        """
        CREATE TABLE outbox (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            peer TEXT NOT NULL,
            alert_id TEXT NOT NULL,
            priority INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            txn_id TEXT,
            UNIQUE (peer, alert_id)
        );
        CREATE INDEX outbox_next ON outbox (peer, txn_id, priority, n);
        CREATE INDEX outbox_expiry ON outbox (peer, expires_at);
        CREATE TABLE peer_delivery (
            peer TEXT PRIMARY KEY,
            last_success INTEGER,
            last_error TEXT,
            last_error_at INTEGER,
            failures INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE quarantine (
            peer TEXT NOT NULL,
            alert_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            reason TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            PRIMARY KEY (peer, alert_id)
        );
        CREATE TABLE fed_txns (
            origin TEXT NOT NULL,
            txn_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            reply BLOB NOT NULL,
            PRIMARY KEY (origin, txn_id)
        );
        CREATE INDEX fed_txns_at ON fed_txns (at);
        CREATE TABLE pull_cursors (
            peer TEXT PRIMARY KEY,
            cursor INTEGER NOT NULL,
            pulled_at INTEGER NOT NULL
        );
        CREATE TABLE seq_gaps (
            network TEXT NOT NULL,
            seq_from INTEGER NOT NULL,
            seq_to INTEGER NOT NULL,
            peer TEXT,
            noticed_at INTEGER NOT NULL,
            pulled INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (network, seq_from)
        );
        """,
    ),
    (
        "0300_matrix",
        """
        CREATE TABLE matrix_devices (
            user_id TEXT PRIMARY KEY,
            device_id TEXT NOT NULL
        );
        CREATE TABLE matrix_posts (
            route TEXT NOT NULL,
            alert_id TEXT NOT NULL,
            room_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            root_id TEXT NOT NULL,
            root_event_id TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('active', 'cancelled', 'superseded', 'expired')),
            expires_at INTEGER NOT NULL,
            current INTEGER NOT NULL CHECK (current IN (0, 1)),
            PRIMARY KEY (route, alert_id)
        );
        CREATE INDEX matrix_posts_due ON matrix_posts (route, current, status, expires_at);
        CREATE INDEX matrix_posts_root ON matrix_posts (route, root_event_id);
        """,
    ),
    (
        # The verification desk (relay.storage.tips): tips, their history, a
        # per-node tip number; tokens hold a comma-separated set of roles.
        "0400_desk",
        """
        CREATE TABLE tips (
            id TEXT PRIMARY KEY,
            number INTEGER NOT NULL UNIQUE,
            state TEXT NOT NULL CHECK (state IN ('new', 'claimed', 'confirmed',
                'false_alarm', 'unable', 'duplicate', 'published', 'closed')),
            channel TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            geohash TEXT,
            codes TEXT NOT NULL,
            reporter BLOB,
            contact BLOB,
            source_ref TEXT UNIQUE,
            alert_id TEXT,
            body BLOB NOT NULL
        );
        CREATE INDEX tips_state ON tips (state, received_at);
        CREATE INDEX tips_received ON tips (received_at);
        CREATE TABLE tip_history (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            tip_id TEXT NOT NULL REFERENCES tips (id) ON DELETE CASCADE,
            event BLOB NOT NULL
        );
        CREATE INDEX tip_history_tip ON tip_history (tip_id, n);
        CREATE TABLE tip_numbers (last INTEGER NOT NULL);
        INSERT INTO tip_numbers (last) VALUES (0);
        CREATE TABLE tokens_with_roles (
            hash BLOB PRIMARY KEY,
            roles TEXT NOT NULL CHECK (roles != ''),
            label TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        INSERT INTO tokens_with_roles (hash, roles, label, created_at)
            SELECT hash, role, label, created_at FROM tokens;
        DROP TABLE tokens;
        ALTER TABLE tokens_with_roles RENAME TO tokens
        """,
    ),
    (
        # CAP import (bridges/cap): each outside message read (by CAP's own key,
        # sender,identifier) and the desk tip it filed or changed; index entries
        # already read; each source's HTTP validators.
        "0600_cap",
        """
        CREATE TABLE cap_imports (
            ref TEXT PRIMARY KEY,
            root TEXT NOT NULL,
            source TEXT NOT NULL,
            msg_type TEXT NOT NULL,
            sent INTEGER NOT NULL,
            expires_at INTEGER,
            outcome TEXT NOT NULL,
            keep_until INTEGER NOT NULL
        );
        CREATE INDEX cap_imports_keep ON cap_imports (keep_until);
        CREATE TABLE cap_entries (
            source TEXT NOT NULL,
            entry TEXT NOT NULL,
            keep_until INTEGER NOT NULL,
            PRIMARY KEY (source, entry)
        );
        CREATE INDEX cap_entries_keep ON cap_entries (keep_until);
        CREATE TABLE cap_sources (
            source TEXT PRIMARY KEY,
            etag TEXT,
            last_modified TEXT
        );
        """,
    ),
    (
        # fed_txns: the body a reply answered (a reused txn_id is noticed). feed: a
        # 'withdraw' event, when an accepted alert goes back to review; matrix_posts:
        # the 'withdrawn' status that event leaves in a room. SQLite cannot change a
        # CHECK, so both tables are rebuilt, keeping feed's AUTOINCREMENT counter
        # (positions are cursors and are never reused).
        "0450_protocol",
        """
        ALTER TABLE fed_txns ADD COLUMN body_sha256 BLOB;
        CREATE TABLE feed_0450 (
            pos INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id TEXT NOT NULL,
            event TEXT NOT NULL CHECK (event IN ('alert', 'update', 'cancel', 'withdraw'))
        );
        INSERT INTO feed_0450 (pos, alert_id, event) SELECT pos, alert_id, event FROM feed;
        DELETE FROM sqlite_sequence WHERE name = 'feed_0450';
        INSERT INTO sqlite_sequence (name, seq)
            SELECT 'feed_0450', seq FROM sqlite_sequence WHERE name = 'feed';
        DROP TABLE feed;
        ALTER TABLE feed_0450 RENAME TO feed;
        CREATE INDEX feed_alert ON feed (alert_id);
        CREATE TABLE matrix_posts_0450 (
            route TEXT NOT NULL,
            alert_id TEXT NOT NULL,
            room_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            root_id TEXT NOT NULL,
            root_event_id TEXT NOT NULL,
            status TEXT NOT NULL CHECK (
                status IN ('active', 'cancelled', 'superseded', 'expired', 'withdrawn')
            ),
            expires_at INTEGER NOT NULL,
            current INTEGER NOT NULL CHECK (current IN (0, 1)),
            PRIMARY KEY (route, alert_id)
        );
        INSERT INTO matrix_posts_0450 SELECT route, alert_id, room_id, event_id, root_id,
            root_event_id, status, expires_at, current FROM matrix_posts;
        DROP TABLE matrix_posts;
        ALTER TABLE matrix_posts_0450 RENAME TO matrix_posts;
        CREATE INDEX matrix_posts_due ON matrix_posts (route, current, status, expires_at);
        CREATE INDEX matrix_posts_root ON matrix_posts (route, root_event_id);
        """,
    ),
    (
        # The text line (bridges/sms): subscribers (sealed numbers), texts, the
        # per-recipient queue, inbound ids already handled.
        "0500_sms",
        """
        CREATE TABLE sms_subscribers (
            hash BLOB PRIMARY KEY,
            sealed BLOB NOT NULL,
            keyword TEXT NOT NULL,
            lang TEXT NOT NULL,
            areas TEXT NOT NULL,
            since INTEGER NOT NULL
        );
        CREATE INDEX sms_subscribers_areas ON sms_subscribers (areas);
        CREATE TABLE sms_messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id TEXT,
            root_id TEXT,
            lang TEXT NOT NULL,
            body TEXT NOT NULL,
            coding TEXT NOT NULL CHECK (coding IN ('gsm7', 'ucs2')),
            segments INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            UNIQUE (alert_id, lang)
        );
        CREATE TABLE sms_queue (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hash BLOB NOT NULL,
            sealed BLOB,
            message_id INTEGER NOT NULL REFERENCES sms_messages (id) ON DELETE CASCADE,
            root_id TEXT,
            state TEXT NOT NULL
                CHECK (state IN ('queued', 'sending', 'sent', 'delivered', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at INTEGER NOT NULL,
            sending_at INTEGER,
            gateway_ref TEXT,
            dlr TEXT,
            created_at INTEGER NOT NULL,
            UNIQUE (hash, message_id)
        );
        CREATE INDEX sms_queue_due ON sms_queue (state, next_at);
        CREATE INDEX sms_queue_root ON sms_queue (root_id, hash);
        CREATE TABLE sms_mo (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
        CREATE INDEX sms_mo_at ON sms_mo (at);
        """,
    ),
    (
        "0740_relay",
        """
        ALTER TABLE peers ADD COLUMN relay TEXT NOT NULL DEFAULT 'all'
            CHECK (relay IN ('all', 'peers', 'own'));
        """,
    ),
    (
        "0720_sms_stop",
        """
        CREATE TABLE sms_optout (hash BLOB PRIMARY KEY, at INTEGER NOT NULL);
        CREATE INDEX sms_optout_at ON sms_optout (at);
        CREATE TABLE sms_replies (at INTEGER NOT NULL);
        CREATE INDEX sms_replies_at ON sms_replies (at);
        """,
    ),
    (
        # Desk integrity (DESIGN §17): the state ``disputed`` (the tips table is rebuilt for
        # its CHECK, its history with it so the foreign key follows), tips counted per
        # sender (tips_sender), persons behind tokens and Matrix ids.
        "0700_desk_integrity",
        """
        CREATE TABLE tips_0700 (
            id TEXT PRIMARY KEY,
            number INTEGER NOT NULL UNIQUE,
            state TEXT NOT NULL CHECK (state IN ('new', 'claimed', 'confirmed',
                'false_alarm', 'unable', 'duplicate', 'disputed', 'published', 'closed')),
            channel TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            geohash TEXT,
            codes TEXT NOT NULL,
            reporter BLOB,
            contact BLOB,
            source_ref TEXT UNIQUE,
            alert_id TEXT,
            body BLOB NOT NULL
        );
        INSERT INTO tips_0700 (id, number, state, channel, received_at, geohash, codes,
            reporter, contact, source_ref, alert_id, body)
            SELECT id, number, state, channel, received_at, geohash, codes, reporter,
            contact, source_ref, alert_id, body FROM tips;
        CREATE TABLE tip_history_0700 (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            tip_id TEXT NOT NULL REFERENCES tips_0700 (id) ON DELETE CASCADE,
            event BLOB NOT NULL
        );
        INSERT INTO tip_history_0700 (n, tip_id, event) SELECT n, tip_id, event FROM tip_history;
        DROP TABLE tip_history;
        DROP TABLE tips;
        ALTER TABLE tips_0700 RENAME TO tips;
        ALTER TABLE tip_history_0700 RENAME TO tip_history;
        CREATE INDEX tips_state ON tips (state, received_at);
        CREATE INDEX tips_received ON tips (received_at);
        CREATE INDEX tips_sender ON tips (reporter, state, received_at);
        CREATE INDEX tip_history_tip ON tip_history (tip_id, n);
        ALTER TABLE tokens ADD COLUMN person TEXT;
        UPDATE tokens SET person = NULLIF(label, '');
        CREATE TABLE desk_persons (actor TEXT PRIMARY KEY, person TEXT NOT NULL)
        """,
    ),
]

MIGRATIONS: list[tuple[str, str]] = [*_NODE_MIGRATIONS, *COALITION_MIGRATIONS]
