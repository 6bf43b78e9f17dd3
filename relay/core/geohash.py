"""Geohash ↔ latitude/longitude (pure), for formats that speak coordinates (CAP).

Alerts locate themselves with a geohash (DESIGN §2: no floats in a payload).
Formats outside Avisa want a point: CAP's ``<circle>`` is "lat,lon radius_km".
``decode`` gives the centre of a geohash cell and its half-size in degrees;
``encode`` goes back at a chosen precision. Coordinates are rounded to 6
decimals (~0.1 m) when written as text, so a round trip through text gives
back the same cell.
"""

from __future__ import annotations

_BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"
_INDEX = {char: index for index, char in enumerate(_BASE32)}


def decode(geohash: str) -> tuple[float, float, float, float]:
    """The cell's centre and half-sizes: ``(lat, lon, lat_error, lon_error)``."""
    lat_low, lat_high, lon_low, lon_high = -90.0, 90.0, -180.0, 180.0
    even = True
    for char in geohash:
        bits = _INDEX.get(char)
        if bits is None:
            raise ValueError(f"not a geohash character: {char!r}")
        for shift in range(4, -1, -1):
            bit = (bits >> shift) & 1
            if even:
                middle = (lon_low + lon_high) / 2
                lon_low, lon_high = (middle, lon_high) if bit else (lon_low, middle)
            else:
                middle = (lat_low + lat_high) / 2
                lat_low, lat_high = (middle, lat_high) if bit else (lat_low, middle)
            even = not even
    return (
        (lat_low + lat_high) / 2,
        (lon_low + lon_high) / 2,
        (lat_high - lat_low) / 2,
        (lon_high - lon_low) / 2,
    )


def encode(lat: float, lon: float, precision: int) -> str:
    """The geohash of ``precision`` characters whose cell holds the point."""
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError("latitude or longitude out of range")
    if not 1 <= precision <= 12:
        raise ValueError("precision is 1 to 12 characters")
    lat_low, lat_high, lon_low, lon_high = -90.0, 90.0, -180.0, 180.0
    chars: list[str] = []
    bits, count, even = 0, 0, True
    while len(chars) < precision:
        if even:
            middle = (lon_low + lon_high) / 2
            bit = lon >= middle
            lon_low, lon_high = (middle, lon_high) if bit else (lon_low, middle)
        else:
            middle = (lat_low + lat_high) / 2
            bit = lat >= middle
            lat_low, lat_high = (middle, lat_high) if bit else (lat_low, middle)
        even = not even
        bits = (bits << 1) | int(bit)
        count += 1
        if count == 5:
            chars.append(_BASE32[bits])
            bits, count = 0, 0
    return "".join(chars)
