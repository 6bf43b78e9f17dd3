"""Structured logs that cannot leak what a seized server must not reveal.

structlog renders JSON when stderr is not a terminal and readable lines when
it is. A redaction processor runs last before rendering on *every* event: it
drops fields whose names denote alert text, secrets or addresses, and masks
anything in the remaining values that looks like an IP address or a phone
number. aiohttp's access log (which records client addresses) is never
enabled.

``DecisionLog`` writes one line per policy decision with the bound fields
``alert_id``, ``peer``, ``decision``, ``reason``. Rejections of unverified
input come in floods under attack, so they are sampled per reason: at most a
few lines per second, each saying how many were suppressed.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import structlog

from relay.core.policy import DECISION_OF_STATUS
from relay.runtime.clock import system_clock

SENSITIVE_KEYS = frozenset(
    {
        "text", "headline", "body", "instruction", "label", "area", "geohash",
        "token", "authorization", "password", "passphrase", "seed", "key", "secret",
        "ip", "remote", "peername", "host", "address", "phone", "envelope", "payload",
    }
)  # fmt: skip
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_IPV6 = re.compile(r"(?<![\w:])[0-9a-fA-F]{0,4}(?::{1,2}[0-9a-fA-F]{0,4}){2,7}(?![\w:])")
_PHONE = re.compile(r"(?<![\w/])\+?\d[\d\s().-]{7,}\d\b")
_SECRETISH = re.compile(r"\bavisa_[A-Za-z0-9_-]{20,}")
REDACTED = "[redacted]"


def _cannot_match(text: str) -> bool:
    """True when no pattern above can match: each needs a digit (``\\d``, any script),
    two colons, or ``avisa_``. One search instead of four substitutions per value."""
    return _MAYBE.search(text) is None


_MAYBE = re.compile(r"[\d:]|avisa_")


def _ipv6_or_keep(match: re.Match[str]) -> str:
    # Times (12:00:00) have the same shape; an address has "::" or a hex letter.
    found = match.group(0)
    return REDACTED if "::" in found or re.search("[a-fA-F]", found) else found


def scrub(text: str) -> str:
    if _cannot_match(text):
        return text
    for pattern in (_SECRETISH, _IPV4, _PHONE):
        text = pattern.sub(REDACTED, text)
    return _IPV6.sub(_ipv6_or_keep, text)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in list(event):
        if name.lower() in SENSITIVE_KEYS:
            event[name] = REDACTED
        elif isinstance(event[name], str) and name != "timestamp":
            event[name] = scrub(event[name])
    return event


def configure(level: str = "info", json_output: bool | None = None) -> None:
    if json_output is None:
        json_output = not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.getLogger("aiohttp.access").disabled = True


class DecisionLog:
    """One line per decision; unverified rejections sampled per reason."""

    SAMPLED = frozenset(
        {
            "bad_signature",
            "unknown_key",
            "malformed",
            "too_large",
            "too_many_signatures",
            "malformed_payload",
            "non_canonical",
            "duplicate",
            "rate_limited",
        }
    )

    def __init__(
        self, per_second: int = 5, monotonic: Callable[[], float] = system_clock.monotonic
    ) -> None:
        self._log = structlog.get_logger("avisa.decision")
        self._monotonic = monotonic
        self._per_second = per_second
        self._window: dict[str, tuple[int, int, int]] = {}

    def decisions(self, made: Iterable[tuple[str | None, str, str]], peer: str | None) -> None:
        """``decision`` for each (alert id, decision, reason) of one batch from ``peer``;
        nothing at all, not even the sampling bookkeeping, when info lines are off."""
        if not self._log.is_enabled_for(logging.INFO):
            return
        for alert_id, decision, reason in made:
            self.decision(alert_id, peer, decision, reason)

    def decision(self, alert_id: str | None, peer: str | None, decision: str, reason: str) -> None:
        decision = DECISION_OF_STATUS.get(decision, decision)  # accept, hold or reject
        if reason in self.SAMPLED:
            second = int(self._monotonic())
            start, shown, suppressed = self._window.get(reason, (second, 0, 0))
            if start != second:
                start, shown = second, 0
            if shown >= self._per_second:
                self._window[reason] = (start, shown, suppressed + 1)
                return
            self._window[reason] = (start, shown + 1, 0)
            if suppressed:
                self._log.info(
                    "decision",
                    alert_id=alert_id,
                    peer=peer,
                    decision=decision,
                    reason=reason,
                    suppressed_since_last=suppressed,
                )
                return
        self._log.info("decision", alert_id=alert_id, peer=peer, decision=decision, reason=reason)
