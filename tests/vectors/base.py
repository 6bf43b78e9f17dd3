"""What every vector file shares: the seeds, the fixed time and the one alert.

The seeds are the secret keys of RFC 8032 §7.1 TEST 1, 2 and 3; ``the_alert`` is
the canonical payload every other vector is made from (docs/protocol.md §4).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from keys.core.signing import NodeKey
from relay.core.drafts import ulid
from relay.core.model import Alert, Area, Text

SEEDS = {
    "ventura": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "la-rrn": "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    "oc.resilience": "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
}
T = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
URL = "https://avisa.ventura.example.org"


# docs/protocol.md §5: the url of a key document, a card and node.url.
URLS_VALID = [
    URL,
    "http://127.0.0.1:8470",
    "http://[::1]:8470/avisa/",
    "https://Avisa.Example.org:443/a/b%20c",
    "https://xn--ejemplo-9za.org",
    "http://h:65535",
    "http://h:0",
    "https://" + "x" * 63 + "/" + "y" * 228,
]
URLS_INVALID = [
    "https://x/?q=1",
    "https://x/#top",
    "https://user@x",
    "HTTPS://x",
    "ftp://x",
    "https://",
    "http://h:65536",
    "http://h:080",
    "http://h:",
    "http://-x",
    "http://x-",
    "http://x.",
    "http://x..y",
    "http://" + "x" * 64,
    "http://[::1",
    "http://[1.2.3.4]",
    "http://[fe80::1%25eth0]",
    "http://éjemplo.org",
    "http://a b",
    "http://x/a b",
    "https://" + "x" * 63 + "/" + "y" * 229,
]


def node_key(network: str) -> NodeKey:
    return NodeKey.from_seed(bytes.fromhex(SEEDS[network]))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def the_alert() -> Alert:
    return Alert(
        id="ventura/" + ulid(T, bytes(range(10))),
        network="ventura",
        seq=42,
        msg_type="alert",
        references=[],
        kind="checkpoint",
        certainty="confirmed",
        observed_at=T - timedelta(minutes=25, microseconds=-123456),
        sent_at=T,
        expires_at=T + timedelta(hours=4),
        area=Area(
            label="Avenida Saviers y Bard, Oxnard",
            geohash="9q4gcv",
            radius_m=800,
            codes=["fips:06111", "zip:93033"],
        ),
        agencies=["cbp", "police"],
        text={
            "es": Text(
                headline="Retén de CBP en Saviers y Bard",
                body="Verificado en el lugar por dos voluntarias a las 3:35 a. m.",
                instruction="No abra la puerta. Tiene derecho a guardar silencio.",
            ),
            "en": Text(
                headline="CBP checkpoint at Saviers & Bard",
                body='Verified on site by two volunteers at 3:35 a.m. "Stay safe" \\ <b>',
            ),
        },
    )
