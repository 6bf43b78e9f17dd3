"""The desk's static files: the precompressed copies match, and are what a browser gets.

aiohttp serves ``FILE.gz`` in place of ``FILE`` to a client that accepts gzip,
so the vendored Leaflet and htmx cross the wire compressed with no build step.
A ``.gz`` that no longer matches its file would serve stale code: regenerate
it with ``gzip -9 -n -k -f FILE``.
"""

from __future__ import annotations

import gzip

from relay.http.webdesk import STATIC
from tests.conftest import RunningNode

COMPRESSED = (
    "desk.css",
    "desk.js",
    "vendor/htmx.min.js",
    "vendor/leaflet.js",
    "vendor/leaflet.css",
    "vendor/pmtiles.js",
    "vendor/protomaps-leaflet.js",
)


def test_every_gz_is_its_file_compressed() -> None:
    for name in COMPRESSED:
        source = STATIC / name
        packed = source.with_name(source.name + ".gz")
        assert packed.exists(), f"gzip -9 -n -k -f {source}"
        assert gzip.decompress(packed.read_bytes()) == source.read_bytes(), (
            f"{packed} is stale: gzip -9 -n -k -f {source}"
        )
    assert {p.relative_to(STATIC).as_posix()[:-3] for p in STATIC.rglob("*.gz")} == set(COMPRESSED)


async def test_the_node_serves_them_compressed_and_immutable(running: RunningNode) -> None:
    async with running.http.get(running.url + "/desk/login") as response:
        page = await response.text()
    start = page.index("/desk/static/desk.js?v=")
    url = page[start : page.index('"', start)]
    headers = {"Accept-Encoding": "gzip"}
    async with running.http.get(running.url + url, headers=headers, auto_decompress=False) as r:
        assert r.headers["Content-Encoding"] == "gzip"
        assert r.headers["Cache-Control"] == "max-age=31536000, immutable"
        assert gzip.decompress(await r.read()) == (STATIC / "desk.js").read_bytes()
    async with running.http.get(running.url + "/desk/static/desk.js") as r:
        assert r.headers["Cache-Control"] == "no-store"  # unversioned: never cached
