"""The node's gazetteer: the bundled ZIP and county data, read once (DESIGN §14).

``relay.core.gazetteer`` holds the rules and is handed its data; this module
reads it from two packages that bundle it (no network, ever):

- ``zipcodes`` (MIT): every US ZIP code with its centroid, state and county
  name (USPS ZIP Locale Detail, GeoNames CC BY 4.0 coordinates), refreshed
  monthly upstream;
- ``addfips`` (GPL-3.0): county and state names → FIPS codes (Census 2020).

Reading costs about 1.2 s of CPU and leaves the process ~60 MB larger (the
package's decompressed data ~40 MB, our tuples and grid ~16 MB), so it
happens once per process, lazily, on the first lookup, in a worker thread
when a node asks (``get``) so the event loop never waits on it.
``check_home`` checks ``[node] home_codes`` at start from the names alone. ``load_stats()`` says
what was read and how long it took (``avisa run`` logs it).
"""

from __future__ import annotations

import asyncio
import csv
import threading
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import structlog

from relay.core.config import Config
from relay.core.errors import ConfigError
from relay.core.gazetteer import Gazetteer, ZipRecord

_log = structlog.get_logger("avisa.places")


@dataclass(frozen=True)
class LoadStats:
    zips: int
    without_county: int
    seconds: float
    cpu_seconds: float


class _Cache:
    """The one gazetteer of this process, and what reading it cost."""

    lock = threading.Lock()
    gazetteer: Gazetteer | None = None
    stats: LoadStats | None = None


def _county_finder() -> Any:
    import addfips

    finder = addfips.AddFIPS()
    cache: dict[tuple[str, str], str] = {}

    def fips(name: str, state: str) -> str:
        key = (name, state)
        if key not in cache:
            found = None
            # zipcodes writes "St Louis County", "De Witt County"; Census "St. Louis", "DeWitt".
            for spelling in (name, name.replace("St ", "St. "), name.replace(" ", "", 1)):
                found = found or finder.get_county_fips(spelling, state=state)
            cache[key] = found or ""
        return cache[key]

    return fips


def _names() -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    data = resources.files("addfips") / "data"
    with (data / "counties_2020.csv").open(encoding="utf-8") as handle:
        counties = {row["statefp"] + row["countyfp"]: row["name"] for row in csv.DictReader(handle)}
    with (data / "states.csv").open(encoding="utf-8") as handle:
        states = {row["fips"]: (row["postal"], row["name"]) for row in csv.DictReader(handle)}
    return counties, states


def _records(postal_codes: list[str]) -> tuple[list[ZipRecord], int]:
    """Every active, non-military ZIP of these states and territories, read one state
    at a time: the package makes a dict per ZIP, and 42,000 at once cost ~100 MB that
    the process would keep (measured: 74 MB resident after reading, not 178)."""
    from zipcodes import _zipcodes

    fips = _county_finder()
    records: list[ZipRecord] = []
    missing = 0
    for postal in postal_codes:
        for row in _zipcodes.filter_by(None, state=postal):
            if not row.get("active") or row.get("zip_code_type") == "MILITARY":
                continue
            try:
                lat, lon = float(row["lat"]), float(row["long"])
            except (KeyError, TypeError, ValueError):
                continue
            county = fips(row["county"], postal) if row.get("county") else ""
            missing += not county
            standard = row.get("zip_code_type") == "STANDARD"
            records.append(
                ZipRecord(row["zip_code"], lat, lon, county, postal, row["city"], standard)
            )
    return records, missing


def load_stats() -> LoadStats | None:
    """What reading the data cost, once it was read."""
    return _Cache.stats


def load() -> Gazetteer:
    """The gazetteer, read on the first call (thread-safe; later calls are free)."""
    with _Cache.lock:
        if _Cache.gazetteer is None:
            started, cpu = time.perf_counter(), time.process_time()
            counties, states = _names()
            records, missing = _records(sorted({postal for postal, _ in states.values()}))
            _Cache.gazetteer = Gazetteer(records, counties, states)
            _Cache.stats = stats = LoadStats(
                zips=len(records),
                without_county=missing,
                seconds=round(time.perf_counter() - started, 3),
                cpu_seconds=round(time.process_time() - cpu, 3),
            )
            _log.info(
                "gazetteer loaded",
                zips=stats.zips,
                without_county=missing,
                seconds=stats.seconds,
                cpu_seconds=stats.cpu_seconds,
            )
        return _Cache.gazetteer


async def get() -> Gazetteer:
    """``load`` from the event loop: the first read runs in a worker thread."""
    if _Cache.gazetteer is not None:
        return _Cache.gazetteer
    return await asyncio.to_thread(load)


def check_home(config: Config) -> None:
    """``[node] home_codes`` names places the gazetteer knows, checked at start from the
    county and state names alone (milliseconds: the ZIP data is read only for a ``zip:``
    code, and the full gazetteer later, on first use)."""
    if not config.node.home_codes:
        return
    counties, states = _names()
    names_only = Gazetteer([], counties, states)
    for code in config.node.home_codes:
        if code.startswith("zip:"):
            from zipcodes import _zipcodes

            known = _zipcodes.is_real(code[4:])
        else:
            known = names_only.knows(code)
        if not known:
            raise ConfigError(
                "node.home_codes", f"{code} is not an area code this node knows; e.g. fips:06111"
            )
