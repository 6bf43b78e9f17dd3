"""Issue 27, the newcomer's second walk: what ``avisa`` prints, command by command.

Real ``avisa`` processes on real data directories; each test asserts the exact
lines a person reads, and that no traceback reaches them (``avisa`` helper).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.cli.tip import line
from relay.storage import catalogues
from tests.test_operator_cli import PUBLISH, Running, _card, avisa, init


@pytest.fixture
def node(tmp_path: Path) -> Path:
    return init(tmp_path / "ventura")


@pytest.fixture
def live(node: Path) -> Iterator[Running]:
    running = Running(node)
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the volunteer CLI's English (``relay.cli.words``: $AVISA_LANG)."""
    monkeypatch.setenv("AVISA_LANG", "en")


def test_trust_set_changes_a_setting_after_the_card_went_stale(tmp_path: Path) -> None:
    ventura, la = init(tmp_path / "ventura"), init(tmp_path / "la", "la")
    card, fingerprint = _card(la, tmp_path / "la.card.json")
    data = ("--data", str(ventura))
    avisa(
        "trust", "add", str(card), "--fingerprint", fingerprint, "--speaks-for", "fips:06037", *data
    )
    avisa("keys", "rotate", "--data", str(la))  # la's key document is newer than the card now
    newer, _ = _card(la, tmp_path / "la.newer.json")
    avisa("trust", "update", str(newer), *data)

    stale = avisa("trust", "add", str(card), "--speaks-for", "fips:06111", *data, ok=False)
    assert stale.stderr.strip().endswith(
        "To change only its settings, use 'avisa trust set la --speaks-for …' (no card needed)"
    )
    changed = avisa(
        "trust", "set", "la", "--speaks-for", "fips:06111", "fips:06037", "--no-forward", *data
    )
    assert changed.stdout.splitlines() == [
        "Updated the settings of la; a running node applies them within seconds.",
        "  speaks for:   fips:06111, fips:06037",
        "  kinds:        all",
        "  certainties:  confirmed, false, unconfirmed",
        "  rate limit:   600/min; forward no; endorse no",
    ]
    kinds = avisa("trust", "set", "la", "--kinds", "sighting", "operation", *data)
    assert kinds.stdout.splitlines()[1:3] == [
        "  speaks for:   fips:06111, fips:06037",  # what was not given kept its value
        "  kinds:        operation, sighting",
    ]
    listed = avisa("trust", "list", "la", *data).stdout.splitlines()
    assert listed[1:3] == kinds.stdout.splitlines()[1:3]


def test_trust_set_refuses_an_unknown_peer_and_no_setting(tmp_path: Path) -> None:
    ventura = init(tmp_path / "ventura")
    data = ("--data", str(ventura))
    unknown = avisa("trust", "set", "oc", "--speaks-for", "fips:06059", *data, ok=False)
    assert unknown.stderr.strip() == (
        "avisa: no trusted peer named oc (see 'avisa trust list'); a new peer is added with"
        " 'avisa trust add CARD_FILE --fingerprint …'"
    )
    nothing = avisa("trust", "set", "oc", *data, ok=False)
    assert nothing.stderr.strip() == (
        "avisa: give at least one setting to change: --speaks-for, --kinds, --certainties,"
        " --rate-limit, --forward/--no-forward or --endorse/--no-endorse"
    )


def test_listings_say_when_they_are_empty(live: Running) -> None:
    data = ("--data", str(live.data))
    assert avisa("tip", "list", *data).stdout == "no open tips\n"
    assert avisa("tip", "list", "--all", *data).stdout == "no tips\n"
    assert avisa("alert", "list", "--active", *data).stdout == "no active alerts\n"
    assert avisa("alert", "list", "--area", "fips:06037", *data).stdout == (
        "no alerts in fips:06037\n"
    )
    assert avisa("held", "list", *data).stdout == "no held alerts: nothing waits for a reviewer\n"


def test_alert_show_prints_times_place_and_every_text(live: Running) -> None:
    data = ("--data", str(live.data))
    alert_id = avisa(
        *PUBLISH, "--geohash", "9q56", "--code", "fips:06111", "--agency", "ice",
        "--text", "en=ICE at the park", "--body", "es=Dos camionetas",
        "--instruction", "es=No abra la puerta", *data,
    ).stdout.strip()  # fmt: skip
    shown = avisa("alert", "show", alert_id, *data).stdout.splitlines()
    alert = json.loads(avisa("alert", "show", alert_id, "--json", *data).stdout)["alert"]
    assert shown[0].startswith(f"{alert_id}  active     sighting")
    assert shown[1:] == [
        f"  observed: {alert['observed_at']}  sent: {alert['sent_at']}"
        f"  expires: {alert['expires_at']}",
        "  area:     Colonia, Oxnard (geohash 9q56, 500 m; fips:06111)",
        "  origin:   ventura",
        "  agencies: ice",
        "  [es] ICE en el parque",
        "       Dos camionetas",
        "       No abra la puerta",
        "  [en] ICE at the park",
    ]


def test_tip_add_prints_the_number_and_show_prints_words(live: Running) -> None:
    data = ("--data", str(live.data))
    added = avisa(
        "tip", "add", "--text", "Dos camionetas", "--place", "Colonia park",
        "--agency", "ice", "--agency", "cbp", *data,
    ).stdout  # fmt: skip
    assert re.fullmatch(r"#1 [0-9A-HJKMNP-TV-Z]{26}\n", added), added
    shown = avisa("tip", "show", "1", *data).stdout.splitlines()
    assert "  agencies: ice, cbp" in shown


def test_a_tips_line_counts_in_real_plurals() -> None:
    tip = {
        "number": 4, "state": "new", "channel": "sms", "received_at": "2026-12-07T03:00:00Z",
        "where": {"label": "Colonia"}, "text": "vans",
        "cluster": {"tips": 2, "reporters": 1, "channels": ["sms"]},
    }  # fmt: skip
    english = catalogues.load(("es", "en")).words("en")
    assert line(tip, english).endswith("Colonia: vans  [2 reports, 1 reporter, 1 channel]")
    tip["cluster"] = {"tips": 3, "reporters": 2, "channels": ["sms", "form"]}
    assert line(tip, english).endswith("  [3 reports, 2 reporters, 2 channels]")
    spanish = catalogues.load(("es", "en")).words("es")
    assert line(tip, spanish).endswith("  [3 reportes, 2 personas, 2 medios]")


def test_an_unknown_option_prints_the_commands_own_usage(node: Path) -> None:
    result = avisa("keys", "show", "--bogus", "--data", str(node), ok=False)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].startswith("usage: avisa keys show [-h]")
    assert result.stderr.splitlines()[-1] == (
        "avisa keys show: error: unrecognized arguments: --bogus"
    )


def test_policy_explain_of_an_accepted_alert_says_so(live: Running, tmp_path: Path) -> None:
    data = ("--data", str(live.data))
    alert_id = avisa(*PUBLISH, "--geohash", "9q56", "--code", "fips:06111", *data).stdout.strip()
    envelope = tmp_path / "envelope.json"
    envelope.write_text(avisa("alert", "show", alert_id, "--envelope", *data).stdout)
    received = json.loads(avisa("alert", "show", alert_id, "--json", *data).stdout)
    shown = avisa("policy", "explain", str(envelope), *data).stdout.splitlines()
    assert shown[:5] == [
        f"alert_id:          {alert_id}",
        "origin:            ventura",
        "decision:          none: already accepted here (a copy arriving now changes nothing)",
        f"accepted here:     {received['received_at']}, local",
        "as if new:         accept (local)",
    ]
    assert "duplicate" not in "\n".join(shown)


def test_a_copied_data_directory_never_talks_to_the_original(live: Running, tmp_path: Path) -> None:
    copy = tmp_path / "ventura-copy"
    subprocess.run(["cp", "-a", str(live.data), str(copy)], check=True)  # run.json and all
    result = avisa("alert", "list", "--data", str(copy), ok=False)
    assert result.stderr.strip() == (
        f"avisa: the node answering at http://127.0.0.1:{live.port} is ventura's node of"
        f" another data directory: {copy} is a copy; give the --data of the directory that"
        " node runs on (a copy holds the same key: never run two nodes with it)"
    )
    assert avisa("alert", "list", "--data", str(live.data)).stdout == "no alerts\n"
