"""A running relay node: its store, pipeline, trust snapshot and housekeeping.

``Node`` owns the resources with a lifetime (database threads, the verify
pool, background tasks) and nothing else; HTTP lives in ``relay.http.app``.
``__init__`` creates the resources (``close`` releases them), ``start`` the
loops (``stop_tasks`` ends them); ``stop`` does it all. The loops run on the
node's clock (``relay.runtime.clock.every``): tests build a ``Node`` with a
``FakeClock`` and advance it, or call ``purge_once`` or ``reload_trust``
directly. A trust reload
also reloads the node's own key history and, after ``avisa keys rotate`` or
``revoke`` changed the current key, the new signing key from disk; publishing
checks for such a change first, so it never signs with a key just replaced.

The node's ``feed`` (``relay.runtime.feed.FeedSignal``) wakes whoever follows
the feed. Federation and the bridges see the node only through their own
``Protocol``s (``relay.federation.host``, ``bridges.base``), which ``Node``
satisfies.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Collection, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog

from keys.core.keyring import KeyEntry, Keyring
from keys.core.signing import NodeKey
from keys.store import ownkeys
from relay.core import config as config_mod
from relay.core import drafts
from relay.core.config import Config
from relay.core.drafts import Draft
from relay.core.errors import ConfigError, KeyFileError
from relay.core.model import Alert
from relay.core.times import parse_duration
from relay.runtime.aio import cancel_all
from relay.runtime.clock import NodeClock, every, system_clock
from relay.runtime.desk import Desk
from relay.runtime.feed import FeedSignal
from relay.runtime.log import DecisionLog
from relay.runtime.metrics import Metrics
from relay.runtime.pipeline import Pipeline
from relay.runtime.verifier import VerifierPool
from relay.storage import catalogues, configfile, sealkey, store, trust
from relay.storage.db import Connection, Database
from relay.storage.trust import TrustSnapshot

_log = structlog.get_logger("avisa.node")
TRUST_POLL_S = 2.0


def verify_workers(configured: int = 0) -> int:
    """Verification processes: ``[node] verify_workers``, or by default one per core.

    The node's own process is held to about one core by its GIL (the event
    loop, the database writer and the parse stage take turns). The workers run
    at the lowest CPU priority (``relay.runtime.verify_worker``), so they take what
    that process leaves and never preempt the thread holding its GIL. On two
    cores, two such workers ingested 8-24% more than one worker at normal
    priority (interleaved A/B, 3 rounds of 4); two at normal priority were
    no better than one.
    """
    return configured or max(1, os.cpu_count() or 2)


def passphrase_from_environment(explicit_file: Path | None = None) -> bytes | None:
    """``explicit_file``, else ``AVISA_PASSPHRASE_FILE``, else ``AVISA_PASSPHRASE``."""
    path = explicit_file or (
        Path(os.environ["AVISA_PASSPHRASE_FILE"]) if "AVISA_PASSPHRASE_FILE" in os.environ else None
    )
    if path is not None:
        try:
            return path.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise ConfigError(str(path), f"cannot read passphrase ({exc.strerror})") from None
    env = os.environ.get("AVISA_PASSPHRASE")
    return env.encode() if env else None


class Service(Protocol):
    """Something running beside the node (a bridge) that reports its state."""

    async def stop(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


class PeerLinks(Protocol):
    """The node's side of the network (``relay.federation``), as the node sees it.

    The composition root (``relay.http.app``) builds it and ``attach``es it:
    the runtime never imports federation.
    """

    async def stop(self) -> None: ...

    async def reconcile(self) -> None: ...

    def peer_status(self, network: str) -> dict[str, Any]: ...

    def silent_origins(self) -> dict[str, datetime]: ...

    def metrics_lines(self) -> Iterable[str]: ...


def read_passphrase(data_dir: Path, config: Config) -> bytes | None:
    configured = config.node.passphrase_file
    return passphrase_from_environment(data_dir / configured if configured else None)


class Node:
    def __init__(
        self,
        data_dir: Path,
        config: Config,
        key: NodeKey,
        clock: NodeClock = system_clock,
        verify_threads: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.key = key
        self.clock = clock
        self.network = config.node.network
        self.metrics = Metrics()
        self.feed = FeedSignal()
        self.db = Database(data_dir / config_mod.DB_NAME)
        # Every word a person reads, in [node] languages (relay.core.language).
        self.catalogues = catalogues.for_node(data_dir, config.node)
        self.pool = ThreadPoolExecutor(
            verify_threads or os.cpu_count() or 2, thread_name_prefix="avisa-verify"
        )
        # Started by ``avisa run`` (``relay.http.app``); until then, and without it,
        # signatures are verified in ``pool``.
        self.verifier = VerifierPool(verify_workers(config.node.verify_workers))
        self.retention = parse_duration(config.store.retention)
        policy = config.policy
        self.tombstone_ttl = parse_duration(policy.max_lifetime) + parse_duration(
            policy.max_future_skew
        )
        self.trust: TrustSnapshot = TrustSnapshot(
            policy=trust.policy_from_config(config, ()), keyring=Keyring()
        )
        self.pipeline = Pipeline(
            self.db,
            clock,
            lambda: self.trust,
            self.pool,
            self.tombstone_ttl,
            DecisionLog(monotonic=clock.monotonic),
            self._accepted,
            self.metrics,
            self.verifier,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.extra_own_keys: list[KeyEntry] = []
        self._reload_lock = asyncio.Lock()
        self._key_pending = False
        # Set by bridges.runner.start_bridges; stopped before everything else.
        self.bridges: list[Service] = []
        # Attached by the composition root (``relay.http.app.serve``) once built.
        self.federation: PeerLinks | None = None
        # The desk's sealing key is created on the first start of an older data dir.
        self.desk = Desk(
            self.db,
            sealkey.load_or_create(data_dir),
            clock,
            config.desk,
            self.publish_draft,
            self.catalogues,
            config.node.home_codes,
        )
        self.metrics.collectors.append(self.desk.metrics_lines)

    @classmethod
    def load(
        cls,
        data_dir: Path,
        clock: NodeClock = system_clock,
        check: Callable[[Config], None] | None = None,
    ) -> Node:
        """The node of ``data_dir``; ``check`` (the bridges' secrets) runs after the
        config and the key were read and before anything is created."""
        config = configfile.load(data_dir)
        passphrase = read_passphrase(data_dir, config)
        key = ownkeys.load_signing_key(data_dir, config.node.network, passphrase)
        if check is not None:
            check(config)
        return cls(data_dir, config, key, clock)

    async def attach(self, links: PeerLinks) -> None:
        """Let the node stop ``links``, ask them for peer status and reconcile them with trust."""
        self.federation = links
        self.metrics.collectors.append(links.metrics_lines)
        await links.reconcile()

    def peer_status(self, network: str) -> dict[str, Any]:
        return self.federation.peer_status(network) if self.federation else {}

    def silent_origins(self) -> dict[str, datetime]:
        """Trusted origins gone silent (DESIGN §16), each with its last word's time."""
        return self.federation.silent_origins() if self.federation else {}

    def own_keys(self) -> list[KeyEntry]:
        return [KeyEntry(self.network, self.key.public_key), *self.extra_own_keys]

    def _accepted(self, pos: int, queued_for: Collection[str] | None) -> None:
        self.feed.advance(pos, queued_for)

    async def start(self) -> None:
        await self.reload_trust()
        self.feed.advance(await self.db.read(store.feed_head))
        clock = self.clock
        self.spawn(every(clock, TRUST_POLL_S, self._reload_if_changed, "trust-reload"), "trust")
        purge_every = parse_duration(self.config.store.purge_interval).total_seconds()
        self.spawn(every(clock, purge_every, self.purge_once, "purge"), "purge")

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        # A task, not a wrapper around the coroutine: one cancelled before it ever ran
        # still closes its coroutine (no "coroutine was never awaited" at a failed start).
        self._tasks.append(asyncio.create_task(coro, name=f"avisa-{name}"))

    async def stop(self) -> None:
        """Stop everything: bridges, federation, background tasks, then ``close``."""
        bridges, self.bridges = self.bridges, []
        for bridge in bridges:
            await bridge.stop()
        if self.federation is not None:
            await self.federation.stop()
        await self.stop_tasks()
        await self.close()

    async def stop_tasks(self) -> None:
        """Cancel what ``start`` spawned."""
        await cancel_all(self._tasks)
        self._tasks.clear()

    async def close(self) -> None:
        """Release what ``__init__`` created: worker processes, threads, the database."""
        await self.verifier.stop()
        self.verifier.executor.shutdown(wait=True)
        self.pool.shutdown(wait=True)
        self.db.close()

    async def reload_trust(self) -> None:
        async with self._reload_lock:
            key = await self._rotated_key() or self.key
            network, current = self.network, key.public_key

            def load(conn: Connection) -> tuple[list[KeyEntry], TrustSnapshot, int]:
                own = ownkeys.own_entries(conn, network, current)
                return own, trust.load_snapshot(conn, self.config, own), store.feed_head(conn)

            own, snapshot, head = await self.db.read(load)
            # Key and snapshot change together: never sign with a key the snapshot lacks.
            self.key, self.extra_own_keys, self.trust = key, own, snapshot
        # A trust change may have withdrawn alerts (a 'withdraw' feed event): wake readers.
        self.feed.advance(head)
        if self.federation is not None:
            await self.federation.reconcile()

    async def _rotated_key(self) -> NodeKey | None:
        """The key the database names as current, when ``avisa keys rotate|revoke`` changed it."""
        wanted = await self.db.read(ownkeys.current_keyid)
        self._key_pending = wanted is not None and wanted != self.key.keyid
        if not self._key_pending or wanted is None:
            return None
        try:
            passphrase = read_passphrase(self.data_dir, self.config)
            key = await asyncio.to_thread(
                ownkeys.find_signing_key, self.data_dir, wanted, passphrase
            )
        except (KeyFileError, OSError) as exc:
            _log.error("cannot load the rotated key", keyid=wanted, error=str(exc))
            return None
        if key is None:
            _log.warning("rotated key not on disk yet", keyid=wanted)
            return None
        self._key_pending = False
        _log.info("signing key switched", keyid=key.keyid)
        return key

    async def _reload_if_changed(self) -> None:
        version = await self.db.read(trust.trust_version)
        if version != self.trust.version or self._key_pending:
            await self.reload_trust()
            _log.info("trust reloaded", version=version, peers=len(self.trust.peers))

    async def signing_key(self) -> NodeKey:
        """The current key, after following a rotation committed a moment ago."""
        await self._reload_if_changed()
        return self.key

    async def publish_draft(
        self,
        draft: Draft,
        replaces: Alert | None = None,
        also: Callable[[Connection, str], None] | None = None,
    ) -> tuple[str, bytes]:
        """Sign ``draft`` as a new alert of ours (or the update of ``replaces``) through
        the pipeline; the one way the API and the desk publish. Returns id and envelope.
        ``also`` joins the alert's transaction (``Pipeline.publish``)."""
        now = self.clock()
        alert_id = f"{self.network}/{drafts.ulid(now, os.urandom(10))}"
        lifetime = self.trust.policy.max_lifetime

        def build(seq: int) -> Alert:
            return drafts.build(
                draft,
                network=self.network,
                seq=seq,
                alert_id=alert_id,
                now=now,
                max_lifetime=lifetime,
                msg_type="update" if replaces else "alert",
                references=drafts.chain(replaces) if replaces else (),
            )

        outcome, raw = await self.pipeline.publish(build, await self.signing_key(), also)
        assert outcome.id is not None
        return outcome.id, raw

    async def purge_once(self) -> store.PurgeCounts:
        now = self.clock()
        limit = self.config.store.decision_log_max
        counts = await self.db.write(lambda conn: store.purge(conn, now, self.retention, limit))
        await self.desk.housekeeping()
        await self.db.checkpoint()
        if counts.alerts or counts.tombstones:
            _log.info(
                "purged",
                alerts=counts.alerts,
                tombstones=counts.tombstones,
                decisions=counts.decisions,
            )
        return counts

    def retention_window(self) -> timedelta:
        return self.retention
