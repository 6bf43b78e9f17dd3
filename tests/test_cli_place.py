"""``avisa tip publish`` with a place, against two real ``avisa run`` processes.

Ventura (``home_codes = ["fips:06111"]``) and LA, which trusts Ventura for
``fips:06111``. Through the CLI alone: a tip with only a ZIP and a text tip
with only words become alerts LA accepts; a place outside the home area is
warned about before signing and signed only with ``--yes`` (then LA holds
it); a bad place is refused with the field named, and nothing is signed.
"""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from keys.core.keyring import KeyEntry
from keys.store import nodekey
from relay.core.policy import PeerPolicy
from relay.storage import db, trust
from tests.helpers import T0, wait_for
from tests.test_cli import AVISA, avisa
from tests.test_federation_process import Proc, api, free_port, setup_node


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the volunteer CLI's English (``relay.cli.words``: $AVISA_LANG)."""
    monkeypatch.setenv("AVISA_LANG", "en")


def trust_for(data: Path, peer_data: Path, peer: str, port: int, codes: tuple[str, ...]) -> None:
    record = trust.PeerRecord(
        peer,
        f"http://127.0.0.1:{port}",
        (KeyEntry(peer, nodekey.read_public(peer_data / "node.key")),),
        PeerPolicy(network=peer, speaks_for=codes),
    )
    conn = db.open_sync(data / "avisa.db")
    try:
        db.transaction(conn, lambda c: trust.save_peer(c, record, T0))
    finally:
        conn.close()


def tip(data: Path, *args: str) -> str:
    """A tip added, claimed and confirmed from the command line; its number."""
    number = avisa("tip", "add", *args, "--data", str(data)).stdout.split()[-1]
    avisa("tip", "claim", number, "--data", str(data))
    avisa("tip", "outcome", number, "confirmed", "--data", str(data))
    return number


def at_a_terminal(data: str, number: str, answer: str) -> tuple[int, str]:
    """``tip publish`` of a place outside the home area, its stdin a terminal that types
    ``answer`` to the question: the exit code and stdout (the alert's id, or nothing)."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, answer.encode())
        argv = [*AVISA, "tip", "publish", number, "--code", "zip:90033", "--data", data]
        done = subprocess.run(
            argv, stdin=follower, capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        os.close(leader)
        os.close(follower)
    assert "Sign it anyway? [y/N]" in done.stderr
    return done.returncode, done.stdout.strip()


async def decision(http: aiohttp.ClientSession, la: Proc, alert_id: str) -> dict[str, Any]:
    async def decided() -> dict[str, Any] | None:
        found = (await api(http, la, "GET", "/api/v1/decisions?limit=100"))["decisions"]
        return next((d for d in found if d["alert_id"] == alert_id), None)

    await wait_for(decided, timeout=30, what=f"la's decision on {alert_id}")
    result = await decided()
    assert result is not None
    return result


@pytest.mark.slow
async def test_cli_publishes_places_a_county_peer_accepts(
    tmp_path: Path, procs: list[Proc]
) -> None:
    ports = {"ventura": free_port(), "la": free_port()}
    data = {name: setup_node(tmp_path, name, port) for name, port in ports.items()}
    config = data["ventura"] / "avisa.toml"
    config.write_text(
        config.read_text().replace("[node]\n", '[node]\nhome_codes = ["fips:06111"]\n', 1)
    )
    trust_for(data["la"], data["ventura"], "ventura", ports["ventura"], ("fips:06111",))
    trust_for(data["ventura"], data["la"], "la", ports["la"], ("fips:06037",))
    ventura, la = (Proc(data[name], ports[name], {}) for name in ("ventura", "la"))
    procs += [ventura, la]
    await ventura.start()
    await la.start()
    vdata = str(data["ventura"])

    async with aiohttp.ClientSession() as http:
        # A tip with only a ZIP: the node fills the geohash and the county.
        number = tip(data["ventura"], "--text", "Dos camionetas", "--place", "Calle Cooper",
                     "--code", "zip:93030", "--channel", "web")  # fmt: skip
        done = avisa("tip", "publish", number, "--data", vdata)
        alert_id = done.stdout.strip()
        assert alert_id.startswith("ventura/") and "\n" not in alert_id
        assert "place: Calle Cooper - geohash 9q568h, 500 m, codes fips:06111" in done.stderr
        assert (await decision(http, la, alert_id))["decision"] == "accept"

        # A phoned-in report with only words: the home area, and a label better than "Llamada".
        number = tip(data["ventura"], "--text", "La migra en la Cooper", "--place", "Llamada",
                     "--channel", "hotline")  # fmt: skip
        done = avisa("tip", "publish", number, "--area-label", "Cooper St, Oxnard", "--data", vdata)
        assert "codes fips:06111" in done.stderr and "warning" not in done.stderr
        assert (await decision(http, la, done.stdout.strip()))["decision"] == "accept"

        # Outside the home area: warned before signing; without --yes nothing is signed.
        number = tip(data["ventura"], "--text", "Agentes", "--place", "Boyle Heights")
        refused = subprocess.run(
            [*AVISA, "tip", "publish", number, "--code", "zip:90033", "--data", vdata],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False,
        )  # fmt: skip
        assert refused.returncode == 1 and refused.stdout == ""
        assert "avisa: warning: peers that trust this network for fips:06111 will hold it" in (
            refused.stderr
        )
        assert "nothing signed; add --yes" in refused.stderr
        # In Spanish, the node's warning too (the CLI asks the API in its own language).
        spanish = subprocess.run(
            [*AVISA, "tip", "publish", number, "--code", "zip:90033", "--lang", "es",
             "--data", vdata],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False,
        )  # fmt: skip
        assert spanish.returncode == 1
        assert "aviso: los nodos vecinos que confían en esta red para fips:06111" in spanish.stderr
        assert "no se firmó nada" in spanish.stderr and "warning" not in spanish.stderr
        assert len((await api(http, ventura, "GET", "/api/v1/alerts"))["alerts"]) == 2
        assert at_a_terminal(vdata, number, "n\n") == (1, "")
        assert len((await api(http, ventura, "GET", "/api/v1/alerts"))["alerts"]) == 2
        code, signed_id = at_a_terminal(vdata, number, "s\n")
        assert code == 0 and signed_id.startswith("ventura/")
        held = await decision(http, la, signed_id)
        assert (held["decision"], held["reason"]) == ("hold", "outside_speaks_for")

        # Bad places: the field, an example, nothing signed.
        number = tip(data["ventura"], "--text", "Agentes", "--place", "Colonia")
        for option, said in (
            (["--geohash", "9q5"], "geohash: '9q5' is not a geohash of 4 to 9 characters"),
            (["--code", "zip:99999"], "codes: zip:99999 is not an area code this node knows"),
            (["--code", "fips:06999"], "codes: fips:06999"),
        ):
            bad = avisa("tip", "publish", number, *option, "--yes", "--data", vdata, check=False)
            assert bad.returncode == 1 and said in bad.stderr, bad.stderr
            assert "Traceback" not in bad.stderr
        assert len((await api(http, ventura, "GET", "/api/v1/alerts"))["alerts"]) == 3


def test_unknown_home_code_stops_the_node_with_the_setting_named(tmp_path: Path) -> None:
    data = setup_node(tmp_path, "ventura", free_port())
    config = data / "avisa.toml"
    config.write_text(
        config.read_text().replace("[node]\n", '[node]\nhome_codes = ["fips:06999"]\n', 1)
    )
    result = avisa("run", "--data", str(data), check=False)
    assert result.returncode != 0
    assert "node.home_codes: fips:06999 is not an area code this node knows" in result.stderr
    assert "Traceback" not in result.stderr
