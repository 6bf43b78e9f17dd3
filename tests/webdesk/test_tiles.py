"""The desk's streets (issue 26 item 5): the node serves its own PMTiles archive at
``/desk/tiles/NAME`` in byte ranges, to signed-in desk users only; a missing,
foreign or vector file leaves the node running, and says so in ``avisa run``'s
first lines and on the alerts page, in both languages."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from relay.cli import datadir
from relay.core.pmtiles import MAX_RANGE
from relay.http.app import serve
from relay.runtime.clock import FakeClock
from relay.runtime.node import Node
from tests.conftest import RunningNode
from tests.test_federation_process import Proc, free_port, setup_node
from tests.webdesk.deskclient import DeskClient
from tests.webdesk.tilekit import write_archive, write_unknown_archive, write_vector_archive

ARCHIVE = "maps/oxnard.pmtiles"
URL = "/desk/tiles/oxnard.pmtiles"


@dataclass
class Started:
    node: Node
    runner: web.AppRunner
    url: str
    token: str
    data_dir: Path

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.node.stop()


async def node_with(tmp_path: Path, clock: FakeClock, tiles: str, fill: str) -> Started:
    """A node whose data directory holds ``tiles``, made by ``fill`` (or nothing)."""
    data = datadir.initialize(tmp_path / "ventura", "ventura", "127.0.0.1:0", clock=clock)
    path = data.data_dir / tiles
    path.parent.mkdir(exist_ok=True)
    if fill == "archive":
        write_archive(path)
    elif fill == "vector":
        write_vector_archive(path)
    elif fill == "unknown":
        write_unknown_archive(path)
    elif fill == "text":
        path.write_text("<html>not a map</html>\n" * 20)
    config = data.data_dir / "avisa.toml"
    config.write_text(config.read_text() + f'\n[desk_web]\ntiles = "{tiles}"\n')
    node = Node.load(data.data_dir, clock)
    await node.start()
    runner, port = await serve(node, "127.0.0.1", 0)
    return Started(node, runner, f"http://127.0.0.1:{port}", data.token, data.data_dir)


@pytest.fixture
async def mapped(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Started, DeskClient]]:
    node = await node_with(tmp_path, clock, ARCHIVE, "archive")
    desk = DeskClient.open(node.url)
    assert (await desk.login(node.token)).status == 303
    yield node, desk
    await desk.close()
    await node.stop()


async def get(
    desk: DeskClient, path: str, **headers: str
) -> tuple[int, bytes, CIMultiDictProxy[str]]:
    async with desk.http.get(desk.base + path, headers=headers, allow_redirects=False) as r:
        return r.status, await r.read(), r.headers


async def test_ranges_are_served_as_http_says(mapped: tuple[Started, DeskClient]) -> None:
    node, desk = mapped
    whole = (node.data_dir / ARCHIVE).read_bytes()
    size = len(whole)

    status, body, headers = await get(desk, URL, Range="bytes=0-16383")
    assert status == 206 and body == whole[:16384]
    assert headers["Content-Range"] == f"bytes 0-16383/{size}"
    assert headers["Accept-Ranges"] == "bytes" and headers["ETag"].startswith('"')
    etag = headers["ETag"]

    status, body, headers = await get(desk, URL, Range=f"bytes={size - 10}-{size + 500}")
    assert status == 206 and body == whole[-10:]  # an end past the file is cut to it
    assert headers["Content-Range"] == f"bytes {size - 10}-{size - 1}/{size}"
    async with desk.http.head(desk.base + URL, headers={"Range": "bytes=0-99"}) as r:
        assert r.status == 206 and r.headers["Content-Length"] == "100"
        assert await r.read() == b""
    status, body, _ = await get(desk, URL, Range="bytes=-127")
    assert status == 206 and body == whole[-127:]
    status, body, _ = await get(desk, URL, Range="bytes=100-")
    assert status == 206 and body == whole[100:]

    for outside in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=-0"):
        status, body, headers = await get(desk, URL, Range=outside)
        assert status == 416, outside
        assert headers["Content-Range"] == f"bytes */{size}"
        assert body.startswith(b"AVISA_BAD_RANGE")

    # Not one bytes= range (several, another unit, nonsense): ignored, the whole file.
    for odd in ("bytes=0-1,5-9", "lines=1-2", "bytes=x-y", "bytes=9-2", "bytes=" + "9" * 40 + "-"):
        status, body, _ = await get(desk, URL, Range=odd)
        assert (status, body) == (200, whole), odd

    status, body, _ = await get(desk, URL, Range="bytes=0-9", **{"If-Range": etag})
    assert (status, body) == (206, whole[:10])
    status, body, _ = await get(desk, URL, Range="bytes=0-9", **{"If-Range": '"older"'})
    assert (status, body) == (200, whole)  # the file changed since: all of it

    assert (await get(desk, URL, Range="bytes=0-9", **{"If-Range": etag}))[0] == 206
    os.utime(node.data_dir / ARCHIVE, ns=(1, 1))  # the operator replaced the file
    status, _, headers = await get(desk, URL, Range="bytes=0-9")
    assert status == 206 and headers["ETag"] != etag


async def test_only_the_archive_and_only_for_the_desk(
    mapped: tuple[Started, DeskClient],
) -> None:
    node, desk = mapped
    for other in (
        "/desk/tiles/avisa.toml",
        "/desk/tiles/..%2Favisa.toml",
        "/desk/tiles/%2E%2E%2Favisa.db",
        "/desk/tiles/maps%2Foxnard.pmtiles",
        "/desk/tiles/OXNARD.pmtiles",
        "/desk/tiles/",
    ):
        status, body, _ = await get(desk, other, Range="bytes=0-9")
        assert status == 404, other
        assert b"PMTiles" not in body and b"[node]" not in body
    async with aiohttp.ClientSession() as stranger:
        headers = {"Range": "bytes=0-9"}
        async with stranger.get(node.url + URL, headers=headers, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/desk/login"
            assert b"PMTiles" not in await r.read()


async def test_long_reads_are_bounded(mapped: tuple[Started, DeskClient]) -> None:
    node, desk = mapped
    path = node.data_dir / ARCHIVE
    with path.open("ab") as file:
        file.write(b"\0" * (MAX_RANGE + 1))
    size = path.stat().st_size
    status, _, headers = await get(desk, URL)
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    status, _, _ = await get(desk, URL, Range=f"bytes=0-{MAX_RANGE}")
    assert status == 416
    status, body, _ = await get(desk, URL, Range=f"bytes=1-{MAX_RANGE}")
    assert status == 206 and len(body) == MAX_RANGE


async def test_the_alerts_map_is_given_the_archive(mapped: tuple[Started, DeskClient]) -> None:
    node, desk = mapped
    status, page, headers = await desk.page("/desk/alerts?lang=en")
    assert status == 200
    assert f'data-pmtiles="{URL}" data-vector=""' in page and 'data-maxzoom="14"' in page
    assert "vendor/pmtiles.js?v=" in page and "map-note" not in page
    assert "protomaps-leaflet.js" not in page
    csp = headers["Content-Security-Policy"]
    assert "img-src 'self' blob:;" in csp and "connect-src 'self';" in csp


@pytest.mark.parametrize(
    ("fill", "english", "spanish"),
    [
        ("missing", "is not in the data directory", "no está en el directorio de datos"),
        ("text", "not a PMTiles v3 archive", "no es un archivo PMTiles v3"),
        ("unknown", "a kind of tiles the desk cannot draw", "no sabe dibujar"),
    ],
)
async def test_an_unusable_file_leaves_a_running_node_that_says_why(
    tmp_path: Path, clock: FakeClock, fill: str, english: str, spanish: str
) -> None:
    node = await node_with(tmp_path, clock, ARCHIVE, fill)
    desk = DeskClient.open(node.url)
    try:
        assert (await desk.login(node.token)).status == 303
        _, page, _ = await desk.page("/desk/alerts?lang=en")
        assert english in page and 'data-pmtiles=""' in page and "pmtiles.js" not in page
        _, page, _ = await desk.page("/desk/alerts?lang=es")
        assert spanish in page and "Sin mapa de calles" in page
        status, _, _ = await get(desk, URL, Range="bytes=0-9")
        assert status == 404
    finally:
        await desk.close()
        await node.stop()


async def test_without_a_file_the_blank_map_says_so_in_both_languages(
    running: RunningNode,
) -> None:
    desk = DeskClient.open(running.url)
    try:
        assert (await desk.login(running.token)).status == 303
        _, page, _ = await desk.page("/desk/alerts?lang=es")
        assert "aún no tiene mapa de calles" in page and "No tiles" not in page
        _, page, headers = await desk.page("/desk/alerts?lang=en")
        assert "No street map on this node yet" in page
        assert "img-src 'self';" in headers["Content-Security-Policy"]  # no blob: images
    finally:
        await desk.close()


async def test_avisa_run_says_first_that_the_file_is_missing(
    tmp_path: Path, procs: list[Proc]
) -> None:
    port = free_port()
    data = setup_node(tmp_path, "ventura", port)
    config = data / "avisa.toml"
    config.write_text(config.read_text() + f'\n[desk_web]\ntiles = "{ARCHIVE}"\n')
    proc = Proc(data, port, dict(os.environ))
    procs.append(proc)
    await proc.start()
    lines = proc.log.read_text().splitlines()
    warned = [i for i, line in enumerate(lines) if "desk map without streets" in line]
    assert warned and ARCHIVE in lines[warned[0]] and "no such file" in lines[warned[0]]
    started = [i for i, line in enumerate(lines) if "node started" in line]
    assert not started or warned[0] < started[0]


async def test_vector_tiles_are_drawn_by_protomaps_leaflet(
    tmp_path: Path, clock: FakeClock
) -> None:
    node = await node_with(tmp_path, clock, ARCHIVE, "vector")
    desk = DeskClient.open(node.url)
    try:
        assert (await desk.login(node.token)).status == 303
        _, page, _ = await desk.page("/desk/alerts?lang=en")
        assert f'data-pmtiles="{URL}" data-vector="yes"' in page and "map-note" not in page
        assert "vendor/protomaps-leaflet.js?v=" in page and "vendor/pmtiles.js" not in page
        _, _, headers = await desk.page("/desk/alerts")
        assert "img-src 'self';" in headers["Content-Security-Policy"]  # canvases, no blob:
        status, body, _ = await get(desk, URL, Range="bytes=0-126")
        assert status == 206 and body.startswith(b"PMTiles\x03")
    finally:
        await desk.close()
        await node.stop()
