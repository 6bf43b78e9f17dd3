"""The running node: resources with a lifetime, and the one path of an envelope.

Lives here: ``Node`` (database, pools, trust snapshot, housekeeping loops),
the ``Pipeline`` every envelope takes, the tip ``Desk``, verification workers (``verifier``,
``verify_worker``), the one clock (``clock``: system, fake and file clocks,
``every``), the feed signal (``feed``), decision logs (``log``), metrics,
``explain``, shared HTTP edges (``httpio``: bodies in, errcode → status
out), and small asyncio/process helpers (``aio``, ``process``).

May import: ``keys.store``, ``relay.storage``, ``keys.cards``,
``relay.core``, ``keys.core``. Never ``relay.federation`` or ``bridges``:
they reach the node through their own ``Protocol``s, and the node sees
them as ``PeerLinks`` / ``Service``.

Go instead to ``relay.http`` to wire things together, ``relay.core`` for
a rule that needs no I/O.
"""
