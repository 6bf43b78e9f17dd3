"""Issue 27, the newcomer's second walk: what ``avisa`` prints, command by command.

Real ``avisa`` processes on real data directories; each test asserts the exact
lines a person reads, and that no traceback reaches them (``avisa`` helper).
"""

from __future__ import annotations

from pathlib import Path

from tests.test_operator_cli import _card, avisa, init


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
