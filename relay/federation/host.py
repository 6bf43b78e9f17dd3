"""What federation reads and asks of the node it runs in, as small ``Protocol``s.

Federation never holds the whole ``relay.runtime.node.Node``: the
composition root (``relay.http.app``) passes the node as a
``FederationHost``, and a test can pass anything with these members
(``tests/test_federation_standalone.py`` builds a ``Federation`` from a
database, a feed signal, a pipeline and a fake clock, with no ``Node``).

- ``Identity``: who this node is and whom it trusts. Read at every use,
  never copied: a trust reload or a key rotation takes effect at once.
- ``Intake``: the one way an envelope from a peer enters the node.
- ``FederationHost``: the two, plus the shared resources federation works
  with (database, feed signal, clock, thread pool, metrics) and the
  retention window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import timedelta
from typing import Protocol

from keys.core.keyring import KeyEntry
from keys.core.signing import NodeKey
from relay.core.config import Config
from relay.runtime.clock import NodeClock
from relay.runtime.feed import FeedSignal
from relay.runtime.metrics import Metrics
from relay.runtime.pipeline import Outcome, Raws
from relay.storage.db import Connection, Database
from relay.storage.trust import TrustSnapshot


class Identity(Protocol):
    """This node's name, current key, configuration and trust snapshot."""

    @property
    def network(self) -> str: ...

    @property
    def key(self) -> NodeKey: ...

    @property
    def config(self) -> Config: ...

    @property
    def trust(self) -> TrustSnapshot: ...

    def own_keys(self) -> list[KeyEntry]: ...

    async def reload_trust(self) -> None:
        """Read trust again from the database (after a peer's key document changed it)."""
        ...


class Intake(Protocol):
    """``relay.runtime.pipeline.Pipeline.ingest``: verify, decide and store envelopes;
    ``cancel_signed``: set when this node signed a cancel (its checkpoint follows)."""

    @property
    def cancel_signed(self) -> asyncio.Event: ...

    async def ingest(
        self,
        raws: Raws,
        from_peer: str | None,
        then: Callable[[Connection, list[Outcome]], None] | None = None,
        first: Callable[[Connection], None] | None = None,
        size: int | None = None,
    ) -> list[Outcome]: ...


class FederationHost(Identity, Protocol):
    """Everything federation uses of its node."""

    @property
    def db(self) -> Database: ...

    @property
    def clock(self) -> NodeClock: ...

    @property
    def feed(self) -> FeedSignal: ...

    @property
    def pool(self) -> Executor: ...

    @property
    def pipeline(self) -> Intake: ...

    @property
    def metrics(self) -> Metrics:
        """Counters federation adds to (a peer that reuses a transaction id)."""
        ...

    def retention_window(self) -> timedelta: ...
