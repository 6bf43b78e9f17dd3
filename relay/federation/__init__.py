"""Federation: nodes talking to their peers (DESIGN §5).

- ``host``: the ``Protocol``s through which federation sees its node
  (``FederationHost``); never the whole ``Node``.
- ``auth``: signing and verifying requests (pure; time passed in).
- ``transport``: the signed HTTP client for one peer.
- ``sender``: one task per peer that pushes the outbox and pulls catch-up.
- ``catchup``: serving and pulling ``/federation/v1/alerts``.
- ``keyrefresh``: following peers' key documents.
- ``inbound``: the ``/federation/v1/*`` routes.
- ``service``: ``Federation``, which the composition root builds and starts.

May import: ``relay.runtime`` and everything below it. Never ``bridges``,
``relay.http`` or above. Forwarding rules are in ``relay.core.forwarding``;
the outbox and gaps tables in ``relay.storage``.

This ``__init__`` imports nothing.
"""
