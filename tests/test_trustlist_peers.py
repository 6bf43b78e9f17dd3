"""Members of a subscribed list as peers, on a real data directory (``pomona``): the
snapshot the node loads, ``avisa trust deny|undeny|denied|list`` and ``policy explain``
run in-process (``relay.cli.main.main``); every change moves ``trust_version``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keys.cards.trustlist import set_fingerprint
from keys.store import deny_ops, own_ops, trustsub_ops
from relay.cli import datadir
from relay.cli.main import main
from relay.core.errors import BadInput
from relay.core.policy import PeerPolicy
from relay.runtime.clock import FakeClock
from relay.storage import trust
from tests.helpers import make_alert, raw_envelope
from tests.trustlist_helpers import MAINTAINERS, T, chain, document, key_of, signed

URL = "https://host.example.org/trustlists/v1/socal"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    made = tmp_path / "pomona"
    datadir.initialize(made, "pomona", clock=FakeClock(T))
    return made


def snapshot(data: Path) -> trust.TrustSnapshot:
    with own_ops.open_store(data) as (config, conn):
        return trust.load_snapshot(conn, config, own_ops.own_keyring(conn, config, data))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_members_are_peers_until_denied_or_unsubscribed(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(T + timedelta(hours=1))
    v1 = chain(1)[0]
    before = snapshot(data).version
    trustsub_ops.subscribe(data, URL, set_fingerprint(v1.document), ["fips:06"], [v1.raw], clock)
    shot = snapshot(data)
    assert shot.version > before
    assert set(shot.peers) == {*MAINTAINERS, "santa-ana"}
    santa = shot.peers["santa-ana"]
    assert santa.policy.speaks_for == ("fips:06111",)
    assert [s.list for s in santa.policy.sources] == ["socal"]
    assert shot.keyring.get(key_of("santa-ana").keyid) is not None

    code, out, _ = run(capsys, "trust", "list", "--data", str(data), "--json")
    shown = {p["network"]: p for p in json.loads(out)["peers"]}
    assert code == 0 and shown["santa-ana"]["trusted_via"] == "list"
    assert shown["santa-ana"]["lists"][0]["version"] == 1
    assert shown["santa-ana"]["keys"][0]["learned_from"] == "list"
    code, out, _ = run(capsys, "trust", "list", "santa-ana", "--data", str(data))
    assert "through list socal v1, expires" in out

    # A deny beats the list; undeny gives it back. The reason is required and shown.
    code, _, err = run(capsys, "trust", "deny", "santa-ana", "--data", str(data), "--reason", "")
    assert code == 1 and "--reason" in err
    code, out, _ = run(capsys, "trust", "deny", "santa-ana", "--data", str(data),
                       "--reason", "seized phone")  # fmt: skip
    assert code == 0 and "Denied santa-ana" in out
    assert "santa-ana" not in snapshot(data).peers
    assert shot.keyring.get(key_of("santa-ana").keyid) is not None
    assert snapshot(data).keyring.get(key_of("santa-ana").keyid) is None
    code, out, _ = run(capsys, "trust", "denied", "--data", str(data))
    assert "santa-ana" in out and "seized phone" in out
    assert run(capsys, "trust", "undeny", "santa-ana", "--data", str(data))[0] == 0
    assert "santa-ana" in snapshot(data).peers
    code, _, err = run(capsys, "trust", "undeny", "santa-ana", "--data", str(data))
    assert code == 1 and "not denied" in err

    # A new version that removes the member takes it away; unsubscribing takes the rest.
    v2 = signed(document(2, extra=(), previous=v1, issued_at=T + timedelta(minutes=5)),
                MAINTAINERS[:2])  # fmt: skip
    assert trustsub_ops.refresh(data, "socal", [v2.raw], clock).version == 2
    assert set(snapshot(data).peers) == set(MAINTAINERS)
    trustsub_ops.unsubscribe(data, "socal")
    assert snapshot(data).peers == {}


def test_a_list_key_revoked_here_beats_every_version(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(T + timedelta(hours=1))
    v1 = chain(1)[0]
    trustsub_ops.subscribe(data, URL, set_fingerprint(v1.document), ["fips:06"], [v1.raw], clock)
    keyid = key_of("santa-ana").keyid
    code, out, err = run(capsys, "trust", "revoke", "santa-ana", keyid[:16], "--data", str(data),
                         "--at", "2026-11-23T12:30:00Z")  # fmt: skip
    assert code == 0, err
    assert "revoked" in out
    v2 = signed(document(2, previous=v1, issued_at=T + timedelta(minutes=5)), MAINTAINERS[:2])
    trustsub_ops.refresh(data, "socal", [v2.raw], clock)
    entry = snapshot(data).keyring.get(keyid)
    assert entry is not None and entry.revoked_at == T + timedelta(minutes=30)
    code, out, _ = run(capsys, "trust", "list", "santa-ana", "--data", str(data), "--json")
    assert json.loads(out)["peers"][0]["keys"][0]["status"].startswith("REVOKED from")
    code, _, err = run(capsys, "trust", "revoke", "nobody", keyid[:16], "--data", str(data))
    assert code == 1 and "nobody has no key" in err


def test_local_trust_wins_and_cannot_be_denied(data: Path) -> None:
    clock = FakeClock(T + timedelta(hours=1))
    v1 = chain(1)[0]
    trustsub_ops.subscribe(data, URL, set_fingerprint(v1.document), ["fips:06"], [v1.raw], clock)
    local = PeerPolicy("santa-ana", speaks_for=("fips:06037",))
    with own_ops.open_store(data) as (_, conn):
        record = trust.PeerRecord("santa-ana", "https://sa.example.org", (), local)
        trust.save_peer(conn, record, clock())
        conn.commit()
    santa = snapshot(data).peers["santa-ana"]
    assert santa.policy == local and santa.url == "https://sa.example.org"
    with pytest.raises(BadInput, match="trust remove santa-ana"):
        deny_ops.deny(data, "santa-ana", "no", clock)
    with pytest.raises(BadInput, match="not a network name"):
        deny_ops.deny(data, "Santa Ana", "no", clock)


def test_policy_explain_says_which_list_decided(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = main_now()  # policy explain reads the system clock
    v1 = signed(document(issued_at=now - timedelta(hours=1)), MAINTAINERS[:2])
    clock = FakeClock(now)
    trustsub_ops.subscribe(data, URL, set_fingerprint(v1.document), ["fips:06"], [v1.raw], clock)
    alert = make_alert("santa-ana", kind="checkpoint", sent_at=now)
    envelope = tmp_path / "alert.json"
    envelope.write_bytes(raw_envelope(alert, key_of("santa-ana")))
    code, out, _ = run(capsys, "policy", "explain", str(envelope), "--data", str(data), "--json")
    result = json.loads(out)
    assert code == 0 and result["origin_trusted"].startswith("through list socal version 1")
    deny_ops.deny(data, "santa-ana", "seized phone", clock)
    code, out, _ = run(capsys, "policy", "explain", str(envelope), "--data", str(data))
    assert "unknown_key" in out  # denied: its keys are taken from no list


def main_now() -> datetime:
    """A minute ago by the system clock, in whole seconds."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
