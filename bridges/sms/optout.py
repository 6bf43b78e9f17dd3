"""Who the line must not text, and how many answers it may send (migration 0720_sms_stop).

- ``sms_optout``: the keyed hashes (``bridges.sms.inbound.HASH_PURPOSE``) of
  numbers that texted STOP or that a carrier reported as opted out, and
  when. Never a number. While a hash is here the line queues **nothing** for
  it: no alert (STOP deleted its subscription, and a subscribe keyword is
  not applied), no answer, no desk receipt. Only START removes it. The set
  is bounded (``MAX_OPTED_OUT``): past it the oldest entries go, which
  costs little, since an opted-out number is no longer a subscriber and an
  evicted one would only hear from the line again by texting it first.
- ``sms_replies``: one row (a time, nothing else) per answer queued, for the
  line's budget of answers per hour in total (``[bridges.sms]
  max_replies_per_hour``): forged or real floods of texts from many numbers
  cannot make the line text without bound. Rows older than the window go as
  new ones come, so the table holds at most one hour's budget.

Every function runs inside a transaction its caller owns. With ``bridges.sms.store``
(the queue's tables) this is the text line's storage room: the one owner of its tables.
"""

from __future__ import annotations

import sqlite3

MAX_OPTED_OUT = 100_000
REPLY_WINDOW_S = 3600


def opt_out(conn: sqlite3.Connection, hashed: bytes, now: int) -> None:
    """Record a STOP (or a carrier's opt-out); the oldest go past ``MAX_OPTED_OUT``."""
    conn.execute(
        "INSERT INTO sms_optout (hash, at) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING",
        (hashed, now),
    )
    (count,) = conn.execute("SELECT count(*) FROM sms_optout").fetchone()
    if count > MAX_OPTED_OUT:
        conn.execute(
            "DELETE FROM sms_optout WHERE hash IN"
            " (SELECT hash FROM sms_optout ORDER BY at, hash LIMIT ?)",
            (count - MAX_OPTED_OUT,),
        )


def opt_in(conn: sqlite3.Connection, hashed: bytes) -> bool:
    """START: the number may be texted again; True if it had opted out."""
    return bool(conn.execute("DELETE FROM sms_optout WHERE hash = ?", (hashed,)).rowcount)


def opted_out(conn: sqlite3.Connection, hashed: bytes) -> bool:
    row = conn.execute("SELECT 1 FROM sms_optout WHERE hash = ?", (hashed,)).fetchone()
    return row is not None


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM sms_optout").fetchone()[0])


def spend_reply(conn: sqlite3.Connection, now: int, per_hour: int) -> bool:
    """Take one answer from the hour's budget; False (nothing recorded) when it is spent."""
    conn.execute("DELETE FROM sms_replies WHERE at <= ?", (now - REPLY_WINDOW_S,))
    (spent,) = conn.execute("SELECT count(*) FROM sms_replies").fetchone()
    if spent >= per_hour:
        return False
    conn.execute("INSERT INTO sms_replies (at) VALUES (?)", (now,))
    return True
