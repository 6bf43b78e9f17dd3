"""``avisa trustlist`` on real data directories, and a real ``avisa run`` serving the list.

Three maintainers (``ventura``, ``la-rrn``, ``oc.resilience``; threshold 2)
each sign version 1 on their own node's data directory; a fourth network,
``santa-ana``, is a member and hosts the list. The commands run in-process
(``relay.cli.main.main``, the code ``avisa`` runs); the host is a real node
process, fetched over HTTP.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keys.cards.trustlist import read_list, set_fingerprint
from keys.store import trustsub_ops
from relay.cli.main import main
from relay.runtime.clock import system_clock
from tests.test_operator_cli import Running

MAINTAINERS = ("ventura", "la-rrn", "oc.resilience")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


@pytest.fixture
def nodes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    made = {}
    for network in (*MAINTAINERS, "santa-ana"):
        data = tmp_path / network
        code, _, err = run(capsys, "init", "--data", str(data), "--network", network,
                           "--listen", "127.0.0.1:0")  # fmt: skip
        assert code == 0, err
        card = tmp_path / f"{network}.card"
        assert run(capsys, "keys", "export-card", "--data", str(data), "--out", str(card))[0] == 0
        made[network] = data
    return made


def _draft_v1(capsys: pytest.CaptureFixture[str], nodes: dict[str, Path], out: Path) -> str:
    cards = [arg for n in MAINTAINERS for arg in ("--add-card", str(out.parent / f"{n}.card"))]
    code, said, err = run(
        capsys, "trustlist", "draft", "--data", str(nodes["ventura"]), "--out", str(out),
        "--list", "socal", "--maintainers", *MAINTAINERS, "--threshold", "2", *cards,
        "--speaks-for", "fips:06111",
    )  # fmt: skip
    assert code == 0, err
    code, said2, err = run(
        capsys, "trustlist", "draft", "--data", str(nodes["ventura"]), "--out", str(out),
        "--force", "--edit", str(out),
        "--add-card", str(out.parent / "santa-ana.card"), "--speaks-for", "fips:06059",
    )  # fmt: skip
    assert code == 0, err
    assert "Drafted socal version 1" in said2 and "4 members" in said2
    return said2


def v1_draft(signed: Path, tmp_path: Path) -> Path:
    """The payload of a signed version 1, as an unsigned draft file (to edit)."""
    draft = tmp_path / "draft-again.json"
    draft.write_bytes(read_list(signed.read_bytes()).payload + b"\n")
    return draft


def sign(capsys: pytest.CaptureFixture[str], node: Path, file: Path, *more: str) -> str:
    code, said, err = run(capsys, "trustlist", "sign", str(file), "--data", str(node), *more)
    assert code == 0, err
    return said


@pytest.fixture
def signed_v1(tmp_path: Path, nodes: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> Path:
    draft = tmp_path / "socal-1.json"
    _draft_v1(capsys, nodes, draft)
    sign(capsys, nodes["ventura"], draft)
    said = sign(capsys, nodes["la-rrn"], draft)
    assert "signed by maintainers: la-rrn, ventura" in said
    return draft


def test_three_maintainers_sign_on_their_own_nodes(
    tmp_path: Path, nodes: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    draft = tmp_path / "socal-1.json"
    said = _draft_v1(capsys, nodes, draft)
    fingerprint = said.split("maintainer-set fingerprint: ")[1].splitlines()[0]
    code, out, _ = run(capsys, "trustlist", "verify", str(draft), "--data", str(nodes["ventura"]))
    assert code == 1 and "Not signed yet" in out
    said = sign(capsys, nodes["ventura"], draft)
    assert "still needed: 1 of la-rrn, oc.resilience" in said
    code, out, _ = run(capsys, "trustlist", "verify", str(draft), "--data", str(nodes["la-rrn"]))
    assert code == 1 and "below_threshold" in out
    before = draft.read_bytes()
    code, _, err = run(capsys, "trustlist", "sign", str(draft), "--data", str(nodes["santa-ana"]))
    assert code == 1 and "is not a maintainer of socal version 1" in err
    assert draft.read_bytes() == before
    sign(capsys, nodes["oc.resilience"], draft)
    sign(capsys, nodes["la-rrn"], draft)
    code, out, _ = run(capsys, "trustlist", "verify", str(draft), "--data", str(nodes["la-rrn"]))
    assert code == 0, out
    assert "signed by maintainers: la-rrn, oc.resilience, ventura" in out
    assert f"maintainer-set fingerprint: {fingerprint}" in out
    opened = read_list(draft.read_bytes())
    assert len(opened.envelope.signatures) == 3
    assert set_fingerprint(opened.document) == fingerprint
    scopes = {member.network: member.speaks_for for member in opened.document.members}
    assert scopes == {"la-rrn": ["fips:06111"], "oc.resilience": ["fips:06111"],
                      "santa-ana": ["fips:06059"], "ventura": ["fips:06111"]}  # fmt: skip


@pytest.fixture
def host(nodes: dict[str, Path]) -> Iterator[Running]:
    running = Running(nodes["santa-ana"])
    yield running
    running.stop()


def test_one_node_serves_what_the_maintainers_signed(
    tmp_path: Path,
    nodes: dict[str, Path],
    signed_v1: Path,
    host: Running,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert host.get("/trustlists/v1/socal")[0] == 404
    santa = str(nodes["santa-ana"])
    code, out, err = run(capsys, "trustlist", "publish", str(signed_v1), "--data", santa)
    assert code == 0, err
    assert "Published socal: 1." in out and "/trustlists/v1/socal" in out
    assert host.get("/trustlists/v1/socal") == (200, signed_v1.read_bytes())
    assert host.get("/trustlists/v1/socal/1") == (200, signed_v1.read_bytes())
    status, body = host.get("/trustlists/v1/socal/2")
    assert status == 404 and json.loads(body)["errcode"] == "AVISA_NOT_FOUND"
    for bad in ("/trustlists/v1/Socal", "/trustlists/v1/socal/01", "/trustlists/v1/socal/x"):
        status, body = host.get(bad)
        assert status == 400 and json.loads(body)["errcode"] == "AVISA_BAD_QUERY", bad

    # Version 2 removes santa-ana; one signature is not enough, and nothing is kept.
    v2 = tmp_path / "socal-2.json"
    code, out, err = run(
        capsys, "trustlist", "draft", "--data", str(nodes["la-rrn"]), "--out", str(v2),
        "--previous", str(signed_v1), "--remove", "santa-ana",
    )  # fmt: skip
    assert code == 0, err
    sign(capsys, nodes["la-rrn"], v2, "--previous", str(signed_v1))
    code, _, err = run(capsys, "trustlist", "publish", str(v2), "--data", santa)
    assert code == 1 and "below_threshold" in err
    assert host.get("/trustlists/v1/socal") == (200, signed_v1.read_bytes())
    said = sign(capsys, nodes["oc.resilience"], v2, "--previous", str(signed_v1))
    assert "previous maintainers still needed: 0" in said
    code, out, _ = run(
        capsys, "trustlist", "verify", str(v2), "--previous", str(signed_v1), "--data", santa
    )
    assert code == 0 and "member removed: santa-ana" in out
    assert run(capsys, "trustlist", "publish", str(v2), "--data", santa)[0] == 0
    assert host.get("/trustlists/v1/socal") == (200, v2.read_bytes())
    assert host.get("/trustlists/v1/socal/1") == (200, signed_v1.read_bytes())

    # Version 1 again is nothing new (with a third signature, it replaces the kept copy);
    # version 1 with other bytes is a rollback and never replaces it.
    code, out, err = run(capsys, "trustlist", "publish", str(signed_v1), "--data", santa)
    assert code == 0 and "Published socal: nothing new." in out
    other = tmp_path / "socal-1b.json"
    edit = str(v1_draft(signed_v1, tmp_path))
    assert run(capsys, "trustlist", "draft", "--data", str(nodes["ventura"]), "--out",
               str(other), "--edit", edit, "--days", "10")[0] == 0  # fmt: skip
    sign(capsys, nodes["ventura"], other)
    sign(capsys, nodes["la-rrn"], other)
    code, _, err = run(capsys, "trustlist", "publish", str(other), "--data", santa)
    assert code == 1 and "rollback" in err
    sign(capsys, nodes["oc.resilience"], signed_v1)  # a third signature replaces the copy
    code, out, err = run(capsys, "trustlist", "publish", str(signed_v1), "--data", santa)
    assert code == 0 and "Published socal: 1." in out
    assert host.get("/trustlists/v1/socal/1") == (200, signed_v1.read_bytes())
    code, out, _ = run(capsys, "trustlist", "list", "--data", santa, "--json")
    assert json.loads(out)["trustlists"][0]["version"] == 2
    assert json.loads(out)["trustlists"][0]["versions_kept"] == 2
    code, out, _ = run(capsys, "trustlist", "show", "socal", "--data", santa)
    assert "socal version 2" in out and "santa-ana" not in out.split("maintainers:")[1]


def test_publish_refuses_a_chain_that_does_not_hold_and_keeps_nothing(
    tmp_path: Path,
    nodes: dict[str, Path],
    signed_v1: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    santa = str(nodes["santa-ana"])
    v2 = tmp_path / "socal-2.json"
    assert run(
        capsys, "trustlist", "draft", "--data", str(nodes["ventura"]), "--out", str(v2),
        "--previous", str(signed_v1), "--days", "10",
    )[0] == 0  # fmt: skip
    sign(capsys, nodes["ventura"], v2, "--previous", str(signed_v1))
    sign(capsys, nodes["la-rrn"], v2, "--previous", str(signed_v1))
    code, _, err = run(capsys, "trustlist", "publish", str(v2), "--data", santa)
    assert code == 1 and "skipped_version" in err
    code, _, err = run(capsys, "trustlist", "publish", str(signed_v1), str(v2), "--data", santa)
    assert code == 0, err
    conn = sqlite3.connect(nodes["santa-ana"] / "avisa.db")
    try:
        assert conn.execute("SELECT list, version FROM trustlist_versions").fetchall() == [
            ("socal", 1),
            ("socal", 2),
        ]
    finally:
        conn.close()
    for bad, why in [
        (b"{}", "malformed"),
        (b"x" * (2 * 1024 * 1024), "too_large"),
    ]:
        path = tmp_path / "bad.json"
        path.write_bytes(bad)
        code, _, err = run(capsys, "trustlist", "publish", str(path), "--data", santa)
        assert code == 1 and why in err and err.count("\n") == 1, err


# --- subscribing -----------------------------------------------------------------


def _fingerprint(signed: Path) -> str:
    return set_fingerprint(read_list(signed.read_bytes()).document)


def _subscriptions(capsys: pytest.CaptureFixture[str], data: Path) -> list[dict[str, Any]]:
    code, out, _ = run(capsys, "trustlist", "list", "--data", str(data), "--json")
    assert code == 0
    subscriptions: list[dict[str, Any]] = json.loads(out)["subscriptions"]
    return subscriptions


def test_a_subscriber_walks_the_list_forward_from_the_fingerprint(
    tmp_path: Path,
    nodes: dict[str, Path],
    signed_v1: Path,
    host: Running,
    capsys: pytest.CaptureFixture[str],
) -> None:
    santa = str(nodes["santa-ana"])
    assert run(capsys, "trustlist", "publish", str(signed_v1), "--data", santa)[0] == 0
    url = f"http://127.0.0.1:{host.port}/trustlists/v1/socal"
    subscriber = str(nodes["santa-ana"])  # the host follows its own list, through HTTP
    wrong = "12345 12345 12345 12345 12345 12345"
    code, _, err = run(capsys, "trustlist", "subscribe", url, "--fingerprint", wrong,
                       "--data", subscriber)  # fmt: skip
    assert code == 1 and "fingerprint_mismatch" in err and err.count("\n") == 1
    assert _subscriptions(capsys, nodes["santa-ana"]) == []
    code, out, err = run(capsys, "trustlist", "subscribe", url, "--fingerprint",
                         _fingerprint(signed_v1), "--max-speaks-for", "fips:06",
                         "--data", subscriber)  # fmt: skip
    assert code == 0, err
    assert "Subscribed to socal: version 1, 4 members" in out
    code, _, err = run(capsys, "trustlist", "subscribe", url, "--fingerprint",
                       _fingerprint(signed_v1), "--data", subscriber)  # fmt: skip
    assert code == 1 and "already subscribed to socal" in err

    # Version 2 is published: a refresh takes it; nothing new the next time.
    v2 = tmp_path / "socal-2.json"
    assert run(capsys, "trustlist", "draft", "--data", str(nodes["la-rrn"]), "--out", str(v2),
               "--previous", str(signed_v1), "--remove", "santa-ana")[0] == 0  # fmt: skip
    sign(capsys, nodes["la-rrn"], v2, "--previous", str(signed_v1))
    sign(capsys, nodes["ventura"], v2, "--previous", str(signed_v1))
    assert run(capsys, "trustlist", "publish", str(v2), "--data", santa)[0] == 0
    code, out, _ = run(capsys, "trustlist", "refresh", "--data", subscriber)
    assert code == 0 and "socal: version 2 held (2)." in out
    code, out, _ = run(capsys, "trustlist", "refresh", "socal", "--data", subscriber)
    assert code == 0 and "socal: version 2 held (nothing new)." in out

    # A replayed version 1 is refused with its reason, recorded, and shown by the API.
    clock = system_clock
    result = trustsub_ops.refresh(nodes["santa-ana"], "socal", [signed_v1.read_bytes()], clock)
    assert result.refusal is not None and result.refusal[0] == "rollback"
    token = (nodes["santa-ana"] / "operator.token").read_text().strip()
    status, body = host.get("/api/v1/trustlists", token)
    assert status == 200
    (shown,) = json.loads(body)["trustlists"]
    assert shown["version"] == 2 and shown["max_speaks_for"] == ["fips:06"]
    assert shown["refusal"]["reason"] == "rollback"
    assert shown["fingerprint"] == _fingerprint(signed_v1)
    assert host.get("/api/v1/trustlists")[0] == 401

    # Equivocation: another version 2 signed by the maintainers is kept as evidence.
    twin = tmp_path / "socal-2b.json"
    assert run(capsys, "trustlist", "draft", "--data", str(nodes["la-rrn"]), "--out", str(twin),
               "--previous", str(signed_v1), "--days", "20")[0] == 0  # fmt: skip
    sign(capsys, nodes["la-rrn"], twin, "--previous", str(signed_v1))
    sign(capsys, nodes["oc.resilience"], twin, "--previous", str(signed_v1))
    result = trustsub_ops.refresh(nodes["santa-ana"], "socal", [twin.read_bytes()], clock)
    assert result.refusal is not None and result.refusal[0] == "equivocation"
    (shown,) = _subscriptions(capsys, nodes["santa-ana"])
    assert shown["evidence"] == 1 and shown["version"] == 2

    # The host stops answering: the check is recorded as unreachable, the list kept.
    host.stop()
    code, out, _ = run(capsys, "trustlist", "refresh", "--data", subscriber)
    assert code == 1 and "refused: connection failed" in out
    (shown,) = _subscriptions(capsys, nodes["santa-ana"])
    assert shown["refusal"]["reason"] == "unreachable" and shown["version"] == 2
    assert run(capsys, "trustlist", "unsubscribe", "socal", "--data", subscriber)[0] == 0
    assert _subscriptions(capsys, nodes["santa-ana"]) == []
    code, _, err = run(capsys, "trustlist", "unsubscribe", "socal", "--data", subscriber)
    assert code == 1 and "not subscribed to socal" in err


def test_subscribe_refuses_bad_options_before_fetching(
    nodes: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(nodes["ventura"])
    fp = "12345 12345 12345 12345 12345 12345"
    for args, why in [
        (["ftp://x/trustlists/v1/socal", "--fingerprint", fp], "http(s)://host"),
        (["http://127.0.0.1:9/trustlists/v1/socal", "--fingerprint", "123"], "30 digits"),
        (["http://127.0.0.1:9/t", "--fingerprint", fp, "--max-speaks-for", "fips:6"], "area codes"),
        (["http://127.0.0.1:9/trustlists/v1/socal", "--fingerprint", fp], "connection failed"),
    ]:
        code, _, err = run(capsys, "trustlist", "subscribe", *args, "--data", data)
        assert code == 1 and why in err and err.count("\n") == 1, err
