"""What the text line remembers, in the node's database (migration 0500_sms).

- ``sms_subscribers``: one row per subscribed number: the number sealed
  (``relay.core.sealing``), found by its keyed hash; keyword, language and
  areas (a sorted JSON list, so equal area sets compare equal in SQL).
  Unsubscribing deletes the row and every queued or sent row of that hash.
- ``sms_messages``: one text per alert and subscriber language (shared by all
  its recipients), or one per reply.
- ``sms_queue``: the durable per-recipient queue. ``queued`` → ``sending``
  (written before the gateway is called) → ``sent`` → ``delivered`` or
  ``failed`` (from delivery reports). A reply to someone who is not (or no
  longer) a subscriber carries its own sealed number, erased once sent; an
  alert row takes the number from ``sms_subscribers`` when it is sent, so a
  number that unsubscribed meanwhile is never texted. ``root_id`` is the
  original alert of an update chain: who got it is who gets its updates.
- ``sms_mo``: ids of inbound messages already handled (a replay changes nothing).

Every function runs inside a transaction its caller owns.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bridges.sms.gsm import Encoded

SENT_STATES = ("sending", "sent", "delivered")


@dataclass(frozen=True, slots=True)
class Subscriber:
    keyword: str
    lang: str
    areas: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A queue row being sent: the sealed number and the text."""

    queue_id: int
    sealed: bytes
    body: str
    coding: str
    attempts: int


def areas_key(areas: Iterable[str]) -> str:
    return json.dumps(sorted(set(areas)), separators=(",", ":"))


# --- subscribers ----------------------------------------------------------------


def subscriber(conn: sqlite3.Connection, hashed: bytes) -> Subscriber | None:
    row = conn.execute(
        "SELECT keyword, lang, areas FROM sms_subscribers WHERE hash = ?", (hashed,)
    ).fetchone()
    if row is None:
        return None
    return Subscriber(row[0], row[1], tuple(json.loads(row[2])))


def subscribe(
    conn: sqlite3.Connection,
    hashed: bytes,
    sealed: bytes,
    keyword: str,
    lang: str,
    areas: Sequence[str],
    now: int,
) -> None:
    conn.execute(
        "INSERT INTO sms_subscribers (hash, sealed, keyword, lang, areas, since)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO UPDATE SET sealed = excluded.sealed,"
        " keyword = excluded.keyword, lang = excluded.lang, areas = excluded.areas",
        (hashed, sealed, keyword, lang, areas_key(areas), now),
    )


def unsubscribe(conn: sqlite3.Connection, hashed: bytes) -> bool:
    """Forget the number and everything queued or sent to it; True if it was subscribed."""
    gone = conn.execute("DELETE FROM sms_subscribers WHERE hash = ?", (hashed,)).rowcount
    conn.execute("DELETE FROM sms_queue WHERE hash = ?", (hashed,))
    return bool(gone)


def mo_seen(conn: sqlite3.Connection, mo_id: str, now: int) -> bool:
    """Record an inbound message id; True if it was handled before."""
    inserted = conn.execute(
        "INSERT INTO sms_mo (id, at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING", (mo_id, now)
    ).rowcount
    return not inserted


def mo_handled(conn: sqlite3.Connection, mo_id: str) -> bool:
    """Whether an inbound message id was handled (``mo_seen`` without recording it)."""
    return conn.execute("SELECT 1 FROM sms_mo WHERE id = ?", (mo_id,)).fetchone() is not None


# --- enqueueing -----------------------------------------------------------------


def _message(
    conn: sqlite3.Connection,
    alert_id: str | None,
    root_id: str | None,
    lang: str,
    encoded: Encoded,
    now: int,
) -> int:
    if alert_id is not None:
        row = conn.execute(
            "SELECT id FROM sms_messages WHERE alert_id = ? AND lang = ?", (alert_id, lang)
        ).fetchone()
        if row is not None:
            return int(row[0])
    cursor = conn.execute(
        "INSERT INTO sms_messages (alert_id, root_id, lang, body, coding, segments, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (alert_id, root_id, lang, encoded.text, encoded.coding, encoded.segments, now),
    )
    return int(cursor.lastrowid or 0)


def enqueue_reply(
    conn: sqlite3.Connection, hashed: bytes, sealed: bytes, lang: str, encoded: Encoded, now: int
) -> int:
    message = _message(conn, None, None, lang, encoded, now)
    cursor = conn.execute(
        "INSERT INTO sms_queue (hash, sealed, message_id, state, next_at, created_at)"
        " VALUES (?, ?, ?, 'queued', ?, ?)",
        (hashed, sealed, message, now, now),
    )
    return int(cursor.lastrowid or 0)


def replies_since(conn: sqlite3.Connection, hashed: bytes, since: int) -> int:
    """Answers (not alerts) queued for this number since ``since``."""
    row = conn.execute(
        "SELECT COUNT(*) FROM sms_queue q JOIN sms_messages m ON m.id = q.message_id"
        " WHERE q.hash = ? AND m.alert_id IS NULL AND q.created_at >= ?",
        (hashed, since),
    ).fetchone()
    return int(row[0])


def area_sets(conn: sqlite3.Connection) -> list[tuple[str, ...]]:
    rows = conn.execute("SELECT DISTINCT areas FROM sms_subscribers").fetchall()
    return [tuple(json.loads(row[0])) for row in rows]


def languages(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT DISTINCT lang FROM sms_subscribers")]


def enqueue_alert(
    conn: sqlite3.Connection,
    alert_id: str,
    wanted: Sequence[tuple[str, ...]],
    texts: Mapping[str, Encoded],
    now: int,
) -> int:
    """Queue the alert for every subscriber whose areas are one of ``wanted``."""
    keys = [areas_key(areas) for areas in wanted]
    total = 0
    for lang, encoded in texts.items():
        message = _message(conn, alert_id, alert_id, lang, encoded, now)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            total += conn.execute(
                "INSERT INTO sms_queue (hash, message_id, root_id, state, next_at, created_at)"  # noqa: S608
                " SELECT hash, ?, ?, 'queued', ?, ? FROM sms_subscribers"
                f" WHERE lang = ? AND areas IN ({marks})"
                " ON CONFLICT (hash, message_id) DO NOTHING",
                (message, alert_id, now, now, lang, *chunk),
            ).rowcount
    return total


def root_of(conn: sqlite3.Connection, references: Sequence[str]) -> str | None:
    """The original alert texted for any of ``references``, if any was."""
    if not references:
        return None
    marks = ",".join("?" * len(references))
    row = conn.execute(
        f"SELECT root_id FROM sms_messages WHERE alert_id IN ({marks}) LIMIT 1",  # noqa: S608
        tuple(references),
    ).fetchone()
    return None if row is None else str(row[0])


def enqueue_followup(
    conn: sqlite3.Connection,
    alert_id: str,
    root_id: str,
    texts: Mapping[str, Encoded],
    *,
    cancel: bool,
    now: int,
) -> int:
    """An update or cancel for those who got (or, for an update, await) the original.

    Originals still queued are dropped: a cancel makes them pointless, an
    update replaces them.
    """
    states = SENT_STATES if cancel else (*SENT_STATES, "queued")
    _follow_chain(conn, root_id, states)
    return _queue_for(conn, alert_id, root_id, texts, now)


WITHDRAWN = "#withdrawn@"
REINSTATED = "#reinstated@"


def enqueue_withdrawal(
    conn: sqlite3.Connection,
    alert_id: str,
    pos: int,
    texts: Mapping[str, Encoded],
    now: int,
) -> int:
    """The alert went back to review: a text for those it reached, none for the rest.

    Its copies still queued are dropped (nobody hears of it now). The
    withdrawal's messages are keyed ``<alert id>#withdrawn@<feed pos>``: one
    set per withdrawal event, so a retry of the same event adds nothing.
    """
    key = f"{alert_id}{WITHDRAWN}{pos}"
    return _enqueue_to(conn, (alert_id, f"{alert_id}#"), alert_id, key, texts, now)


def enqueue_reinstatement(
    conn: sqlite3.Connection,
    alert_id: str,
    pos: int,
    texts: Mapping[str, Encoded],
    now: int,
) -> int:
    """A reviewer accepted again what was withdrawn: the alert again, to those told of
    the withdrawal (a withdrawal text still queued is dropped instead)."""
    told = f"{alert_id}{WITHDRAWN}"
    return _enqueue_to(conn, (told, told), alert_id, f"{alert_id}{REINSTATED}{pos}", texts, now)


def was_withdrawn(conn: sqlite3.Connection, alert_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sms_messages WHERE alert_id >= ? AND alert_id < ? LIMIT 1",
        _prefixed(f"{alert_id}{WITHDRAWN}"),
    ).fetchone()
    return row is not None


def _prefixed(prefix: str) -> tuple[str, str]:
    """The keys starting with ``prefix``, as a range the (alert_id, lang) index serves
    (a ``substr`` or ``LIKE`` test would read every message, for every feed event)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _enqueue_to(
    conn: sqlite3.Connection,
    reached: tuple[str, str],
    alert_id: str,
    key: str,
    texts: Mapping[str, Encoded],
    now: int,
) -> int:
    """Queue ``texts`` (messages keyed ``key``) for those reached by a message keyed
    ``reached[0]`` or starting with ``reached[1]``; drop those messages' queued rows."""
    if conn.execute("SELECT 1 FROM sms_messages WHERE alert_id = ? LIMIT 1", (key,)).fetchone():
        return 0
    root = root_of(conn, [alert_id]) or alert_id
    _follow_messages(conn, root, reached)
    return _queue_for(conn, key, root, texts, now)


def _followers(conn: sqlite3.Connection) -> None:
    """An empty ``sms_followup``: the numbers a follow-up goes to, gathered first."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS sms_followup (hash BLOB PRIMARY KEY)")
    conn.execute("DELETE FROM sms_followup")


def _follow_chain(conn: sqlite3.Connection, root: str, states: tuple[str, ...]) -> None:
    """Followers: who has a row of ``root``'s chain in ``states``; its queued rows go."""
    _followers(conn)
    conn.execute(
        "INSERT OR IGNORE INTO sms_followup SELECT hash FROM sms_queue"
        " WHERE root_id = ? AND state IN (SELECT value FROM json_each(?))",
        (root, json.dumps(states)),
    )
    conn.execute("DELETE FROM sms_queue WHERE root_id = ? AND state = 'queued'", (root,))


def _follow_messages(conn: sqlite3.Connection, root: str, reached: tuple[str, str]) -> None:
    """Followers: who was sent a message keyed ``reached[0]`` or starting with
    ``reached[1]`` (in ``root``'s chain); those messages' queued rows go. Every row
    of a chain carries its root: the root index finds them."""
    _followers(conn)
    args = (root, reached[0], *_prefixed(reached[1]))
    conn.execute(
        "INSERT OR IGNORE INTO sms_followup SELECT hash FROM sms_queue"
        " WHERE root_id = ? AND message_id IN (SELECT id FROM sms_messages"
        " WHERE alert_id = ? OR (alert_id >= ? AND alert_id < ?))"
        " AND state IN (SELECT value FROM json_each(?))",
        (*args, json.dumps(SENT_STATES)),
    )
    conn.execute(
        "DELETE FROM sms_queue WHERE root_id = ? AND message_id IN (SELECT id FROM sms_messages"
        " WHERE alert_id = ? OR (alert_id >= ? AND alert_id < ?)) AND state = 'queued'",
        args,
    )


def _queue_for(
    conn: sqlite3.Connection,
    key: str,
    root: str,
    texts: Mapping[str, Encoded],
    now: int,
) -> int:
    """Queue ``texts`` (messages keyed ``key`` in ``root``'s chain) for the followers
    ``_follow_chain`` or ``_follow_messages`` gathered, in their language. The one
    follow-up mechanism (updates, cancels, withdrawals)."""
    total = 0
    for lang, encoded in texts.items():
        message = _message(conn, key, root, lang, encoded, now)
        total += conn.execute(
            "INSERT INTO sms_queue (hash, message_id, root_id, state, next_at, created_at)"
            " SELECT s.hash, ?, ?, 'queued', ?, ? FROM sms_subscribers s"
            " JOIN sms_followup f ON f.hash = s.hash WHERE s.lang = ?"
            " ON CONFLICT (hash, message_id) DO NOTHING",
            (message, root, now, now, lang),
        ).rowcount
    conn.execute("DELETE FROM sms_followup")
    return total


# --- sending --------------------------------------------------------------------


def claim_due(conn: sqlite3.Connection, now: int, limit: int) -> list[Claimed]:
    """Up to ``limit`` due rows, marked ``sending`` (durably, before any send)."""
    rows = conn.execute(
        "SELECT q.id, COALESCE(q.sealed, s.sealed), m.body, m.coding, q.attempts"
        " FROM sms_queue q JOIN sms_messages m ON m.id = q.message_id"
        " LEFT JOIN sms_subscribers s ON s.hash = q.hash"
        " WHERE q.state = 'queued' AND q.next_at <= ? ORDER BY q.next_at, q.id LIMIT ?",
        (now, limit),
    ).fetchall()
    claimed = [Claimed(row[0], row[1], row[2], row[3], row[4]) for row in rows if row[1]]
    orphans = [(row[0],) for row in rows if not row[1]]
    conn.executemany("DELETE FROM sms_queue WHERE id = ?", orphans)
    conn.executemany(
        "UPDATE sms_queue SET state = 'sending', sending_at = ?, attempts = attempts + 1"
        " WHERE id = ?",
        [(now, item.queue_id) for item in claimed],
    )
    return claimed


def mark_sent(conn: sqlite3.Connection, sent: Sequence[tuple[int, str]]) -> None:
    """``(queue_id, gateway_ref)``; a reply's own sealed number is erased now."""
    conn.executemany(
        "UPDATE sms_queue SET state = 'sent', sealed = NULL, gateway_ref = ?"
        " WHERE id = ? AND state = 'sending'",
        [(ref, queue_id) for queue_id, ref in sent],
    )


def mark_retry(conn: sqlite3.Connection, queue_ids: Sequence[int], next_at: int) -> None:
    conn.executemany(
        "UPDATE sms_queue SET state = 'queued', next_at = ? WHERE id = ? AND state = 'sending'",
        [(next_at, queue_id) for queue_id in queue_ids],
    )


def mark_failed(conn: sqlite3.Connection, queue_ids: Sequence[int], why: str) -> None:
    conn.executemany(
        "UPDATE sms_queue SET state = 'failed', sealed = NULL, dlr = ? WHERE id = ?",
        [(why[:60], queue_id) for queue_id in queue_ids],
    )


def requeue_in_doubt(conn: sqlite3.Connection, sent_before: int, now: int) -> int:
    """Rows left ``sending`` by a crash, with no delivery report for ``grace``: resend."""
    return conn.execute(
        "UPDATE sms_queue SET state = 'queued', next_at = ?"
        " WHERE state = 'sending' AND sending_at < ?",
        (now, sent_before),
    ).rowcount


def sealed_for(conn: sqlite3.Connection, queue_id: int) -> bytes | None:
    """The sealed number a queue row goes to (its own, or its subscriber's)."""
    row = conn.execute(
        "SELECT COALESCE(q.sealed, s.sealed) FROM sms_queue q"
        " LEFT JOIN sms_subscribers s ON s.hash = q.hash WHERE q.id = ?",
        (queue_id,),
    ).fetchone()
    return None if row is None or row[0] is None else bytes(row[0])


def hash_of(conn: sqlite3.Connection, queue_id: int) -> bytes | None:
    row = conn.execute("SELECT hash FROM sms_queue WHERE id = ?", (queue_id,)).fetchone()
    return None if row is None else bytes(row[0])


def record_report(conn: sqlite3.Connection, queue_id: int, state: str, detail: str) -> bool:
    """A delivery report; False when no such row exists (unknown or forgotten)."""
    if state == "sent":  # accepted by the carrier: only settles a row in doubt
        changed = conn.execute(
            "UPDATE sms_queue SET state = 'sent', sealed = NULL, dlr = ?"
            " WHERE id = ? AND state IN ('sending', 'sent')",
            (detail[:60], queue_id),
        ).rowcount
        return bool(changed) or hash_of(conn, queue_id) is not None
    return bool(
        conn.execute(
            "UPDATE sms_queue SET state = ?, sealed = NULL, dlr = ? WHERE id = ?",
            (state, detail[:60], queue_id),
        ).rowcount
    )


def next_due(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT MIN(next_at) FROM sms_queue WHERE state = 'queued'").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def oldest_sending(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT MIN(sending_at) FROM sms_queue WHERE state = 'sending'").fetchone()
    return None if row is None or row[0] is None else int(row[0])


# --- status and expiry --------------------------------------------------------------


def counts(conn: sqlite3.Connection) -> dict[str, object]:
    subscribers = [
        {"keyword": keyword, "lang": lang, "count": count}
        for keyword, lang, count in conn.execute(
            "SELECT keyword, lang, COUNT(*) FROM sms_subscribers GROUP BY keyword, lang"
            " ORDER BY keyword, lang"
        )
    ]
    states = dict.fromkeys(("queued", "sending", "sent", "delivered", "failed"), 0)
    for state, count in conn.execute("SELECT state, COUNT(*) FROM sms_queue GROUP BY state"):
        states[state] = count
    total = sum(int(str(entry["count"])) for entry in subscribers)
    return {"subscribers": total, "by_keyword": subscribers, **states}


def purge(conn: sqlite3.Connection, before: int) -> None:
    """Forget finished queue rows, their texts and old inbound ids."""
    conn.execute(
        "DELETE FROM sms_queue WHERE created_at < ? AND state IN ('sent', 'delivered', 'failed')",
        (before,),
    )
    conn.execute(
        "DELETE FROM sms_messages WHERE created_at < ?"
        " AND NOT EXISTS (SELECT 1 FROM sms_queue q WHERE q.message_id = sms_messages.id)",
        (before,),
    )
    conn.execute("DELETE FROM sms_mo WHERE at < ?", (before,))


def count_in(conn: sqlite3.Connection, wanted: Sequence[tuple[str, ...]]) -> int:
    """Subscribers whose areas are one of ``wanted`` (a preview's reach)."""
    total = 0
    keys = [areas_key(areas) for areas in wanted]
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        row = conn.execute(
            f"SELECT COUNT(*) FROM sms_subscribers WHERE areas IN ({marks})",  # noqa: S608
            chunk,
        ).fetchone()
        total += int(row[0])
    return total
