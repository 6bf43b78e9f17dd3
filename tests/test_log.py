"""Logs never carry alert text, tokens, keys, addresses or phone numbers."""

from __future__ import annotations

import json

import pytest
import structlog

from relay.runtime.log import REDACTED, DecisionLog, configure, redact, scrub


def test_sensitive_fields_are_dropped() -> None:
    event = redact(
        None,
        "info",
        {
            "event": "decision",
            "headline": "ICE at 5th St",
            "token": "avisa_abc",
            "remote": "203.0.113.9",
            "alert_id": "ventura/01M82V7M000000000000000000",
        },
    )
    assert event["headline"] == event["token"] == event["remote"] == REDACTED
    assert event["alert_id"] == "ventura/01M82V7M000000000000000000"


def test_values_that_look_like_addresses_or_phones_are_masked() -> None:
    text = (
        "from 203.0.113.9 and 2001:db8::1:2 call +1 (805) 555-0100 "
        "token avisa_3q2-Zx9_abcdefghijklmnopqrstuv"
    )
    cleaned = scrub(text)
    for secret in ("203.0.113.9", "555-0100", "avisa_3q2", "2001:db8"):
        assert secret not in cleaned
    # Alert ids and ordinary numbers survive.
    for kept in (
        "ventura/01M82V7M000000000000000000 seq 12",
        "at 12:00:00 for 4h",
        "keyid ed25519:3f2a00aa11bb22cc33dd44ee55ff6677",
    ):
        assert scrub(kept) == kept
    assert scrub("from ::1 port 8470") == f"from {REDACTED} port 8470"


def test_the_quick_check_never_skips_what_a_pattern_would_mask() -> None:
    # Any script's digits count: a phone number in Arabic-Indic digits is masked too.
    arabic = "اتصل ٨٠٥٥٥٥٠١٠٠١"
    assert scrub(arabic) != arabic
    for plain in ("accepted", "authoritative", "bench-relay", "ventura"):
        assert scrub(plain) == plain


def test_decision_lines_follow_the_level(capsys: pytest.CaptureFixture[str]) -> None:
    made = [("ventura/01M82V7M000000000000000000", "accepted", "authoritative")] * 3
    try:
        configure("info", json_output=True)
        DecisionLog().decisions(made, "ventura")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        assert [(entry["alert_id"], entry["reason"]) for entry in lines] == [made[0][::2]] * 3
        configure("warning", json_output=True)
        DecisionLog().decisions(made, "ventura")
        assert capsys.readouterr().err == ""
    finally:
        structlog.reset_defaults()  # later tests must not write to this test's captured stderr
