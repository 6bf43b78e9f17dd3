"""Stand-ins for the desk's tip interface (BRIEF: "The tip interface"), tests only.

Until ``relay.core.tips`` and ``relay.runtime.desk`` land on main, the CAP
tests install a copy of the agreed ``TipIn``/``Where`` types and use
``FakeDesk``, which records what the importer files. Once the real module is
importable the real one is used and only ``FakeDesk`` remains.
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct


def install_tips_module() -> None:
    try:
        importlib.import_module("relay.core.tips")
        return
    except ImportError:
        pass
    from relay.core.model import Agency, AreaCode, LangTag, UtcTime

    module = types.ModuleType("relay.core.tips")
    Channel = Literal["web", "sms", "hotline", "matrix", "cap"]

    class Where(Struct, frozen=True, forbid_unknown_fields=True):
        label: Annotated[str, Meta(min_length=1, max_length=200)]
        geohash: Annotated[str, Meta(pattern=r"^[0-9b-hjkmnp-z]{4,7}$")] | None = None
        codes: Annotated[list[AreaCode], Meta(max_length=16)] = []

    class TipIn(Struct, frozen=True, forbid_unknown_fields=True):
        text: Annotated[str, Meta(min_length=1, max_length=2000)]
        where: Where
        channel: Channel = "hotline"
        observed_at: UtcTime | None = None
        language: LangTag | None = None
        activity: Annotated[str, Meta(max_length=200)] | None = None
        agencies: Annotated[list[Agency], Meta(max_length=8)] = []
        vehicles: Annotated[str, Meta(max_length=200)] | None = None
        size: Annotated[str, Meta(max_length=200)] | None = None

    module.Where = Where  # type: ignore[attr-defined]
    module.TipIn = TipIn  # type: ignore[attr-defined]
    module.Channel = Channel  # type: ignore[attr-defined]
    sys.modules["relay.core.tips"] = module


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
