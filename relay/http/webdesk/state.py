"""What the desk keeps while the node runs: its sessions, settings, live streams, and
the failed sign-ins per client (``relay.http.clientlimit``, no address kept)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from relay.core.config import DeskWebSection
from relay.core.times import parse_duration
from relay.http.clientlimit import ClientLimiter
from relay.http.webdesk.session import Sessions


@dataclass
class DeskState:
    sessions: Sessions
    settings: DeskWebSection
    login_failures: ClientLimiter
    streams: set[asyncio.Task[Any]] = field(default_factory=set)

    @classmethod
    def from_config(cls, section: DeskWebSection, monotonic: Callable[[], float]) -> DeskState:
        """``monotonic``: the node clock's, so a fake clock refills the sign-in limit too."""
        failures = ClientLimiter(section.login_failures_per_hour, monotonic=monotonic)
        return cls(Sessions(parse_duration(section.session_ttl)), section, failures)


DESK: web.AppKey[DeskState] = web.AppKey("desk", DeskState)
