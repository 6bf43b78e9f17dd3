"""Starting the bridges a node's config asks for.

Kept apart from the adapters so that importing it costs nothing: matrix-nio
(an optional extra) is imported only when a ``[[bridges.matrix]]`` section
exists. Secret files are read here, before anything is started, so a missing
or world-readable secret stops ``avisa run`` with a ``ConfigError`` that
names the setting.
"""

from __future__ import annotations

import asyncio

from bridges.base import Bridge, Sleep
from relay.runtime.node import Node


def start_bridges(
    node: Node, *, sleep: Sleep = asyncio.sleep, idle_wait: float = 30.0
) -> list[Bridge]:
    """Build every configured bridge, then start them; returns them running."""
    configs = node.config.bridges.matrix
    if not configs:
        return []
    from bridges.matrix.bridge import MatrixBridgeRunner

    bridges = [
        MatrixBridgeRunner(node, config, index, sleep=sleep, idle_wait=idle_wait)
        for index, config in enumerate(configs)
    ]
    for bridge in bridges:
        bridge.start()
    return list(bridges)
