"""PMTiles v3 archives and byte ranges: the pure rules behind the desk's map tiles.

The node serves a PMTiles archive (``[desk_web] tiles``) as one file read in
byte ranges; the browser's vendored ``pmtiles`` reader finds each tile in the
archive's directories itself, so the node never decodes a tile. What the node
must know is only whether the file is an archive the desk can draw
(``read_header``: the 127-byte v3 header, its tile type and bounds) and which
bytes a request asks for (``byte_range``: one ``bytes=`` range, bounded).

The desk draws raster tiles (PNG, JPEG, WebP, AVIF) with the ``pmtiles``
reader's Leaflet layer, and Mapbox Vector Tiles (the Protomaps basemap's
layers, as its daily builds hold them) with ``protomaps-leaflet``; an archive
of another tile type (MLT, unknown) is recognised and reported, not drawn.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER_BYTES = 127
MAGIC = b"PMTiles"
RASTER = {2: "png", 3: "jpeg", 4: "webp", 5: "avif"}
VECTOR = {1: "mvt", 6: "mlt"}
# One response at most: a tile, or a leaf directory, is far smaller.
MAX_RANGE = 8 * 1024 * 1024

_LAYOUT = struct.Struct("<7sB11QBBBBBBiiiiBii")


@dataclass(frozen=True)
class Header:
    """What the desk needs from an archive's header."""

    tile_type: str  # png, jpeg, webp, avif; mvt or mlt (vector); "unknown"
    min_zoom: int
    max_zoom: int
    bounds: tuple[float, float, float, float]  # west, south, east, north
    center: tuple[float, float, int]  # lat, lon, zoom

    @property
    def raster(self) -> bool:
        return self.tile_type in RASTER.values()

    @property
    def drawable(self) -> bool:
        """Raster tiles, or Mapbox Vector Tiles."""
        return self.raster or self.tile_type == "mvt"


class NotAnArchive(ValueError):
    """The bytes are not a PMTiles v3 header; the message says what they are instead."""


def read_header(data: bytes) -> Header:
    """The header of a PMTiles v3 archive, from its first 127 bytes or more."""
    if len(data) < HEADER_BYTES or not data.startswith(MAGIC):
        raise NotAnArchive("not a PMTiles archive (it does not start with 'PMTiles')")
    fields = _LAYOUT.unpack(data[:HEADER_BYTES])
    version = fields[1]
    if version != 3:
        raise NotAnArchive(f"PMTiles version {version}: the desk reads version 3")
    tile_type = fields[16]
    min_zoom, max_zoom = fields[17], fields[18]
    west, south, east, north = (v / 1e7 for v in fields[19:23])
    center_zoom, center_lon, center_lat = fields[23], fields[24] / 1e7, fields[25] / 1e7
    return Header(
        tile_type=RASTER.get(tile_type) or VECTOR.get(tile_type) or "unknown",
        min_zoom=min_zoom,
        max_zoom=max_zoom,
        bounds=(west, south, east, north),
        center=(center_lat, center_lon, center_zoom),
    )


class Unsatisfiable(ValueError):
    """A range outside the file, or longer than ``MAX_RANGE``: HTTP 416."""


class Malformed(ValueError):
    """A Range header that is not one ``bytes=`` range: ignored, as HTTP says."""


def byte_range(header: str, size: int, limit: int = MAX_RANGE) -> tuple[int, int]:
    """``(start, end)``, end exclusive, of the one range ``header`` asks for in a file
    of ``size`` bytes: ``bytes=A-B``, ``bytes=A-`` or ``bytes=-N`` (the last N)."""
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec or "-" not in spec:
        raise Malformed("one bytes= range")
    first, _, last = (part.strip() for part in spec.partition("-"))
    if not _digits(first) and not _digits(last):
        raise Malformed("one bytes= range")
    if not first:
        if not _digits(last):
            raise Malformed("one bytes= range")
        start, end = max(0, size - int(last)), size
        if int(last) == 0:
            raise Unsatisfiable("an empty suffix")
    else:
        if not _digits(first) or (last and not _digits(last)):
            raise Malformed("one bytes= range")
        start = int(first)
        end = min(size, int(last) + 1) if last else size
        if last and int(last) < start:
            raise Malformed("a range that ends before it starts")
    if start >= size or end <= start:
        raise Unsatisfiable(f"the file has {size} bytes")
    if end - start > limit:
        raise Unsatisfiable(f"at most {limit} bytes at a time")
    return start, end


def _digits(text: str) -> bool:
    return 0 < len(text) <= 15 and text.isascii() and text.isdigit()
