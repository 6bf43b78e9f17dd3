"""A small raster PMTiles archive around Oxnard, written with the ``pmtiles``
package's own writer, for the desk's map tests and screenshots.

The tiles are drawn here (PNG by hand: zlib and four chunks), a made-up street
grid in degrees so the streets line up across tiles and zooms: a wide road
every 0.05°, streets every 0.01° from zoom 10, side streets every 0.002° from
zoom 13. Nothing is fetched; the archive is the same bytes on every run.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

OXNARD = (34.1975, -119.1771)  # lat, lon
LAND = bytes((242, 239, 233))
STREET = bytes((255, 255, 255))
ROAD = bytes((247, 210, 120))
SIZE = 256


def tile_xy(lat: float, lon: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def _kind(degrees: float, per_pixel: float, z: int) -> bytes | None:
    for step, color, wide, from_zoom in (
        (0.05, ROAD, 3.0, 0),
        (0.01, STREET, 2.0, 10),
        (0.002, STREET, 1.0, 13),
    ):
        if z >= from_zoom and abs(degrees / step - round(degrees / step)) * step < wide * per_pixel:
            return color
    return None


def png_tile(z: int, x: int, y: int) -> bytes:
    n = SIZE * 2**z
    lons = [(x * SIZE + i + 0.5) / n * 360 - 180 for i in range(SIZE)]
    lats = [
        math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y * SIZE + j + 0.5) / n))))
        for j in range(SIZE)
    ]
    per_pixel = 360 / n
    columns = [_kind(lon, per_pixel, z) for lon in lons]
    plain = b"".join(c or LAND for c in columns)
    rows = []
    for lat in lats:
        across = _kind(lat, per_pixel, z)
        rows.append(b"\x00" + (across * SIZE if across else plain))
    return _png(b"".join(rows))


def _png(raw: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def write_archive(
    path: Path, center: tuple[float, float] = OXNARD, zooms: range = range(8, 15), reach: int = 2
) -> Path:
    """Tiles at ``zooms`` from ``reach`` tiles west/north to ``reach`` east/south of
    ``center`` (at least the tile holding it)."""
    tiles: dict[int, bytes] = {}
    for z in zooms:
        cx, cy = tile_xy(*center, z)
        for x in range(cx - reach, cx + reach + 1):
            for y in range(cy - reach, cy + reach + 1):
                tiles[zxy_to_tileid(z, x, y)] = png_tile(z, x, y)
    lat, lon = center
    with path.open("wb") as file:
        writer = Writer(file)
        for tile_id in sorted(tiles):
            writer.write_tile(tile_id, tiles[tile_id])
        writer.finalize(
            {
                "tile_type": TileType.PNG,
                "tile_compression": Compression.NONE,
                "min_lon_e7": int((lon - 0.3) * 1e7),
                "min_lat_e7": int((lat - 0.3) * 1e7),
                "max_lon_e7": int((lon + 0.3) * 1e7),
                "max_lat_e7": int((lat + 0.3) * 1e7),
                "center_zoom": 12,
                "center_lon_e7": int(lon * 1e7),
                "center_lat_e7": int(lat * 1e7),
            },
            {"attribution": "test streets", "name": "oxnard-test"},
        )
    return path


def write_vector_archive(path: Path) -> Path:
    """An archive that says it holds vector tiles (one tile, not a real one)."""
    with path.open("wb") as file:
        writer = Writer(file)
        writer.write_tile(zxy_to_tileid(0, 0, 0), b"\x1a\x00")
        writer.finalize(
            {"tile_type": TileType.MVT, "tile_compression": Compression.NONE}, {"name": "vector"}
        )
    return path
