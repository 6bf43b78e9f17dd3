"""Stand-ins for the desk's tip interface (BRIEF: "The tip interface"), tests only.

Until ``relay.core.tips`` and ``relay.runtime.desk`` land on main, the CAP
tests install a copy of the agreed ``TipIn``/``Where`` types and use
``FakeDesk``, which records what the importer files. Once the real module is
importable the real one is used and only ``FakeDesk`` remains.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec


def install_tips_module() -> None:
    try:
        importlib.import_module("relay.core.tips")
    except ImportError:
        sys.modules["relay.core.tips"] = importlib.import_module("tests.cap.tips_standin")


@dataclass
class FakeDesk:
    """Records ``submit``/``update_from_source``/``close_from_source`` as the desk's API."""

    tips: dict[str, Any] = field(default_factory=dict)
    by_ref: dict[str, str] = field(default_factory=dict)
    updates: list[tuple[str, Any]] = field(default_factory=list)
    closed: list[tuple[str, str]] = field(default_factory=list)

    async def submit(
        self,
        tip: Any,
        *,
        contact: str | None = None,
        reporter: bytes | None = None,
        source_ref: str | None = None,
    ) -> str:
        assert tip.channel == "cap"
        msgspec.convert(msgspec.to_builtins(tip), type(tip))  # within every bound
        if source_ref in self.by_ref:
            raise ValueError("source_ref is unique per node")
        tip_id = f"T{len(self.tips):025d}"
        self.tips[tip_id] = tip
        if source_ref is not None:
            self.by_ref[source_ref] = tip_id
        return tip_id

    async def update_from_source(self, source_ref: str, tip: Any) -> bool:
        if source_ref not in self.by_ref:
            return False
        self.tips[self.by_ref[source_ref]] = tip
        self.updates.append((source_ref, tip))
        return True

    async def close_from_source(self, source_ref: str, note: str) -> bool:
        if source_ref not in self.by_ref:
            return False
        self.closed.append((source_ref, note))
        return True

    def tip_for(self, source_ref: str) -> Any:
        return self.tips[self.by_ref[source_ref]]


def observed(tip: Any) -> datetime | None:
    return tip.observed_at  # type: ignore[no-any-return]
