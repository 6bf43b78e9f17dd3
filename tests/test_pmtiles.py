"""The pure rules behind the desk's tiles (relay.core.pmtiles): a PMTiles v3 header,
and the one byte range a request may ask for. No event loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.core.pmtiles import Malformed, NotAnArchive, Unsatisfiable, byte_range, read_header
from tests.webdesk.tilekit import OXNARD, write_archive, write_vector_archive


def test_a_written_archive_reads_back(tmp_path: Path) -> None:
    head = write_archive(tmp_path / "a.pmtiles", zooms=range(10, 12), reach=0).read_bytes()[:127]
    header = read_header(head)
    assert header.tile_type == "png" and header.raster
    assert (header.min_zoom, header.max_zoom) == (10, 11)
    lat, lon, zoom = header.center
    assert (round(lat, 4), round(lon, 4), zoom) == (*OXNARD, 12)
    west, south, east, north = header.bounds
    assert west < OXNARD[1] < east and south < OXNARD[0] < north
    vector = read_header(write_vector_archive(tmp_path / "v.pmtiles").read_bytes())
    assert vector.tile_type == "mvt" and not vector.raster and vector.drawable


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "does not start with 'PMTiles'"),
        (b"<html>" * 40, "does not start with 'PMTiles'"),
        (b"PMTiles\x02" + bytes(119), "version 2"),
        (b"PMTiles\x03" + bytes(50), "does not start"),  # cut short
    ],
)
def test_what_is_not_an_archive_says_so(data: bytes, says: str) -> None:
    with pytest.raises(NotAnArchive, match=says):
        read_header(data)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 10)),
        ("bytes=0-0", (0, 1)),
        ("bytes=90-", (90, 100)),
        ("bytes=90-1000", (90, 100)),
        ("bytes=-5", (95, 100)),
        ("bytes=-500", (0, 100)),
        (" Bytes = 3-4 ", (3, 4 + 1)),
    ],
)
def test_one_range(header: str, expected: tuple[int, int]) -> None:
    assert byte_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=200-300", "bytes=-0"])
def test_outside_the_file_is_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        byte_range(header, 100)


def test_a_long_range_is_unsatisfiable() -> None:
    assert byte_range("bytes=0-9", 100, limit=10) == (0, 10)
    with pytest.raises(Unsatisfiable, match="at most 10 bytes"):
        byte_range("bytes=0-10", 100, limit=10)
    with pytest.raises(Unsatisfiable):
        byte_range("bytes=-11", 100, limit=10)


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-1,3-4",
        "items=0-1",
        "bytes=",
        "bytes=-",
        "bytes=a-b",
        "bytes=5-2",
        "bytes=1-2-3",
        "bytes=+1-2",
        "bytes=0x1-2",
        "bytes=١-٢",
        "bytes=" + "9" * 16 + "-",
    ],
)
def test_anything_else_is_malformed(header: str) -> None:
    with pytest.raises(Malformed):
        byte_range(header, 100)
