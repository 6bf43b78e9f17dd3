"""What every bridge keeps in the node's database: its routes' durable cursors.

- ``cursors`` (migration ``0001_core``): one row per route of a bridge (``matrix:<n>:<room>``,
  ``sms``), the feed position up to which it has delivered. A cursor only moves
  forward: an older position written late (a retry racing a newer delivery)
  changes nothing.

This module, ``bridges.sms.store``, ``bridges.sms.optout``, ``bridges.matrix.store``
and ``bridges.cap.store`` are the bridges' storage rooms: each bridge table has
one owner among them, and no other module under ``bridges/`` writes SQL or
imports ``sqlite3``. Code elsewhere names a connection ``Conn`` (re-exported
here) and hands it to these functions.

Every function runs inside a transaction its caller owns.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeAlias

Conn: TypeAlias = sqlite3.Connection
#: Work done inside one write transaction of the node's database.
Record: TypeAlias = Callable[[Conn], None]


def load_cursor(conn: Conn, name: str) -> int:
    row = conn.execute("SELECT pos FROM cursors WHERE name = ?", (name,)).fetchone()
    return 0 if row is None else int(row[0])


def save_cursor(conn: Conn, name: str, pos: int) -> None:
    conn.execute(
        "INSERT INTO cursors (name, pos) VALUES (?, ?) ON CONFLICT (name)"
        " DO UPDATE SET pos = excluded.pos WHERE excluded.pos > cursors.pos",
        (name, pos),
    )
