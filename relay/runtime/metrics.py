"""Prometheus text exposition, written by hand (a few counters need no library).

Counters live in memory and reset on restart, as Prometheus expects; gauges
(alerts by state, feed position) are read from the store when scraped. Label
values are reason codes and network ids, never alert content.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from relay.core.policy import DECISION_OF_STATUS


def _labels(pairs: Mapping[str, str]) -> str:
    if not pairs:
        return ""
    inner = ",".join(
        f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for name, value in pairs.items()
    )
    return "{" + inner + "}"


class Metrics:
    def __init__(self) -> None:
        self.decisions: Counter[tuple[str, str, str]] = Counter()
        self.http_errors: Counter[tuple[str, int]] = Counter()
        # Per peer: transaction ids sent again with another body (answered with the
        # first reply; the new envelopes are not read). See docs/protocol.md §6.3.
        self.txn_reused: Counter[str] = Counter()
        self.collectors: list[Callable[[], Iterable[str]]] = []
        self.sse_clients = 0

    def decision(self, status: str, reason: str, peer: str | None, count: int = 1) -> None:
        """Counted as accept, hold or reject (the pipeline's ``accepted``… map onto them)."""
        word = DECISION_OF_STATUS.get(status, status)
        self.decisions[(word, reason, peer or "local")] += count

    def http_error(self, errcode: str, status: int) -> None:
        self.http_errors[(errcode, status)] += 1

    def render(
        self,
        gauges: Mapping[str, Mapping[tuple[tuple[str, str], ...], float]],
        collectors: Iterable[Callable[[], Iterable[str]]] | None = None,
    ) -> str:
        """The exposition; ``collectors``: which of ``self.collectors`` (None: all)."""
        lines = [
            "# HELP avisa_decisions_total Policy decisions (accept, hold, reject) by reason and"
            " sending peer.",
            "# TYPE avisa_decisions_total counter",
        ]
        for (decision, reason, peer), count in sorted(self.decisions.items()):
            decided = _labels({"decision": decision, "reason": reason, "peer": peer})
            lines.append(f"avisa_decisions_total{decided} {count}")
        lines += [
            "# HELP avisa_http_errors_total Refused HTTP requests by errcode.",
            "# TYPE avisa_http_errors_total counter",
        ]
        for (errcode, code), count in sorted(self.http_errors.items()):
            refused = _labels({"errcode": errcode, "status": str(code)})
            lines.append(f"avisa_http_errors_total{refused} {count}")
        lines += [
            "# HELP avisa_federation_txn_reused_total Transaction ids a peer reused"
            " with a different body.",
            "# TYPE avisa_federation_txn_reused_total counter",
        ]
        for peer, count in sorted(self.txn_reused.items()):
            lines.append(f"avisa_federation_txn_reused_total{_labels({'peer': peer})} {count}")
        for name, series in gauges.items():
            lines.append(f"# TYPE {name} gauge")
            for pairs, value in series.items():
                lines.append(f"{name}{_labels(dict(pairs))} {value:g}")
        for collect in self.collectors if collectors is None else collectors:
            lines.extend(collect())
        return "\n".join(lines) + "\n"
