"""Streets on the desk's maps, from the node itself (DESIGN §14): the
``[desk_web] tiles`` PMTiles archive served at ``/desk/tiles/NAME`` (route ``tiles``) with HTTP
Range requests, read in the browser by the vendored ``pmtiles`` reader (raster
tiles) or ``protomaps-leaflet`` (vector tiles, drawn in the page with the
Protomaps basemap's light style; its labels use the browser's own fonts).

The archive is one file in the data directory. The URL names only its file
name (``NAME``, the configured path's last part): any other name is a 404, so
no request chooses a path. A request asks for one ``bytes=`` range and gets a
206 with ``Content-Range``; a range outside the file, or longer than
``relay.core.pmtiles.MAX_RANGE``, a 416 naming the file's size; a request
without a Range gets the whole file only if it is no longer than that. The
``ETag`` (size and modification time) changes when the operator replaces the
file, and the reader then starts over; ``If-Range`` with an older tag gets the
whole answer anew, as HTTP says.

Signed-in desk users only: the public report page shows no map, and an
archive open to anyone would be a free map server for the whole internet.

At start-up ``probe`` reads the archive's header once: a missing file, a file
that is not PMTiles v3, or an archive of tiles the desk cannot draw (MLT, an
unknown type) does not stop the node; ``avisa run`` logs why on its first lines, and
the alerts page says so in the reader's language (``note``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog
from aiohttp import web

from relay.core.config import DeskWebSection
from relay.core.language import N_, Words
from relay.core.pmtiles import (
    HEADER_BYTES,
    MAX_RANGE,
    Header,
    Malformed,
    NotAnArchive,
    Unsatisfiable,
    byte_range,
    read_header,
)
from relay.http.webdesk.pages import EVERYONE, need, url_of

routes = web.RouteTableDef()
_log = structlog.get_logger("avisa.desk")
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Tiles:
    """The configured archive as the node found it at start-up."""

    state: str  # none, ok, missing, invalid, unsupported
    path: Path | None = None
    header: Header | None = None
    reason: str = ""

    @property
    def raster(self) -> bool:
        """Served, and drawn as images the page makes (``blob:``)."""
        return self.state == "ok" and self.header is not None and self.header.raster


TILES: web.AppKey[Tiles] = web.AppKey("tiles", Tiles)


def probe(data_dir: Path, section: DeskWebSection) -> Tiles:
    """Look at ``[desk_web] tiles`` once; log what is wrong with it (never raise)."""
    if not section.tiles:
        return Tiles("none")
    path = data_dir / section.tiles
    try:
        with path.open("rb") as file:
            header = read_header(file.read(HEADER_BYTES))
    except FileNotFoundError:
        found = Tiles("missing", path, reason="no such file")
    except (OSError, NotAnArchive) as exc:
        reason = str(exc) if isinstance(exc, NotAnArchive) else "cannot be read"
        found = Tiles("invalid", path, reason=reason)
    else:
        kind = "ok" if header.drawable else "unsupported"
        reason = (
            ""
            if kind == "ok"
            else f"{header.tile_type} tiles: the desk draws PNG, JPEG, WebP, AVIF or MVT tiles"
        )
        found = Tiles(kind, path, header, reason)
    if found.state != "ok":
        _log.warning(
            "desk map without streets: [desk_web] tiles is not usable",
            tiles=section.tiles,
            problem=found.reason,
        )
    return found


#: What the alerts page says about a map without streets, by the archive's state.
NOTES: Final = {
    "none": N_("tiles.none"),
    "missing": N_("tiles.missing"),
    "invalid": N_("tiles.invalid"),
    "unsupported": N_("tiles.unsupported"),
}


def note(tiles: Tiles, words: Words) -> str:
    """What the alerts page says about its map ("" when streets are drawn)."""
    if tiles.state not in NOTES:
        return ""
    return words.gettext(NOTES[tiles.state])


def _etag(size: int, mtime_ns: int) -> str:
    return f'"{size:x}-{mtime_ns:x}"'


def _read(path: Path, start: int, length: int) -> bytes:
    with path.open("rb") as file:
        file.seek(start)
        return file.read(length)


@routes.get("/tiles/{name}", name="tiles")
async def archive(request: web.Request) -> web.StreamResponse:
    need(request, EVERYONE)
    tiles = request.app[TILES]
    if tiles.path is None or tiles.state != "ok" or request.match_info["name"] != tiles.path.name:
        raise web.HTTPNotFound()
    try:
        stat = tiles.path.stat()
    except OSError:
        raise web.HTTPNotFound() from None
    size, etag = stat.st_size, _etag(stat.st_size, stat.st_mtime_ns)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=300",
        "Content-Type": "application/vnd.pmtiles",
    }
    asked = request.headers.get("Range", "")
    if asked and request.headers.get("If-Range", etag) != etag:
        asked = ""  # the file changed since the reader's last look: all of it, anew
    try:
        start, end = byte_range(asked, size) if asked else (0, size)
    except Unsatisfiable as exc:
        return _unsatisfiable(size, str(exc))
    except Malformed:
        start, end, asked = 0, size, ""
    if not asked and size > MAX_RANGE:
        return _unsatisfiable(size, "read the archive in ranges (Range: bytes=A-B)")
    if asked:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return await _send(request, tiles.path, start, end, headers, 206 if asked else 200)


async def _send(
    request: web.Request, path: Path, start: int, end: int, headers: dict[str, str], status: int
) -> web.StreamResponse:
    """The bytes ``start``..``end`` in ``CHUNK`` pieces: one request holds one piece in
    memory, however long its range. A file cut short meanwhile ends the response."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = end - start
    await response.prepare(request)
    at = end if request.method == "HEAD" else start
    while at < end:
        piece = await asyncio.to_thread(_read, path, at, min(CHUNK, end - at))
        if not piece:
            break
        await response.write(piece)
        at += len(piece)
    await response.write_eof()
    return response


def _unsatisfiable(size: int, why: str) -> web.Response:
    return web.Response(
        status=416,
        text=f"AVISA_BAD_RANGE: {why}",
        headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
    )


def map_view(request: web.Request, section: DeskWebSection, words: Words) -> dict[str, str]:
    """What a page's map is given: the archive's URL, its deepest zoom, where to
    look first (lat,lon,zoom), and the note when there are no streets."""
    tiles = request.app[TILES]
    header = tiles.header
    url = ""
    if tiles.state == "ok" and tiles.path is not None:
        url = str(url_of(request, "tiles", name=tiles.path.name))
    center = ",".join(str(v) for v in header.center) if header and url else ""
    return {
        "pmtiles": url,
        "vector": "yes" if header and url and not header.raster else "",
        "max_zoom": str(header.max_zoom) if header and url else "",
        "center": center,
        "note": "" if section.tile_url else note(tiles, words),
    }
