"""The node's real desk, watched: what the CAP importer filed, updated and closed."""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.core.tips import Tip, TipIn
from relay.runtime.desk import Desk


@dataclass
class DeskSpy:
    """Passes every call to ``desk`` and remembers it, so tests can say what happened."""

    desk: Desk
    by_ref: dict[str, str] = field(default_factory=dict)
    updates: list[str] = field(default_factory=list)
    closed: list[tuple[str, str]] = field(default_factory=list)

    async def submit(
        self,
        tip: TipIn,
        *,
        contact: str | None = None,
        reporter: bytes | None = None,
        source_ref: str | None = None,
        source: str | None = None,
    ) -> str:
        assert contact is None and reporter is None and source_ref is not None
        assert source is not None  # the CAP source: the sender its caps count
        tip_id = await self.desk.submit(tip, source_ref=source_ref, source=source)
        self.by_ref[source_ref] = tip_id
        return tip_id

    async def update_from_source(self, source_ref: str, tip: TipIn) -> bool:
        done = await self.desk.update_from_source(source_ref, tip)
        if done:
            self.updates.append(source_ref)
        return done

    async def close_from_source(self, source_ref: str, note: str) -> bool:
        done = await self.desk.close_from_source(source_ref, note)
        if done:
            self.closed.append((source_ref, note))
        return done

    async def tip_for(self, source_ref: str) -> Tip:
        return await self.desk.get(self.by_ref[source_ref])
