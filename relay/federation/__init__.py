"""Federation: nodes talking to their peers (DESIGN §5).

- ``auth``: signing and verifying requests (pure; time passed in).
- ``forwarding``: who gets an accepted message, and in what envelope (pure).
- ``outbox``, ``gaps``: the durable per-peer queue, delivery state and
  quarantine; origin ``seq`` gaps. Plain SQL on the caller's transaction, so
  an accepted alert and its outbox rows commit together.
- ``transport``: the signed HTTP client for one peer.
- ``sender``: one task per peer that pushes the outbox and pulls catch-up.
- ``catchup``: serving and pulling ``/federation/v1/alerts``.
- ``inbound``: the ``/federation/v1/*`` routes.
- ``keydoc``: the key document (placeholder until ``keys.cards.card``).
- ``service``: ``Federation``, which the node owns and starts.

This ``__init__`` imports nothing, so the store can import ``outbox`` and
``gaps`` without pulling in the HTTP side.
"""
