"""Every message the renderer can emit validates against cap12.xsd: alerts with any text
the payload's bounds allow (any script, symbols, markup-like text), any kind, certainty,
message type, area codes and languages."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from bridges.cap.render import FeedInfo, render_alert, render_entry, render_feed
from relay.core.model import CERTAINTIES, KINDS, Alert, Area, Text
from tests.cap.kit import CATALOGUES, assert_xsd_valid
from tests.helpers import T0, key, new_id, raw_envelope

# Text as the payload allows it: no C0/C1 controls (a body keeps tab and newline).
LINE = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x7f"),
    min_size=1,
    max_size=140,
).filter(lambda text: text.strip() != "")
BODY = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x7f").filter(
        lambda c: c in "\t\n" or not (ord(c) < 32 or 0x80 <= ord(c) < 0xA0)
    ),
    max_size=300,
)
LANGS = st.lists(
    st.sampled_from(["es", "en", "zh", "vi", "es-MX", "tl"]), min_size=1, max_size=4, unique=True
)
CODES = st.lists(
    st.sampled_from(["fips:06", "fips:06111", "zip:93030", "iso:us-ca", "iso:mx"]),
    max_size=5,
    unique=True,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headline=LINE,
    body=BODY,
    label=LINE,
    langs=LANGS,
    codes=CODES,
    kind=st.sampled_from(KINDS),
    certainty=st.sampled_from(CERTAINTIES),
    msg_type=st.sampled_from(["alert", "update", "cancel"]),
    radius=st.integers(0, 50_000),
    geohash=st.text("0123456789bcdefghjkmnpqrstuvwxyz", min_size=4, max_size=9),
)
def test_any_alert_renders_valid_cap(
    headline: str, body: str, label: str, langs: list[str], codes: list[str], kind: str,
    certainty: str, msg_type: str, radius: int, geohash: str,
) -> None:  # fmt: skip
    alert = Alert(
        id=new_id("ventura"),
        network="ventura",
        seq=1,
        msg_type=msg_type,  # type: ignore[arg-type]
        references=[] if msg_type == "alert" else [new_id("ventura")],
        kind=kind,  # type: ignore[arg-type]
        certainty=certainty,  # type: ignore[arg-type]
        observed_at=T0 - timedelta(minutes=5),
        sent_at=T0,
        expires_at=T0 + timedelta(hours=4),
        area=Area(label=label[:200], geohash=geohash, radius_m=radius, codes=codes),
        agencies=["ice"],
        text={lang: Text(headline=headline, body=body, instruction=body or None) for lang in langs},
    )
    assert_xsd_valid(render_alert(alert, raw_envelope(alert, key(1)), catalogues=CATALOGUES))
    feed = render_feed(
        FeedInfo("https://x/cap/v1/feed.atom", "ventura", "t", "es"),
        [render_entry(alert, "https://x/a.xml", CATALOGUES.words("es"))],
        T0,
    )
    etree.fromstring(feed)  # well-formed whatever the text
