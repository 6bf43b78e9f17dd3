"""Hostile XML: the fixtures' attacks are refused, no file or host is ever touched,
and the CAP 1.2 rules in code agree with the OASIS schema (``cap12.xsd``)."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridges.cap import parse
from bridges.cap.parse import Limits, Refused, kind_of, parse_document, read_cap
from bridges.cap.render import render_alert
from tests.cap.kit import CATALOGUES, FIXTURES, HOSTILE, fixture, xsd_valid
from tests.helpers import key, make_alert, raw_envelope

REASONS = {
    "xee.cap": "dtd",
    "xee.atom": "dtd",
    "invalid.cap": "invalid",
    "canada_errors.cap": "invalid",
}


def read(data: bytes, limits: Limits | None = None) -> parse.CapMessage:
    root = parse_document(data, limits or Limits())
    if kind_of(root) != "cap":
        raise Refused("not_cap")
    return read_cap(root)


def accepted(data: bytes) -> bool:
    try:
        read(data)
    except Refused:
        return False
    return True


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_fixtures_are_refused_with_their_reason(name: str) -> None:
    with pytest.raises(Refused) as refused:
        root = parse_document(fixture(name), Limits())
        read_cap(root) if kind_of(root) == "cap" else None
    assert refused.value.reason == REASONS[name]
    assert "KSTO" not in str(refused.value) and "passwd" not in str(refused.value)


def _own_message() -> bytes:
    alert = make_alert(codes=("fips:06111", "zip:93030", "iso:us-ca"))
    return render_alert(alert, raw_envelope(alert, key(1)), catalogues=CATALOGUES)


MUTATIONS = {
    "no scope": (b"<scope>Public</scope>", b""),
    "sent in Z": (b"<sent>2026-11-23T12:00:00+00:00</sent>", b"<sent>2026-11-23T12:00:00Z</sent>"),
    "unknown status": (b"<status>Actual</status>", b"<status>Real</status>"),
    "order": (
        b"<status>Actual</status><msgType>Alert</msgType>",
        b"<msgType>Alert</msgType><status>Actual</status>",
    ),
    "foreign element": (b"<scope>Public</scope>", b"<scope>Public</scope><x>1</x>"),
    "two senders": (b"<sender>ventura</sender>", b"<sender>ventura</sender><sender>b</sender>"),
    "bad certainty": (b"<certainty>Observed</certainty>", b"<certainty>Sure</certainty>"),
    "no event": (b"<event>Sighting</event>", b""),
    "no areaDesc": (b"<areaDesc>Colonia, Oxnard</areaDesc>", b""),
    "text in info": (b"<category>Security</category>", b"<category>Security</category>oops"),
    "attribute": (b"<headline>", b'<headline lang="en">'),
    "nested leaf": (b"<headline>", b"<headline><b>x</b>"),
    "bad language": (b"<language>en</language>", b"<language>en_US!</language>"),
    "harmless": (b"<source>Avisa</source>", b"<source>Avisa Ventura</source>"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_rules_in_code_agree_with_the_schema_on_mutations(mutation: str) -> None:
    old, new = MUTATIONS[mutation]
    data = _own_message()
    assert old in data
    changed = data.replace(old, new, 1)
    if mutation == "nested leaf":
        changed = changed.replace(b"</headline>", b"</b></headline>", 1).replace(
            b"</b></b>", b"</b>"
        )
    assert accepted(changed) == xsd_valid(changed), mutation


def test_rules_in_code_agree_with_the_schema_on_every_fixture() -> None:
    """Same verdict as cap12.xsd on every fixture, but the specification's own rule:
    an Update with an empty <references> is refused (the XSD cannot say so)."""
    names = sorted(path.name for path in FIXTURES.glob("*.cap"))
    assert len(names) >= 9
    for name in names:
        data = fixture(name)
        if name == "canada_errors.cap":
            assert xsd_valid(data) and not accepted(data)
        else:
            assert accepted(data) == xsd_valid(data), name


def test_bounds_and_odd_encodings() -> None:
    small = Limits(max_bytes=4096, max_elements=50)
    with pytest.raises(Refused, match="too_large"):
        read(fixture("canada.cap"), small)
    with pytest.raises(Refused, match="too_many_elements"):
        read(b"<a>" + b"<b/>" * 60 + b"</a>", small)
    with pytest.raises(Refused, match="encoding"):
        read(fixture("thunderstorm.cap").decode().encode("utf-16"))
    with pytest.raises(Refused, match="malformed"):
        read(b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>")
    with pytest.raises(Refused, match="not_cap"):
        read(b"<html><body>Bad gateway</body></html>")
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(
            f'<!ENTITY {c} "{("&" + p + ";") * 10}">'.encode()
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + b"]><l>&i;</l>"
    )
    with pytest.raises(Refused, match="dtd"):
        read(laughs)
    assert accepted(fixture("earthquake-iso8859-1.cap"))


# --- proof that no file is read and no host contacted ------------------------------

IN_ACCESS, IN_OPEN = 0x1, 0x20


@contextmanager
def watch_file(path: Path) -> Iterator[list[str]]:
    """Every open or read of ``path`` by anyone, C code included (inotify), and every
    Python-level open of it or socket connection (audit hook), while the block runs."""
    seen: list[str] = []
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK)
    assert fd >= 0
    assert libc.inotify_add_watch(fd, str(path).encode(), IN_OPEN | IN_ACCESS) >= 0
    _install_audit_hook()
    _ARMED.append((str(path), seen))
    try:
        yield seen
    finally:
        _ARMED.clear()
        try:
            if os.read(fd, 4096):
                seen.append("inotify: the file was opened or read")
        except BlockingIOError:
            pass
        os.close(fd)


_ARMED: list[tuple[str, list[str]]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _ARMED:
        return
    target, seen = _ARMED[0]
    if event == "open" and args and target in str(args[0]):
        seen.append(f"audit: open {args[0]}")
    elif event == "socket.connect":
        seen.append(f"audit: connect {args[1:]}")


_HOOKED: list[bool] = []


def _install_audit_hook() -> None:
    """Once per process, and only when a test watches (a hook cannot be removed)."""
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED.append(True)


def _xxe_document(template: bytes, marker_file: Path, port: int) -> bytes:
    text = template.decode()
    text = text.replace("file:///etc/passwd", marker_file.as_uri())
    text = text.replace(
        '<!ENTITY xxe SYSTEM "http://localhost:8080/payload3">',
        f'<!ENTITY xxe SYSTEM "{marker_file.as_uri()}">',
    )
    text = text.replace("googleusercontent.com", f"127.0.0.1:{port}")
    return text.replace("localhost:8080", f"127.0.0.1:{port}").encode()


async def _trap_server() -> tuple[web.AppRunner, int, list[str]]:
    hits: list[str] = []

    async def any_path(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text='<!ENTITY % send "x">')

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_path)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1]), hits


@pytest.mark.parametrize("name", ["xee.cap", "xee.atom"])
async def test_xxe_samples_read_no_file_and_contact_no_host(tmp_path: Path, name: str) -> None:
    marker = "MARKER-" + os.urandom(8).hex()
    secret = tmp_path / "secret.txt"
    secret.write_text(marker)
    runner, port, hits = await _trap_server()
    try:
        document = _xxe_document(fixture(name), secret, port)
        assert secret.as_uri().encode() in document
        with watch_file(secret) as seen:
            with pytest.raises(Refused, match="dtd"):
                parse_document(document, Limits())
            # Below the DOCTYPE refusal: the hardened lxml parser itself.
            events = list(parse._parser_events(document))
            text = "".join((element.text or "") + (element.tail or "") for _, element in events)
        assert marker not in text
        assert seen == [], seen
        assert hits == []
    finally:
        await runner.cleanup()
    # The watch works: a real read of the file is seen.
    with watch_file(secret) as seen:
        assert secret.read_text() == marker
    assert seen


def test_source_refs_fit_the_desk() -> None:
    assert parse.source_ref("KSTO@NWS.NOAA.GOV", "KSTO1") == "KSTO@NWS.NOAA.GOV,KSTO1"
    long = parse.source_ref("s" * 200, "i" * 200)
    odd = parse.source_ref("sender", "id\u200bwith-zero-width")
    for ref in (long, odd):
        assert len(ref) <= parse.MAX_SOURCE_REF and ref.isprintable()
    assert long == parse.source_ref("s" * 200, "i" * 200) != parse.source_ref("s" * 200, "i" * 199)
