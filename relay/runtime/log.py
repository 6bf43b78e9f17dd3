"""Structured logs that cannot leak what a seized server must not reveal.

structlog renders JSON when stderr is not a terminal and readable lines when
it is. A redaction processor runs last before rendering on *every* event: it
drops fields whose names denote alert text, secrets or addresses, and masks
anything in the remaining values that looks like an IP address or a phone
number. aiohttp's access log (which records client addresses) is never
enabled; everything else written through the standard ``logging`` module
(aiohttp's server errors, asyncio's) goes through the same processors,
redaction included, so no line reaches the log without it.

Secrets in paths. A route whose path carries a secret (the text line's
``/sms/v1/{backend}/{secret}``) declares its template once
(``declare_secret_path``): the ``{secret}`` segment is masked wherever such a
path appears in any string of any line (an error's ``path``, a traceback, an
exception message), whatever the segment holds, right or wrong. A secret value
the node holds (``declare_secret``) is masked wherever it appears, as is or
percent-encoded. A future route with a secret in its path is covered by
declaring it.

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
from urllib.parse import quote

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
_SEGMENT = r"[^/?#\s\"'\\]+"
_secret_paths: dict[str, re.Pattern[str]] = {}
_secret_values: set[str] = set()
MIN_SECRET = 8  # shorter values are not masked everywhere (they would eat common words)


def declare_secret_path(template: str) -> None:
    """``/sms/v1/{backend}/{secret}``: its ``{secret}`` segment is masked in every line."""
    parts = []
    for part in template.strip("/").split("/"):
        if part == "{secret}":
            parts.append(f"(?P<secret>{_SEGMENT})")
        elif part.startswith("{"):
            parts.append(_SEGMENT)
        else:
            parts.append(re.escape(part))
    _secret_paths[template] = re.compile("/" + "/".join(parts))


def declare_secret(value: str) -> None:
    """A secret the node holds: masked wherever it appears, as is or percent-encoded."""
    if len(value) >= MIN_SECRET:
        _secret_values.update({value, quote(value, safe="")})


def _mask_path(match: re.Match[str]) -> str:
    start, end = match.span("secret")
    found = match.group(0)
    return found[: start - match.start()] + REDACTED + found[end - match.start() :]


def _mask_secrets(text: str) -> str:
    for value in _secret_values:
        if value in text:
            text = text.replace(value, REDACTED)
    if "/" in text:
        for pattern in _secret_paths.values():
            text = pattern.sub(_mask_path, text)
    return text


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
    text = _mask_secrets(text)
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
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.getLogger("aiohttp.access").disabled = True
    _route_stdlib(shared, renderer, level)


class _Stderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a line comes (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging's own convention
            self.handleError(record)


_STDLIB = _Stderr()


def _route_stdlib(shared: list[Any], renderer: Any, level: str) -> None:
    """Lines of the ``logging`` module (aiohttp, asyncio) through the same processors,
    at warning and above (their info lines say nothing an operator needs)."""
    _STDLIB.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    if _STDLIB not in root.handlers:
        root.addHandler(_STDLIB)
    root.setLevel(max(logging.getLevelNamesMapping()[level.upper()], logging.WARNING))


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
