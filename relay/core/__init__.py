"""The pure core: rules without I/O, tested without an event loop.

Lives here: the payload model and envelopes (``model``, ``envelope``:
sign/open/verify), the trust policy (``policy``), operator drafts
(``drafts``), tips and the desk's state machine (``tips``, ``tipdrafts``),
geohashes (``geohash``), forwarding rules (``forwarding``), strict JSON
(``strictjson``), errors typed by fault (``errors``: an errcode, never an
HTTP status), time values (``times``), the one backoff policy (``backoff``),
the typed ``avisa.toml`` schema and its checks (``config``; its bridges' sections in
``bridgeconfig``), phone numbers
and sealing (``phone``, ``sealing``).

May import: ``keys.core`` and the standard library's pure parts. Never
asyncio, aiohttp, sqlite3, socket, subprocess, os, pathlib or time, and
never reads a clock: the caller passes ``now`` in.

Go instead to ``relay.storage`` for SQL, ``relay.runtime`` for anything
that waits or runs, ``keys.cards`` for key documents.
"""
