"""What the CAP importer says about each source: counters, label, metrics.

A ``SourceStatus`` per ``[[bridges.cap.sources]]`` entry counts polls,
documents, messages and what became of them (filed, updated, closed, skipped
or refused, by reason), and keeps the last poll, success and error with their
times. ``as_dict`` is the source's entry in ``GET /api/v1/bridges``;
``metrics_lines`` renders all sources for ``/metrics``, named by their place
in the config rather than their URL (a URL may hold a key). Pure
bookkeeping: no I/O, times are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from relay.core.bridgeconfig import CapSource
from relay.core.times import rfc3339


def source_label(source: CapSource) -> str:
    """How a source is named in status and logs: its name, or its URL without query."""
    if source.name:
        return source.name
    parts = urlsplit(source.url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _when(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment else None


def bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


@dataclass(slots=True)
class SourceStatus:
    name: str
    every: str
    polls: int = 0
    not_modified: int = 0
    documents: int = 0
    messages: int = 0
    filed: int = 0
    updated: int = 0
    closed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    last_poll: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    backoff_until: datetime | None = None
    failures: int = 0

    def failed(self, error: str, now: datetime) -> None:
        self.failures += 1
        self.last_error = error[:300]
        self.last_error_at = now

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "every": self.every,
            "polls": self.polls,
            "not_modified": self.not_modified,
            "documents": self.documents,
            "messages": self.messages,
            "filed": self.filed,
            "updated": self.updated,
            "closed": self.closed,
            "skipped": dict(sorted(self.skipped.items())),
            "refused": dict(sorted(self.refused.items())),
            "last_poll": _when(self.last_poll),
            "last_success": _when(self.last_success),
            "last_error": self.last_error,
            "last_error_at": _when(self.last_error_at),
            "backoff_until": _when(self.backoff_until),
            "failures": self.failures,
        }


def metrics_lines(statuses: Iterable[SourceStatus]) -> Iterable[str]:
    """Per source (by its place in the config: a URL may hold a key), for /metrics."""
    yield "# HELP avisa_cap_source_total CAP source events: polls, tips, skips, refusals."
    yield "# TYPE avisa_cap_source_total counter"
    for index, status in enumerate(statuses):
        events = {
            ("poll", "all"): status.polls,
            ("poll", "not_modified"): status.not_modified,
            ("tip", "filed"): status.filed,
            ("tip", "updated"): status.updated,
            ("tip", "closed"): status.closed,
            **{("skipped", reason): n for reason, n in status.skipped.items()},
            **{("refused", reason): n for reason, n in status.refused.items()},
        }
        for (event, detail), count in sorted(events.items()):
            yield (
                f'avisa_cap_source_total{{source="{index}",event="{event}",'
                f'detail="{detail}"}} {count}'
            )
