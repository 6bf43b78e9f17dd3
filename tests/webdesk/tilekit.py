"""A small raster PMTiles archive around Oxnard, written with the ``pmtiles``
package's own writer, for the desk's map tests and screenshots.

The tiles are drawn here (PNG by hand: zlib and four chunks), a made-up street
grid in degrees so the streets line up across tiles and zooms: a wide road
every 0.05°, streets every 0.01° from zoom 10, side streets every 0.002° from
zoom 13. The same grid as vector tiles (MVT, encoded here by hand in the
Protomaps basemap's ``earth`` and ``roads`` layers) for ``protomaps-leaflet``.
Nothing is fetched; an archive is the same bytes on every run.
"""

from __future__ import annotations

import gzip
import itertools
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


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 31)


def _geometry(points: list[tuple[int, int]], closed: bool) -> bytes:
    """MVT geometry commands: MoveTo, LineTo, (ClosePath), deltas zigzagged."""
    ints = [1 | 1 << 3, _zigzag(points[0][0]), _zigzag(points[0][1])]
    ints.append(2 | (len(points) - 1) << 3)
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        ints += [_zigzag(x1 - x0), _zigzag(y1 - y0)]
    if closed:
        ints.append(7 | 1 << 3)
    return b"".join(_varint(i) for i in ints)


def _layer(name: str, features: list[tuple[int, list[tuple[int, int]], str]]) -> bytes:
    """One MVT layer; each feature (type, points, kind) tagged ``kind``."""
    kinds = sorted({kind for _, _, kind in features})
    body = _field(15, 2) + _field(1, name.encode()) + _field(3, b"kind")
    for kind in kinds:
        body += _field(4, _field(1, kind.encode()))
    for number, (kind_of, points, kind) in enumerate(features, start=1):
        tags = _varint(0) + _varint(kinds.index(kind))
        feature = _field(1, number) + _field(2, tags) + _field(3, kind_of)
        body += _field(2, feature + _field(4, _geometry(points, kind_of == 3)))
    return body + _field(5, 4096)


def mvt_tile(z: int, x: int, y: int) -> bytes:
    """A vector tile in the Protomaps basemap's layers: land, and the street grid as
    ``roads`` (``highway``, ``major_road``, ``minor_road``)."""
    n = 2**z
    west, east = x / n * 360 - 180, (x + 1) / n * 360 - 180
    top = (1 - y / n * 2) * math.pi
    bottom = (1 - (y + 1) / n * 2) * math.pi

    def to_y(lat: float) -> int:
        merc = math.asinh(math.tan(math.radians(lat)))
        return round((top - merc) / (top - bottom) * 4096)

    north, south = (math.degrees(math.atan(math.sinh(v))) for v in (top, bottom))
    roads: list[tuple[int, list[tuple[int, int]], str]] = []
    for step, kind, from_zoom in (
        (0.05, "highway", 0),
        (0.01, "major_road", 10),
        (0.002, "minor_road", 13),
    ):
        if z < from_zoom:
            continue
        for k in range(math.ceil(west / step), math.floor(east / step) + 1):
            gx = round((k * step - west) / (east - west) * 4096)
            roads.append((2, [(gx, -64), (gx, 4160)], kind))
        for k in range(math.ceil(south / step), math.floor(north / step) + 1):
            roads.append((2, [(-64, to_y(k * step)), (4160, to_y(k * step))], kind))
    earth = [(3, [(0, 0), (4096, 0), (4096, 4096), (0, 4096)], "earth")]
    return _field(3, _layer("earth", earth)) + _field(3, _layer("roads", roads))


def write_vector_archive(
    path: Path, center: tuple[float, float] = OXNARD, zooms: range = range(10, 15), reach: int = 2
) -> Path:
    """Vector tiles (MVT, gzipped, as the Protomaps builds hold them) around ``center``."""
    lat, lon = center
    with path.open("wb") as file:
        writer = Writer(file)
        tiles = {}
        for z in zooms:
            cx, cy = tile_xy(lat, lon, z)
            for x in range(cx - reach, cx + reach + 1):
                for y in range(cy - reach, cy + reach + 1):
                    tiles[zxy_to_tileid(z, x, y)] = gzip.compress(mvt_tile(z, x, y), mtime=0)
        for tile_id in sorted(tiles):
            writer.write_tile(tile_id, tiles[tile_id])
        writer.finalize(
            {
                "tile_type": TileType.MVT,
                "tile_compression": Compression.GZIP,
                "center_zoom": 12,
                "center_lon_e7": int(lon * 1e7),
                "center_lat_e7": int(lat * 1e7),
            },
            {"name": "oxnard-test-vector", "vector_layers": [{"id": "earth"}, {"id": "roads"}]},
        )
    return path


def write_unknown_archive(path: Path) -> Path:
    """A PMTiles archive whose header says its tiles are of an unknown type."""
    write_archive(path, zooms=range(10, 11), reach=0)
    data = bytearray(path.read_bytes())
    data[99] = TileType.UNKNOWN.value
    path.write_bytes(bytes(data))
    return path
