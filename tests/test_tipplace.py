"""A tip's place → an alert's area, and the warnings before signing (pure, no loop)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from relay.core import config, drafts
from relay.core.errors import BadInput, ConfigError
from relay.core.gazetteer import Gazetteer
from relay.core.model import Area
from relay.core.tipdrafts import TipDraft, prefill
from relay.core.tipplace import COUNTY_RADIUS_M, TipPlaces
from relay.core.tips import Tip, Where
from relay.storage.catalogues import load
from tests.test_gazetteer import COUNTIES, STATES, ZIPS

# The shipped catalogues' words, as a node serving es and en passes them to prefill.
WORDS = [load(("es", "en")).words(language) for language in ("es", "en")]

GAZETTEER = Gazetteer(ZIPS, COUNTIES, STATES)
HOME = TipPlaces(GAZETTEER, ["fips:06111"])
NOWHERE = TipPlaces(GAZETTEER)


def tip(where: Where, text: str = "Agentes", channel: str = "web") -> Tip:
    return msgspec.convert(
        {
            "id": "01JDG2Y6Z8ZQ3W7V4N1T5R9K2M",
            "number": 1,
            "channel": channel,
            "received_at": datetime(2026, 11, 23, tzinfo=UTC),
            "text": text,
            "where": msgspec.to_builtins(where),
            "state": "confirmed",
        },
        Tip,
    )


def area(place: TipPlaces, where: Where, text: str = "Agentes", **draft: Any) -> Area:
    return place.area(tip(where, text), msgspec.convert(draft, TipDraft))


def test_suggestions_in_order_and_their_sources() -> None:
    cases = [
        (Where(label="x", geohash="9q5681", codes=["zip:90033"]), "geohash"),
        (Where(label="x", codes=["iso:us-ca", "zip:93001"]), "zip"),
        (Where(label="x", codes=["fips:06037"]), "code"),
        (Where(label="Oxnard 93030"), "words"),
        (Where(label="SMS"), "home"),
    ]
    for where, source in cases:
        found = HOME.suggest(tip(where))
        assert found is not None and found.source == source, where
    assert NOWHERE.suggest(tip(Where(label="SMS"))) is None


def test_zip_becomes_its_county_and_tip_codes_follow() -> None:
    made = area(HOME, Where(label="Calle 5", codes=["zip:93030"]))
    assert (made.codes, made.label, made.radius_m, len(made.geohash)) == (
        ["fips:06111"],
        "Calle 5",
        500,
        6,
    )
    made = area(HOME, Where(label="x", geohash="9q5681", codes=["iso:us-ca"]))
    assert made.codes == ["fips:06111", "iso:us-ca"] and made.geohash == "9q5681"


def test_words_zip_outside_home_is_not_taken_and_home_is_a_county_view() -> None:
    made = HOME.area(tip(Where(label="SMS"), "la migra en 90033", "sms"), TipDraft())
    assert made.codes == ["fips:06111"] and len(made.geohash) == 5
    assert made.radius_m == COUNTY_RADIUS_M
    assert made.label == "Ventura County, CA"  # "SMS" names the channel, not the place
    assert area(NOWHERE, Where(label="x"), "en 90033 hoy").codes == ["fips:06037"]
    with pytest.raises(BadInput, match="no place the desk can map"):
        area(NOWHERE, Where(label="x"), "12345678 y 930301")  # longer numbers hold no ZIP
    assert area(NOWHERE, Where(label="Oxnard 93030-1234")).codes == ["fips:06111"]  # ZIP+4


def test_publisher_pieces_win() -> None:
    where = Where(label="Colonia", codes=["zip:93030"])
    made = area(HOME, where, geohash="9q5cw5", area_label="Boyle Heights", radius_m=50)
    assert (made.geohash, made.codes, made.label, made.radius_m) == (
        "9q5cw5",
        ["fips:06037"],
        "Boyle Heights",
        50,
    )
    made = area(HOME, where, codes=["ZIP:90033", "fips:06111"])
    assert made.codes == ["fips:06037", "fips:06111"] and made.geohash.startswith("9q5c")
    made = area(HOME, where, codes=["iso:us-ca"])  # nothing placeable: the tip's place
    assert made.codes == ["iso:us-ca"] and made.label == "Colonia"


@pytest.mark.parametrize(
    ("draft", "said"),
    [
        ({"geohash": "9q5"}, "geohash: '9q5'"),
        ({"geohash": "9qzzzz"}, "geohash: 9qzzzz:"),
        ({"codes": ["zip:99999"]}, "codes: zip:99999"),
        ({"codes": ["fips:06999"]}, "codes: fips:06999 is not an area code this node knows"),
        ({"codes": ["fips:0611"]}, "codes: 'fips:0611' is not an area code; e.g. fips:06111"),
    ],
)
def test_bad_pieces_are_refused_with_the_field(draft: dict[str, Any], said: str) -> None:
    with pytest.raises(BadInput) as refused:
        area(HOME, Where(label="x", codes=["zip:93030"]), **draft)
    assert said in refused.value.message


def test_prefill_with_places_and_without() -> None:
    ziponly = tip(Where(label="Calle 5", codes=["zip:93030"]))
    assert prefill(ziponly, TipDraft(), "false", HOME, words=WORDS).area.codes == ["fips:06111"]
    with pytest.raises(BadInput, match="no place the desk can map"):
        prefill(ziponly, TipDraft(), "confirmed", words=WORDS)
    pieces = prefill(
        ziponly, TipDraft(geohash="9Q5681", codes=["fips:06111"]), "confirmed", words=WORDS
    )
    assert (pieces.area.geohash, pieces.area.codes) == ("9q5681", ["fips:06111"])
    whole = Area(label="x", geohash="9q5681", radius_m=1, codes=[])
    with pytest.raises(BadInput, match="either area or"):
        prefill(ziponly, TipDraft(area=whole, geohash="9q5681"), "confirmed", HOME, words=WORDS)


def draft_with(codes: list[str]) -> drafts.Draft:
    return prefill(
        tip(Where(label="x", geohash="9q5681")),
        TipDraft(area=Area(label="x", geohash="9q5681", radius_m=1, codes=codes)),
        "confirmed",
        words=WORDS,
    )


def test_warnings_before_signing_in_both_languages() -> None:
    home = ["fips:06111"]
    catalogues = load(["es", "en"])
    en, es = catalogues.words("en"), catalogues.words("es")
    assert drafts.warnings(draft_with(["fips:06111"]), home, en) == []
    assert drafts.warnings(draft_with(["fips:06111"]), ["fips:06"], en) == []
    (outside,) = drafts.warnings(draft_with(["fips:06111", "fips:06037"]), home, en)
    assert outside == (
        "peers that trust this network for fips:06111 will hold it (outside_speaks_for):"
        " fips:06037 lies outside this network's home area ([node] home_codes)"
    )
    (none,) = drafts.warnings(draft_with([]), home, es)
    assert none.startswith("los nodos vecinos que confían en esta red para fips:06111")
    assert "--code fips:06111" in none
    (zipped,) = drafts.warnings(draft_with(["zip:93030"]), home, en)
    assert "zip:93030 lies outside" in zipped  # a peer does not count a ZIP as its county
    assert drafts.warnings(draft_with([]), [], en) == [en.gettext(drafts.NO_AREA_CODE)]
    (said,) = drafts.warnings(draft_with([]), [], es)
    assert said.startswith("el área tiene geohash pero ningún código de área")
    assert drafts.problems(draft_with(["zip:93030"]), []) == []


def test_home_codes_setting_default_and_readable_error() -> None:
    text = config.render("ventura", "127.0.0.1:1", "")
    assert config.parse(text.encode()).node.home_codes == []
    given = text.replace("[node]\n", '[node]\nhome_codes = ["fips:06111"]\n')
    assert config.parse(given.encode()).node.home_codes == ["fips:06111"]
    with pytest.raises(ConfigError, match=r"node.home_codes\[0\].*Did you mean fips:06111"):
        config.parse(text.replace("[node]\n", '[node]\nhome_codes = ["06111"]\n').encode())
