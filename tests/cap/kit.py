"""Shared by the CAP tests: the OASIS schema, the vendored fixtures, a node with CAP on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
from lxml import etree

from relay.runtime.clock import FakeClock
from relay.storage import catalogues
from tests.conftest import RunningNode, start_node

#: The shipped words, Spanish first as a node's default: what ``render_alert`` is given.
CATALOGUES = catalogues.load(("es", "en"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"  # where they come from: its README
HOSTILE = ("xee.cap", "xee.atom", "invalid.cap", "canada_errors.cap")
DRAFT: dict[str, Any] = {
    "kind": "operation",
    "certainty": "confirmed",
    "area": {
        "label": "Colonia, Oxnard",
        "geohash": "9q4gch",
        "radius_m": 500,
        "codes": ["fips:06111", "zip:93030"],
    },
    "agencies": ["ice"],
    "text": {
        "es": {
            "headline": "Operativo de ICE en el parque Colonia",
            "body": "Verificado en el sitio por dos voluntarias.",
            "instruction": "No abra la puerta. Llame a la línea: 805-555-0100.",
        },
        "en": {
            "headline": "ICE operation at Colonia park",
            "body": "Verified on site by two volunteers.",
        },
    },
    "expires_in": "4h",
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@cache
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(FIXTURES / "cap12.xsd")))


def xsd_valid(data: bytes) -> bool:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        document = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return False
    return bool(schema().validate(document))


def assert_xsd_valid(data: bytes) -> None:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    document = etree.fromstring(data, parser)
    checker = schema()
    assert checker.validate(document), str(checker.error_log)


@asynccontextmanager
async def cap_node(
    tmp_path: Path, clock: FakeClock, network: str = "ventura", extra: str = ""
) -> AsyncIterator[RunningNode]:
    node, runner, url, token = await start_node(tmp_path, clock, network, extra)
    try:
        async with aiohttp.ClientSession() as http:
            yield RunningNode(node, url, token, http, node.data_dir)
    finally:
        await runner.cleanup()
        await node.stop()


async def publish(node: RunningNode, **changes: Any) -> dict[str, Any]:
    status, body = await node.call("POST", "/api/v1/alerts", json={**DRAFT, **changes})
    assert status == 201, body
    return body  # type: ignore[no-any-return]


async def get(node: RunningNode, path: str, **headers: str) -> tuple[int, bytes, Any]:
    async with node.http.get(node.url + path, headers=headers) as response:
        return response.status, await response.read(), response.headers
