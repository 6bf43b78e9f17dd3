"""Logs never carry alert text, tokens, keys, addresses or phone numbers."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from relay.runtime.log import (
    REDACTED,
    DecisionLog,
    configure,
    declare_secret,
    declare_secret_path,
    redact,
    scrub,
)


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


def test_declared_secret_paths_and_values_are_masked_everywhere() -> None:
    """Issue 25 hole 6: a route with a secret in its path declares it, once."""
    declare_secret_path("/test/v1/{backend}/{secret}")
    declare_secret("value-of-a-test-secret/é")
    for text in (
        "internal error path=/test/v1/kannel/s3cr3t-abc/report?ref=1",
        'File "x.py" GET http://node:8470/test/v1/twilio/s3cr3t-abc HTTP/1.1',
        "KeyError('value-of-a-test-secret/é')",
        "dlr-url=http%3A%2F%2Fx%2Fvalue-of-a-test-secret%2F%C3%A9",
    ):
        cleaned = scrub(text)
        assert "s3cr3t" not in cleaned and "value-of-a-test-secret" not in cleaned, cleaned
        assert "test-secret%2F" not in cleaned and REDACTED in cleaned
    assert scrub("/test/v1/kannel") == "/test/v1/kannel"  # no secret segment: nothing to mask
    declare_secret("short")  # too short to mask everywhere: it would eat common words
    assert scrub("a short note") == "a short note"


def test_stdlib_lines_pass_the_same_redaction(capsys: pytest.CaptureFixture[str]) -> None:
    declare_secret_path("/test/v1/{backend}/{secret}")
    try:
        configure("info", json_output=True)
        try:
            raise RuntimeError("while serving /test/v1/kannel/s3cr3t-xyz/report from 203.0.113.9")
        except RuntimeError:
            logging.getLogger("aiohttp.server").exception("Error handling request")
        (line,) = capsys.readouterr().err.splitlines()
        entry = json.loads(line)
        assert entry["logger"] == "aiohttp.server" and entry["level"] == "error"
        assert "s3cr3t" not in line and "203.0.113.9" not in line
        assert "/test/v1/kannel/[redacted]/report" in entry["exception"]
        logging.getLogger("aiohttp.server").info("chatter")  # below warning: not written
        assert capsys.readouterr().err == ""
    finally:
        structlog.reset_defaults()
