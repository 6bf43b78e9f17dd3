"""``avisa tip …`` and ``avisa token add --role a,b`` against a real ``avisa run``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import avisa, node_dir, running_node  # noqa: F401 - fixtures

# The reporter's number in every form it could be printed in (short runs of digits such
# as "555" also occur in timestamps and ids, so the test looks for the number itself).
NUMBER_FORMS = ("555-0143", "5550143", "+18055550143", "(805) 555")


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the volunteer CLI's English (``relay.cli.words``: $AVISA_LANG)."""
    monkeypatch.setenv("AVISA_LANG", "en")


def test_tip_workflow_from_the_command_line(running_node: Path) -> None:  # noqa: F811
    data = str(running_node)
    number, tip_id = avisa(
        "tip", "add", "--text", "Dos camionetas", "--place", "Colonia park", "--geohash",
        "9q4gch", "--code", "zip:93030", "--contact", "(805) 555-0143", "--language", "es",
        "--data", data,
    ).stdout.split()  # fmt: skip
    assert (number, len(tip_id)) == ("#1", 26)
    listed = avisa("tip", "list", "--cluster", "--data", data).stdout
    assert listed.startswith("#1 ") and "Colonia park: Dos camionetas" in listed
    assert not any(form in listed for form in NUMBER_FORMS)
    refused = avisa("tip", "outcome", "1", "confirmed", "--data", data, check=False)
    assert refused.returncode == 1 and "claim" in refused.stderr
    assert "claim" in avisa("tip", "claim", "1", "--note", "voy", "--data", data).stdout
    avisa("tip", "outcome", tip_id, "confirmed", "--note", "vi dos", "--data", data)
    alert_id = avisa("tip", "publish", "1", "--expires-in", "2h", "--data", data).stdout.strip()
    assert alert_id.startswith("ventura/")
    shown = json.loads(avisa("tip", "show", "1", "--json", "--data", data).stdout)
    assert (shown["state"], shown["alert_id"]) == ("published", alert_id)
    human = avisa("tip", "show", tip_id, "--data", data).stdout
    assert "vi dos" in human and not any(form in human for form in NUMBER_FORMS)
    refused = avisa("tip", "close", "1", "--data", data, check=False)
    assert refused.returncode == 1 and "stays published" in refused.stderr
    assert avisa("tip", "list", "--data", data).stdout == "no open tips\n"
    assert "#1" in avisa("tip", "list", "--all", "--data", data).stdout


def test_tip_output_speaks_the_chosen_language(
    running_node: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = str(running_node)
    for name in ("AVISA_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    # Nothing chosen: the node's first language (Spanish by default).
    assert avisa("tip", "list", "--data", data).stdout == "no hay reportes abiertos\n"
    assert avisa("tip", "list", "--lang", "en", "--data", data).stdout == "no open tips\n"
    monkeypatch.setenv("LANG", "en_US.UTF-8")  # the terminal's language
    assert avisa("tip", "list", "--data", data).stdout == "no open tips\n"
    monkeypatch.setenv("AVISA_LANG", "es-MX")
    assert avisa("tip", "list", "--all", "--data", data).stdout == "no hay reportes\n"
    linked = avisa("desk", "link", "@rosa:example.org", "Rosa", "--data", data).stdout
    assert linked == "@rosa:example.org es Rosa en la mesa de verificación\n"


def test_token_with_several_roles(running_node: Path) -> None:  # noqa: F811
    data = str(running_node)
    avisa("token", "add", "--role", "intake,verifier", "--label", "desk phone", "--data", data)
    listed = avisa("token", "list", "--data", data).stdout
    assert any("intake,verifier" in line and "desk phone" in line for line in listed.splitlines())
    refused = avisa("token", "add", "--role", "intake,boss", "--data", data, check=False)
    assert refused.returncode == 1 and "verifier" in refused.stderr
