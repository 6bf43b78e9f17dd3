"""Coalition trust lists applied as peers: figures printed as JSON (not a timed test).

    .venv/bin/python -m bench.trustlists

Two real nodes in this process (``tests.conftest.start_node``: SQLite files,
aiohttp servers on 127.0.0.1): a **host** that publishes the list ``socal``
and a **subscriber** (``pomona``) that follows it with ``--max-speaks-for
fips:06``. The members' URLs point at a closed port on 127.0.0.1 and the list
does not name the subscriber, so the subscriber opens no links to them (as in
production, ``relay.federation.service.reconcile``) and the figures are the
list's own cost.

- ``publish_to_applied_ms``: ``trustlist_ops.publish`` of version N+1 on the host
  → the subscriber's on-demand refresh (``Federation.refresh_trustlists``: fetch
  over HTTP, walk, one transaction, snapshot reload) → the new version's members
  in the subscriber's running snapshot; p50 and max of ``ROUNDS`` versions of a
  20-member list.
- ``refresh_200_ms``: the same refresh when version N+1 of a 200-member list is new
  (p50 of ``ROUNDS``), and ``refresh_200_same_ms`` when nothing changed.
- ``snapshot_reload_ms``: ``Node.reload_trust`` with no subscription and with a
  held 200-member version (p50 of 20): what every trust change costs once members
  are peers (``relay.storage.trust.load_snapshot`` → ``keys.cards.trustmerge``).
- ``baselines.verify_per_s_1core``: Ed25519 verifications per second on one core,
  measured in the same run; ``*_in_verifies`` express each figure in those units,
  which is what to compare between runs on this shared machine.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.baseline import verifies_per_second
from keys.cards.statements import b64
from keys.cards.trustlist import (
    Maintainers,
    Member,
    MemberKey,
    OpenedList,
    make_list,
    set_fingerprint,
)
from keys.store import trustlist_ops, trustsub_ops
from relay.runtime import log
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from tests.conftest import start_node
from tests.trustlist_helpers import MAINTAINERS, T, key_of, signed

ROUNDS = 7
CLOSED = "http://127.0.0.1:9"


def _member(network: str) -> Member:
    key = key_of(network)
    return Member(
        network=network,
        url=CLOSED,
        keys=[MemberKey(key.keyid, b64(key.public_key), None, None)],
        speaks_for=["fips:06059"],
        kinds=["sighting", "operation"],
    )


def chain(members: int, length: int) -> list[OpenedList]:
    """Versions 1..length of a list with ``members`` members (3 maintainers, threshold 2)."""
    names = sorted({*MAINTAINERS, *(f"m{i:04d}" for i in range(members - len(MAINTAINERS)))})
    entries = [_member(name) for name in names]
    versions: list[OpenedList] = []
    for number in range(1, length + 1):
        issued = T + timedelta(hours=number)
        document = make_list(
            "socal",
            number,
            issued,
            issued + timedelta(days=30),
            Maintainers(sorted(MAINTAINERS), 2),
            entries,
            versions[-1].digest if versions else None,
        )
        versions.append(signed(document, MAINTAINERS[:2]))
    return versions


async def _ms(work: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await work()
    return (time.perf_counter() - start) * 1000


def _p50(values: list[float]) -> float:
    return round(statistics.median(values), 2)


async def _pair(tmp: Path, clock: FakeClock) -> tuple[Node, str, Node, list[Any]]:
    host, host_runner, host_url, _ = await start_node(tmp, clock, "host")
    sub, sub_runner, _, _ = await start_node(tmp, clock, "pomona")
    return host, host_url, sub, [(host_runner, host), (sub_runner, sub)]


async def _refreshes(members: int, clock: FakeClock) -> dict[str, Any]:
    versions = chain(members, ROUNDS + 1)
    with tempfile.TemporaryDirectory() as tmp:
        host, base, sub, stop = await _pair(Path(tmp), clock)
        try:
            return await _measure(host, base, sub, versions, clock)
        finally:
            for runner, node in stop:
                await runner.cleanup()
                await node.stop()


async def _measure(
    host: Node, base: str, sub: Node, versions: list[OpenedList], clock: FakeClock
) -> dict[str, Any]:
    url = f"{base}/trustlists/v1/socal"
    first = versions[0]
    trustlist_ops.publish(host.data_dir, [first.raw], clock)
    fingerprint = set_fingerprint(first.document)
    trustsub_ops.subscribe(sub.data_dir, url, fingerprint, ["fips:06"], [first.raw], clock)
    await sub.reload_trust()
    federation = sub.federation
    assert federation is not None
    applied, refresh = [], []
    for version in versions[1:]:

        async def publish_and_apply(v: OpenedList = version) -> None:
            trustlist_ops.publish(host.data_dir, [v.raw], clock)
            await federation.refresh_trustlists()

        applied.append(await _ms(publish_and_apply))
        peer = next(iter(sub.trust.peers.values()))
        assert peer.policy.sources[0].version == version.version, "not applied"
        refresh.append(await _ms(federation.refresh_trustlists))  # nothing new
    reload_with = [await _ms(sub.reload_trust) for _ in range(20)]
    return {
        "applied": applied,
        "same": refresh,
        "reload_with": reload_with,
        "peers": len(sub.trust.peers),
    }


async def _reload_empty(clock: FakeClock) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        node, runner, _, _ = await start_node(Path(tmp), clock, "pomona")
        try:
            return [await _ms(node.reload_trust) for _ in range(20)]
        finally:
            await runner.cleanup()
            await node.stop()


async def figures() -> dict[str, Any]:
    clock = FakeClock(T + timedelta(days=1))
    verify_before = verifies_per_second(1, 1.0)
    small = await _refreshes(20, clock)
    large = await _refreshes(200, clock)
    empty = await _reload_empty(clock)
    verify_after = verifies_per_second(1, 1.0)
    verify = max(verify_before, verify_after)
    verify_ms = 1000 / verify
    out: dict[str, Any] = {
        "publish_to_applied_ms": {
            "p50": _p50(small["applied"]),
            "max": round(max(small["applied"]), 2),
        },
        "refresh_200_ms": _p50(large["applied"]),
        "refresh_200_same_ms": _p50(large["same"]),
        "snapshot_reload_ms": {"no_list": _p50(empty), "list_200": _p50(large["reload_with"])},
        "peers_from_200_member_list": large["peers"],
        "baselines": {
            "verify_per_s_1core": verify,
            "verify_per_s_1core_before_after": [verify_before, verify_after],
        },
    }
    out["refresh_200_in_verifies"] = round(out["refresh_200_ms"] / verify_ms)
    out["snapshot_reload_200_in_verifies"] = round(
        out["snapshot_reload_ms"]["list_200"] / verify_ms
    )
    return out


def main() -> None:
    log.configure("warning", json_output=True)  # stdout is for the figures alone
    print("trust list figures (two in-process nodes)…", file=sys.stderr)
    print(json.dumps(asyncio.run(figures()), indent=2))


if __name__ == "__main__":
    main()
