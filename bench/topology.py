"""A coalition's shape: regional clusters joined by hubs (pure; used by ``bench.coalition``).

    cluster r1                 cluster r2                 …  (``clusters`` of ``size``)
    r1-hub ── r1-n1            r2-hub ── r2-n1
      │  ╲     │   (full mesh    │  ╲
      │   r1-n2 …   in a cluster)│   r2-n2 …
      └──────────── hubs: a full mesh among themselves ──────────┘

How a real coalition configures it (docs/federation.md, "At coalition scale"):

- every network speaks for its own county (``fips:06NNN``, one per node) and trusts
  its cluster neighbours for theirs, so a neighbour's alert is ``authoritative``;
- a member relays only its own alerts (``relay = "own"``): its neighbours already
  hear each other directly, and only the hub carries news between clusters;
- the hub **endorses** what it passes on, to the other hubs and to its own
  members; a node that never met the origin accepts it as ``endorsed`` by a
  trusted hub. To its members a hub relays everything (``relay = "all"``); to
  the other hubs only its own region's news (``relay = "peers"``: origins it
  trusts directly), since every hub hears every other hub itself.

``relay_all=True`` gives every entry ``relay = "all"`` (every node relays everything
it accepted to every peer), the setting that multiplied copies before issue 30.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    network: str
    cluster: int
    hub: bool
    county: str


@dataclass(frozen=True)
class Link:
    """One trust entry: ``holder`` trusts ``peer`` (as ``avisa trust add`` would store it)."""

    holder: str
    peer: str
    speaks_for: tuple[str, ...]
    endorse: bool
    relay: str


def members(nodes: int, clusters: int) -> list[Member]:
    """``nodes`` networks in ``clusters`` clusters, the first of each its hub."""
    if clusters < 1 or nodes < 2 * clusters:
        raise ValueError("a coalition needs at least two nodes per cluster")
    found = []
    for index in range(nodes):
        cluster, place = index % clusters + 1, index // clusters
        name = f"r{cluster}-hub" if place == 0 else f"r{cluster}-n{place}"
        found.append(Member(name, cluster, place == 0, f"fips:06{1 + 2 * index:03d}"))
    return sorted(found, key=lambda m: (m.cluster, not m.hub, m.network))


def links(coalition: list[Member], relay_all: bool = False) -> list[Link]:
    """Every trust entry of the coalition."""
    found = []
    for holder in coalition:
        for peer in coalition:
            if peer is holder:
                continue
            same_cluster = peer.cluster == holder.cluster
            if not (same_cluster or (holder.hub and peer.hub)):
                continue
            relay = "all" if relay_all else _relay(holder, peer)
            found.append(Link(holder.network, peer.network, (peer.county,), holder.hub, relay))
    return found


def _relay(holder: Member, peer: Member) -> str:
    if not holder.hub:
        return "own"
    return "peers" if peer.hub else "all"


def hops(origin: Member, node: Member) -> int:
    """Links a message crosses from ``origin`` to ``node`` in this shape (0: itself)."""
    if origin == node:
        return 0
    if origin.cluster == node.cluster or (origin.hub and node.hub):
        return 1
    return 1 + (not origin.hub) + (not node.hub)


def edges(coalition: list[Member]) -> int:
    """Undirected links (each is two trust entries)."""
    return len(links(coalition)) // 2
