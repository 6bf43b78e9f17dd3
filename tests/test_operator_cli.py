"""Issue 21: the operator's first hour, against the real ``avisa`` in subprocesses.

Each test asserts the exact line an operator reads, and that no traceback reaches them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.cli.main import build_parser
from relay.core.drafts import NO_AREA_CODE
from relay.demo.command import register as register_demo
from relay.demo.run import avisa_command
from relay.storage.catalogues import load

AVISA = [sys.executable, "-m", "relay"]
DURATION = (
    "expected a duration: a whole number and s, m, h or d (no spaces), for example 90m, 4h or 7d"
)


def avisa(
    *args: str, ok: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*AVISA, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert (result.returncode == 0) == ok, result.stderr
    return result


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.strip().splitlines()[-1]


def init(data: Path, network: str = "ventura", listen: str = "127.0.0.1:0") -> Path:
    avisa("init", "--data", str(data), "--network", network, "--listen", listen)
    return data


class Running:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.process = subprocess.Popen(
            [*AVISA, "run", "--data", str(data)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
        deadline = time.monotonic() + 30
        while not (data / "run.json").exists():
            assert self.process.poll() is None, self.process.stderr and self.process.stderr.read()
            assert time.monotonic() < deadline, "node did not start"
            time.sleep(0.02)
        self.port = int(json.loads((data / "run.json").read_text())["port"])

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stop(self, signum: int = signal.SIGTERM) -> str:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)
        self.process.wait(timeout=30)
        return self.process.stderr.read() if self.process.stderr else ""


@pytest.fixture
def node(tmp_path: Path) -> Path:
    return init(tmp_path / "ventura")


@pytest.fixture
def live(node: Path) -> Iterator[Running]:
    running = Running(node)
    yield running
    running.stop()


PUBLISH = [
    "alert",
    "publish",
    "--kind",
    "sighting",
    "--certainty",
    "confirmed",
    "--area-label",
    "Colonia, Oxnard",
    "--text",
    "es=ICE en el parque",
]


# --- tracebacks and warnings -----------------------------------------------


def test_a_second_node_on_a_taken_port_names_the_address_and_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = init(tmp_path / "la", "la", f"127.0.0.1:{port}")
        result = avisa("run", "--data", str(data), ok=False)
    assert last_line(result) == (
        f"avisa: {data}/avisa.toml: node.listen: 127.0.0.1:{port} is already in use (another"
        " avisa node, or another program); set node.listen to a free HOST:PORT"
        " (e.g. 127.0.0.1:8471) and node.url to match (docs/operator-guide.md,"
        " 'A second node on one machine')"
    )


def test_a_data_directory_runs_one_node(live: Running) -> None:
    before = (live.data / "run.json").read_text()
    result = avisa("run", "--data", str(live.data), ok=False)
    assert result.stderr.strip() == (
        f"avisa: {live.data}: another 'avisa run' (pid {live.process.pid}) is already running"
        " on this data directory; stop it first, or give another --data"
    )
    assert (live.data / "run.json").read_text() == before


def test_ctrl_c_stops_the_node_and_its_workers_quietly(node: Path) -> None:
    running = Running(node)
    deadline = time.monotonic() + 30
    token = (node / "operator.token").read_text().strip()
    while b"avisa_verify_workers 0" in running.get("/metrics", token)[1]:
        assert time.monotonic() < deadline, "no verification worker started"
        time.sleep(0.05)
    stderr = running.stop(signal.SIGINT)  # to the whole group, as a terminal's Ctrl-C
    assert running.process.returncode == 0
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr


# --- messages a person can read ---------------------------------------------


@pytest.mark.parametrize(
    ("options", "line"),
    [
        (["--geohash", "9q4gch", "--expires-in", "99y"], f"--expires-in: got '99y'; {DURATION}"),
        (
            ["--geohash", "9q4gch", "--code", "06111"],
            "--code: got '06111'; expected an area code: fips: and a 2-5 digit FIPS code, zip:"
            " and 5 digits, or iso: and a country or region code, for example fips:06111,"
            " zip:93030 or iso:us-ca. Did you mean fips:06111?",
        ),
        (
            ["--geohash", "9q4gch", "--text", "english=ICE at the park"],
            "--text: got 'english'; expected a language tag (2 or 3 lowercase letters), for"
            " example es, en or es-MX",
        ),
        (
            ["--geohash", "9q4gcha1b2"],
            "--geohash: got '9q4gcha1b2'; expected a geohash of 4 to 9 characters (digits and"
            " letters except a, i, l, o), for example 9q4gch",
        ),
    ],
)
def test_publish_options_are_checked_with_their_names(
    node: Path, options: list[str], line: str
) -> None:
    result = avisa(*PUBLISH, *options, "--data", str(node), ok=False)
    assert result.stderr.strip() == f"avisa: {line}"


def test_config_errors_name_the_setting(node: Path) -> None:
    config = node / "avisa.toml"
    config.write_text(config.read_text().replace('max_age = "7d"', 'max_age = "7 days"'))
    result = avisa("keys", "show", "--data", str(node), ok=False)
    assert result.stderr.strip() == f"avisa: policy.max_age: got '7 days'; {DURATION}"


def test_an_unknown_token_names_the_file_it_came_from(live: Running) -> None:
    (live.data / "operator.token").write_text("avisa_not-a-real-token\n")
    result = avisa("alert", "list", "--data", str(live.data), ok=False)
    assert result.stderr.strip() == (
        f"avisa: unknown token (read from {live.data / 'operator.token'})"
    )


# --- the CLI does what the guide says -----------------------------------------


def test_data_comes_from_avisa_data(node: Path) -> None:
    shown = avisa("keys", "show", "--json", env={"AVISA_DATA": str(node)})
    assert json.loads(shown.stdout)["network"] == "ventura"


@pytest.mark.skipif(Path("/var/lib/avisa").exists(), reason="the default directory exists here")
def test_without_data_the_error_says_how_to_choose() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AVISA_DATA"}
    result = subprocess.run(
        [*AVISA, "keys", "show"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "avisa: --data: which node? give --data DIR, or set AVISA_DATA=DIR"
        " (the default, /var/lib/avisa, does not exist)"
    )


def test_version() -> None:
    from importlib.metadata import version

    assert avisa("--version").stdout.strip() == f"avisa {version('avisa')}"


def _parsers(parser, prefix=()):  # type: ignore[no-untyped-def]
    yield prefix, parser
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*prefix, name))


def test_every_option_has_a_help_text() -> None:
    missing = [
        f"avisa {' '.join(command)} {action.option_strings or action.dest}"
        for command, parser in _parsers(build_parser((register_demo,)))
        for action in parser._actions
        if action.__class__.__name__ != "_SubParsersAction" and not action.help
    ]
    assert missing == []


def test_demo_hints_name_a_command_that_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    script = Path(sys.executable).parent / "avisa"
    monkeypatch.setenv("PATH", "/nonexistent")
    shown = avisa_command()
    assert Path(shown).resolve() == script.resolve()  # .venv/bin/avisa, perhaps relative
    monkeypatch.setenv("PATH", str(script.parent))
    assert avisa_command() == "avisa"


def test_cancel_is_shown_cancelled_and_update_takes_what_changes(live: Running) -> None:
    data = str(live.data)
    base = [*PUBLISH, "--geohash", "9Q4GCH", "--code", "fips:06111", "--data", data]
    first = avisa(*base).stdout.strip()
    second = avisa("alert", "update", first, "--certainty", "unconfirmed", "--data", data)
    second_id = second.stdout.strip()
    shown = json.loads(avisa("alert", "list", "--json", "--data", data).stdout)["alerts"]
    newest = next(item["alert"] for item in shown if item["alert"]["id"] == second_id)
    assert (newest["certainty"], newest["area"]["label"]) == ("unconfirmed", "Colonia, Oxnard")
    assert newest["area"]["geohash"] == "9q4gch"
    cancel = avisa("alert", "cancel", first, "--text", "es=Retirada", "--data", data)
    assert cancel.stderr.strip() == (
        f"avisa: {first} was updated since; acted on its newest version {second_id}"
    )
    cancel_id = cancel.stdout.strip()
    assert avisa("alert", "list", "--active", "--data", data).stdout == "no active alerts\n"
    lines = avisa("alert", "list", "--data", data).stdout.splitlines()
    assert lines[0] == (
        f"{cancel_id}  cancelled  sighting     unconfirmed Colonia, Oxnard: Retirada"
        f"  [withdraws {second_id}]"
    )
    assert [line.split()[1] for line in lines] == ["cancelled"] * 3


def test_publish_without_an_area_code_warns(live: Running) -> None:
    result = avisa(*PUBLISH, "--geohash", "9q4gch", "--data", str(live.data))
    assert result.stdout.strip().startswith("ventura/")
    said = load(["en"]).words("en").gettext(NO_AREA_CODE)  # the API speaks English
    assert result.stderr.strip() == f"avisa: warning: {said}"


def _card(data: Path, out: Path) -> tuple[Path, str]:
    out.write_text(avisa("keys", "export-card", "--data", str(data)).stdout)
    shown = json.loads(avisa("keys", "show", "--json", "--data", str(data)).stdout)
    return out, str(shown["fingerprint"])


def test_trust_add_again_needs_no_fingerprint_and_finds_the_card(tmp_path: Path) -> None:
    ventura, la = init(tmp_path / "ventura"), init(tmp_path / "la", "la")
    card, fingerprint = _card(la, tmp_path / "la.card.json")
    unknown = avisa("trust", "add", str(card), "--data", str(ventura), ok=False)
    assert unknown.stderr.strip() == (
        "avisa: la is not trusted here yet, or its card holds a key we have not verified:"
        " give --fingerprint with the 30 digits its operator reads to you"
    )
    added = avisa(
        "trust",
        "add",
        "--fingerprint",
        fingerprint,
        "--speaks-for",
        "fips:06037",
        "fips:06059",
        str(card),
        "--data",
        str(ventura),
    )
    assert added.stdout.splitlines()[0].startswith("Trusted la ")
    assert "  speaks for: fips:06037, fips:06059" in added.stdout.splitlines()
    again = avisa("trust", "add", str(card), "--speaks-for", "fips:06037", "--data", str(ventura))
    assert again.stdout.splitlines()[0].startswith("Updated la ")
    assert "  speaks for: fips:06037" in again.stdout.splitlines()


def test_init_uses_a_lone_avisa_toml(tmp_path: Path) -> None:
    from relay.core.config import render

    data = tmp_path / "node"
    data.mkdir()
    (data / "avisa.toml").write_text(render("ventura", "127.0.0.1:8471", "http://127.0.0.1:8471"))
    out = avisa("init", "--data", str(data), "--network", "ventura").stdout.splitlines()
    assert out[:2] == [
        f"Initialized node 'ventura' in {data}",
        "  kept the avisa.toml already there: listen 127.0.0.1:8471, url http://127.0.0.1:8471"
        " (--listen and --url are not used)",
    ]
    again = avisa("init", "--data", str(data), "--network", "ventura", ok=False)
    assert again.stderr.strip() == (
        f"avisa: {data}: already holds a node (node.key); refusing to overwrite its key"
    )


def test_demo_workdir_of_an_earlier_run_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "ventura").mkdir()
    result = avisa("demo", "--workdir", str(tmp_path), ok=False)
    assert result.stderr.strip() == (
        f"avisa: {tmp_path} already holds the demo nodes of an earlier run (ventura);"
        " give a new --workdir, or delete that directory first"
    )


def test_a_stale_run_json_never_reaches_another_node(live: Running, tmp_path: Path) -> None:
    copy = init(tmp_path / "la", "la")
    shutil.copy(live.data / "run.json", copy / "run.json")
    result = avisa("alert", "list", "--data", str(copy), ok=False)
    keyid = json.loads(live.get("/healthz")[1])["keyid"]
    assert result.stderr.strip() == (
        f"avisa: the node answering at http://127.0.0.1:{live.port} is ventura ({keyid}),"
        f" not the node of {copy} (la); its run.json is stale or another node took the port:"
        f" start this one with 'avisa run --data {copy}'"
    )


def test_a_new_token_works_at_once(live: Running) -> None:
    token = avisa("token", "add", "--role", "publisher", "--data", str(live.data)).stdout.strip()
    status, _ = live.get("/api/v1/alerts", token)
    assert status == 200


def test_policy_explain_prints_lines_and_refuses_an_unknown_peer(
    live: Running, tmp_path: Path
) -> None:
    from tests.helpers import key, make_alert, raw_envelope

    envelope = tmp_path / "alert.json"
    envelope.write_bytes(raw_envelope(make_alert("la"), key(2)))
    refused = avisa(
        "policy", "explain", str(envelope), "--from-peer", "nope", "--data", str(live.data),
        ok=False,
    )  # fmt: skip
    assert refused.stderr.strip() == (
        "avisa: --from-peer: 'nope' is not a trusted peer here (trusted: none yet)"
    )
    lines = avisa("policy", "explain", str(envelope), "--data", str(live.data)).stdout
    assert lines.splitlines() == [
        "decision:          reject",
        "reason:            unknown_key",
    ]


def test_a_stopped_node_is_named_with_the_command_that_starts_it(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = init(tmp_path / "ventura", listen=f"127.0.0.1:{port}")
    result = avisa("alert", "list", "--data", str(data), ok=False)
    assert result.stderr.strip() == (
        f"avisa: cannot reach the node at http://127.0.0.1:{port} (connection refused);"
        f" is 'avisa run --data {data}' running?"
    )


def test_update_with_a_body_alone_says_what_else_it_needs(node: Path) -> None:
    result = avisa("alert", "update", "ventura/X", "--body", "en=More", "--data", str(node),
                   ok=False)  # fmt: skip
    assert result.stderr.strip() == (
        "avisa: --body/--instruction in en need a --text en=HEADLINE too"
        " (the text is given whole, also in an update)"
    )


def test_alert_show_envelope_feeds_policy_explain(live: Running, tmp_path: Path) -> None:
    data = str(live.data)
    alert_id = avisa(*PUBLISH, "--geohash", "9q4gch", "--code", "fips:06111", "--data", data)
    envelope = tmp_path / "envelope.json"
    shown = avisa("alert", "show", alert_id.stdout.strip(), "--envelope", "--data", data)
    envelope.write_text(shown.stdout)
    lines = avisa("policy", "explain", str(envelope), "--data", data).stdout.splitlines()
    assert lines[2] == (  # already accepted here, not "reject / duplicate" (issue 27)
        "decision:          none: already accepted here (a copy arriving now changes nothing)"
    )
    assert lines[4] == "as if new:         accept (local)"
    assert "inside_speaks_for: no" in lines


def test_a_matrix_bridge_without_matrix_nio_says_what_to_install(
    node: Path, tmp_path: Path
) -> None:
    shadow = tmp_path / "shadow" / "nio"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'nio'\", name='nio')\n"
    )
    (node / "matrix.password").write_text("secret\n")
    (node / "matrix.password").chmod(0o600)
    with (node / "avisa.toml").open("a") as config:
        config.write(
            '\n[[bridges.matrix]]\nhomeserver = "http://127.0.0.1:9"\n'
            'user_id = "@avisa:localhost"\npassword_file = "matrix.password"\n'
            '[[bridges.matrix.routes]]\nroom = "#alerts:localhost"\n'
        )
    path = os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])
    result = avisa("run", "--data", str(node), ok=False, env={"PYTHONPATH": path})
    assert last_line(result) == (
        "avisa: bridges.matrix: needs matrix-nio, which this Python lacks:"
        " pip install 'matrix-nio[e2e]>=0.26,<0.27' into Avisa's environment"
        " (or reinstall Avisa)"
    )


def test_init_on_a_port_in_use_says_so_before_run(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = avisa(
            "init", "--data", str(tmp_path / "la"), "--network", "la", "--listen",
            f"127.0.0.1:{port}",
        ).stdout.splitlines()  # fmt: skip
    assert (
        f"Note: 127.0.0.1:{port} is in use now (another node?). Before 'avisa run', set"
        f" node.listen and node.url in {tmp_path / 'la' / 'avisa.toml'} to a free port."
    ) in out


def test_held_accept_of_nothing_points_to_the_queue(live: Running) -> None:
    result = avisa("held", "accept", "ventura/01M94KP6JJDQJTMV2NMAV38Q1B", "--data",
                   str(live.data), ok=False)  # fmt: skip
    assert result.stderr.strip() == (
        "avisa: no held alert ventura/01M94KP6JJDQJTMV2NMAV38Q1B (avisa held list shows what waits)"
    )


def test_speaks_for_digits_alone_ask_for_the_prefix(tmp_path: Path) -> None:
    ventura, la = init(tmp_path / "ventura"), init(tmp_path / "la", "la")
    card, fingerprint = _card(la, tmp_path / "la.card.json")
    result = avisa("trust", "add", str(card), "--fingerprint", fingerprint, "--speaks-for",
                   "06037", "--data", str(ventura), ok=False)  # fmt: skip
    assert result.stderr.strip() == (
        "avisa: --speaks-for 06037: did you mean fips:06037? (a code needs its fips:, zip: or"
        " iso: prefix; digits alone would be a geohash prefix off West Africa)"
    )
    added = avisa("trust", "add", str(card), "--fingerprint", fingerprint, "--speaks-for",
                  "FIPS:06037", "--data", str(ventura))  # fmt: skip
    assert "  speaks for: fips:06037" in added.stdout.splitlines()
