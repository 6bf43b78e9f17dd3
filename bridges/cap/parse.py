"""Reading CAP 1.2 messages and Atom/RSS indexes from outside, as hostile input (pure).

Every document from a CAP source is treated as an attack until shown
otherwise, in this order, each step cheap and before the next:

1. size: more than ``Limits.max_bytes`` is refused unread;
2. encoding: only ASCII-compatible encodings (UTF-8, ISO-8859-x, …), so the
   byte checks below see what the parser will see;
3. no DTD at all: a ``<!DOCTYPE`` or ``<!ENTITY`` anywhere is refused before
   parsing (no entity can be declared, so none can be expanded or fetched);
4. parsing with lxml hardened on top of that (``resolve_entities=False``,
   ``no_network=True``, ``load_dtd=False``, no huge trees, processing
   instructions and comments dropped), counting elements as they start and
   stopping past ``Limits.max_elements``; XInclude and ``schemaLocation`` are
   never acted on;
5. the CAP 1.2 schema's rules (``cap12.xsd``: element order, counts,
   enumerations, the dateTime pattern that forbids ``Z``, no text where
   elements belong), checked here in code (tests prove the two agree on
   every fixture), plus the specification's rules the XSD cannot state: an
   Update or Cancel names what it replaces in ``sender,identifier,sent``
   triples.

A refusal is a ``Refused`` whose ``reason`` is a fixed word (``dtd``,
``too_large``, ``invalid`` …) that is safe to count and log; it never
carries the document's content.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from lxml import etree

from relay.core.errors import AvisaError

CAP12: Final = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM: Final = "http://www.w3.org/2005/Atom"
XMLDSIG: Final = "http://www.w3.org/2000/09/xmldsig#"
_C = "{" + CAP12 + "}"
_A = "{" + ATOM + "}"

Reason = Literal[
    "too_large", "encoding", "dtd", "malformed", "too_many_elements", "not_cap", "invalid"
]


class Refused(AvisaError):
    """A document we will not read; ``reason`` is safe to log, the content never is."""

    def __init__(self, reason: Reason, where: str = "") -> None:
        super().__init__(f"{reason}{' at ' + where if where else ''}")
        self.reason: Reason = reason
        self.where = where


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 2 * 1024 * 1024
    max_elements: int = 100_000


# --- step 1-4: bytes to a tree ---------------------------------------------------

_WIDE_STARTS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00", b"\x00<", b"<\x00", b"\x4c\x6f\xa7\x94")
_DECLARATIONS = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)


def _parser_events(data: bytes) -> Iterator[tuple[str, etree._Element]]:
    return etree.iterparse(  # type: ignore[no-any-return]
        io.BytesIO(data),
        events=("start",),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def parse_document(data: bytes, limits: Limits) -> etree._Element:
    """The root element of a safe, well-formed, bounded document; else ``Refused``."""
    if len(data) > limits.max_bytes:
        raise Refused("too_large")
    if data.startswith(_WIDE_STARTS):
        raise Refused("encoding")
    if _DECLARATIONS.search(data):
        raise Refused("dtd")
    root: etree._Element | None = None
    count = 0
    events = _parser_events(data)
    try:
        for _event, element in events:
            count += 1
            if count > limits.max_elements:
                raise Refused("too_many_elements")
            if root is None:
                root = element
    except (etree.XMLSyntaxError, ValueError, LookupError):
        raise Refused("malformed") from None
    if root is None:
        raise Refused("malformed")
    if root.getroottree().docinfo.doctype:
        raise Refused("dtd")
    return root


def kind_of(root: etree._Element) -> Literal["cap", "atom", "rss"]:
    tag = root.tag
    if tag == _C + "alert":
        return "cap"
    if tag == _A + "feed":
        return "atom"
    if tag == "rss":
        return "rss"
    raise Refused("not_cap")


# --- step 5: the CAP 1.2 schema ---------------------------------------------------

_DATETIME = re.compile(r"^\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[-,+]\d\d:\d\d$")
_LANGUAGE = re.compile(r"^[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_INTEGER = re.compile(r"^[+-]?\d+$")

ENUMS: Final[dict[str, frozenset[str]]] = {
    "status": frozenset({"Actual", "Exercise", "System", "Test", "Draft"}),
    "msgType": frozenset({"Alert", "Update", "Cancel", "Ack", "Error"}),
    "scope": frozenset({"Public", "Restricted", "Private"}),
    "category": frozenset(
        {"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env"}
        | {"Transport", "Infra", "CBRNE", "Other"}
    ),
    "responseType": frozenset(
        {"Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess"}
        | {"AllClear", "None"}
    ),
    "urgency": frozenset({"Immediate", "Expected", "Future", "Past", "Unknown"}),
    "severity": frozenset({"Extreme", "Severe", "Moderate", "Minor", "Unknown"}),
    "certainty": frozenset({"Observed", "Likely", "Possible", "Unlikely", "Unknown"}),
}
_DATETIMES = frozenset({"sent", "effective", "onset", "expires"})


@dataclass(frozen=True, slots=True)
class Slot:
    name: str
    low: int = 1
    high: int = 1  # 0: unbounded
    children: tuple[Slot, ...] | None = None  # None: a simple (text) element


def _opt(name: str, children: tuple[Slot, ...] | None = None) -> Slot:
    return Slot(name, 0, 1, children)


def _many(name: str, low: int = 0, children: tuple[Slot, ...] | None = None) -> Slot:
    return Slot(name, low, 0, children)


_PAIR = (Slot("valueName"), Slot("value"))
_RESOURCE = (
    Slot("resourceDesc"),
    Slot("mimeType"),
    _opt("size"),
    _opt("uri"),
    _opt("derefUri"),
    _opt("digest"),
)
_AREA = (
    Slot("areaDesc"),
    _many("polygon"),
    _many("circle"),
    _many("geocode", children=_PAIR),
    _opt("altitude"),
    _opt("ceiling"),
)
_INFO = (
    _opt("language"),
    _many("category", 1),
    Slot("event"),
    _many("responseType"),
    Slot("urgency"),
    Slot("severity"),
    Slot("certainty"),
    _opt("audience"),
    _many("eventCode", children=_PAIR),
    _opt("effective"),
    _opt("onset"),
    _opt("expires"),
    _opt("senderName"),
    _opt("headline"),
    _opt("description"),
    _opt("instruction"),
    _opt("web"),
    _opt("contact"),
    _many("parameter", children=_PAIR),
    _many("resource", children=_RESOURCE),
    _many("area", children=_AREA),
)
_ALERT = (
    Slot("identifier"),
    Slot("sender"),
    Slot("sent"),
    Slot("status"),
    Slot("msgType"),
    _opt("source"),
    Slot("scope"),
    _opt("restriction"),
    _opt("addresses"),
    _many("code"),
    _opt("note"),
    _opt("references"),
    _opt("incidents"),
    _many("info", children=_INFO),
)


def _elements(element: etree._Element) -> list[etree._Element]:
    return [child for child in element if isinstance(child.tag, str)]


def _check_simple(element: etree._Element, name: str, where: str) -> None:
    if _elements(element) or element.attrib:
        raise Refused("invalid", where)
    text = (element.text or "").strip()
    if name in ENUMS and text not in ENUMS[name]:
        raise Refused("invalid", where)
    if name in _DATETIMES and not _DATETIME.match(text):
        raise Refused("invalid", where)
    checks = {"language": _LANGUAGE, "size": _INTEGER, "altitude": _DECIMAL, "ceiling": _DECIMAL}
    if name in checks and not checks[name].match(text):
        raise Refused("invalid", where)


def _check(element: etree._Element, slots: tuple[Slot, ...], where: str, tail_ns: str) -> None:
    if element.attrib or (element.text or "").strip():
        raise Refused("invalid", where)
    children = _elements(element)
    index = 0
    for slot in slots:
        count = 0
        while index < len(children) and children[index].tag == _C + slot.name:
            child = children[index]
            count += 1
            if slot.high and count > slot.high:
                raise Refused("invalid", f"{where}/{slot.name}")
            path = f"{where}/{slot.name}"
            if slot.children is None:
                _check_simple(child, slot.name, path)
            else:
                _check(child, slot.children, path, "")
            if (child.tail or "").strip():
                raise Refused("invalid", path)
            index += 1
        if count < slot.low:
            raise Refused("invalid", f"{where}/{slot.name}")
    for child in children[index:]:
        if not tail_ns or etree.QName(child).namespace != tail_ns:
            raise Refused("invalid", f"{where}/*")  # the name is the sender's, not ours to log


# --- the message, as Python values -----------------------------------------------


@dataclass(frozen=True, slots=True)
class CapArea:
    desc: str
    circles: tuple[str, ...] = ()
    polygons: tuple[str, ...] = ()
    geocodes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CapInfo:
    language: str
    event: str
    certainty: str
    headline: str = ""
    description: str = ""
    instruction: str = ""
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    event_codes: tuple[tuple[str, str], ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()
    areas: tuple[CapArea, ...] = ()


@dataclass(frozen=True, slots=True)
class Reference:
    sender: str
    identifier: str
    sent: datetime

    @property
    def ref(self) -> str:
        return source_ref(self.sender, self.identifier)


@dataclass(frozen=True, slots=True)
class CapMessage:
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    note: str = ""
    references: tuple[Reference, ...] = ()
    infos: tuple[CapInfo, ...] = field(default_factory=tuple)

    @property
    def ref(self) -> str:
        return source_ref(self.sender, self.identifier)

    def expires(self) -> datetime | None:
        """The latest expiry any ``<info>`` gives; None when none gives one."""
        moments = [info.expires for info in self.infos if info.expires is not None]
        return max(moments) if moments else None


MAX_SOURCE_REF = 300  # what the desk takes (relay.runtime.desk)


def source_ref(sender: str, identifier: str) -> str:
    """How the desk knows an outside message: ``sender,identifier`` (CAP's own key).

    One longer than the desk takes, or with a character it refuses, is cut and
    given a hash of the whole, the same way every time.
    """
    ref = f"{sender},{identifier}"
    if len(ref) <= MAX_SOURCE_REF and ref.isprintable():
        return ref
    digest = hashlib.blake2b(ref.encode(), digest_size=16).hexdigest()
    return "".join(c if c.isprintable() else "?" for c in ref[:200]) + "#" + digest


def _text(element: etree._Element | None) -> str:
    return "" if element is None else (element.text or "").strip()


def _time(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _pairs(element: etree._Element, name: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (_text(pair.find(_C + "valueName")), _text(pair.find(_C + "value")))
        for pair in element.iterfind(_C + name)
    )


def _references(text: str) -> tuple[Reference, ...]:
    refs = []
    for triple in text.split():
        parts = triple.split(",")
        if len(parts) != 3 or not parts[0] or not parts[1] or not _DATETIME.match(parts[2]):
            raise Refused("invalid", "alert/references")
        refs.append(Reference(parts[0], parts[1], datetime.fromisoformat(parts[2])))
    return tuple(refs)


def _area(element: etree._Element) -> CapArea:
    return CapArea(
        desc=_text(element.find(_C + "areaDesc")),
        circles=tuple(_text(e) for e in element.iterfind(_C + "circle")),
        polygons=tuple(_text(e) for e in element.iterfind(_C + "polygon")),
        geocodes=_pairs(element, "geocode"),
    )


def _info(element: etree._Element) -> CapInfo:
    def text(name: str) -> str:
        return _text(element.find(_C + name))

    return CapInfo(
        language=text("language") or "en-US",
        event=text("event"),
        certainty=text("certainty"),
        headline=text("headline"),
        description=text("description"),
        instruction=text("instruction"),
        effective=_time(text("effective")),
        onset=_time(text("onset")),
        expires=_time(text("expires")),
        event_codes=_pairs(element, "eventCode"),
        parameters=_pairs(element, "parameter"),
        areas=tuple(_area(area) for area in element.iterfind(_C + "area")),
    )


def read_cap(element: etree._Element) -> CapMessage:
    """Check a ``<cap:alert>`` element against CAP 1.2 and read it; else ``Refused``."""
    if element.tag != _C + "alert":
        raise Refused("not_cap")
    _check(element, _ALERT, "alert", XMLDSIG)

    def text(name: str) -> str:
        return _text(element.find(_C + name))

    msg_type = text("msgType")
    references = _references(text("references"))
    if msg_type in ("Update", "Cancel") and not references:
        raise Refused("invalid", "alert/references")
    try:
        sent = datetime.fromisoformat(text("sent"))
        infos = tuple(_info(info) for info in element.iterfind(_C + "info"))
    except ValueError:  # a dateTime of the right shape but no real date (02-30)
        raise Refused("invalid", "alert/sent") from None
    return CapMessage(
        identifier=text("identifier"),
        sender=text("sender"),
        sent=sent,
        status=text("status"),
        msg_type=msg_type,
        scope=text("scope"),
        note=text("note"),
        references=references,
        infos=infos,
    )


# --- indexes ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One entry of an Atom or RSS index: a key that changes when it does, and
    where its CAP message is (embedded in the entry, or behind a link)."""

    key: str
    link: str | None
    embedded: etree._Element | None


def _atom_link(entry: etree._Element) -> str | None:
    links: list[tuple[str, str, str]] = [
        (str(link.get("rel", "alternate")), str(link.get("type", "")), str(link.get("href", "")))
        for link in entry.iterfind(_A + "link")
    ]
    for _rel, media, href in links:
        if href and "cap" in media:
            return href
    for rel, _media, href in links:
        if href and rel == "alternate":
            return href
    return None


def index_entries(root: etree._Element, limit: int) -> list[IndexEntry]:
    """The first ``limit`` entries of an Atom feed or RSS 2.0 channel."""
    entries: list[IndexEntry] = []
    if root.tag == _A + "feed":
        for entry in root.iterfind(_A + "entry"):
            content = entry.find(_A + "content")
            embedded = None if content is None else content.find(_C + "alert")
            key = f"{_text(entry.find(_A + 'id'))} {_text(entry.find(_A + 'updated'))}"
            entries.append(IndexEntry(key, _atom_link(entry), embedded))
            if len(entries) == limit:
                break
    else:
        for item in root.iterfind("channel/item"):
            link = _text(item.find("link")) or None
            key = f"{_text(item.find('guid')) or link} {_text(item.find('pubDate'))}"
            entries.append(IndexEntry(key, link, item.find(_C + "alert")))
            if len(entries) == limit:
                break
    return entries
