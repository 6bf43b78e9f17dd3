"""Picking an alert's place on a map, in the tips page's publish form (DESIGN §14).

The form shows the place the desk suggests for the tip (``relay.core.tipplace``:
its geohash, ZIP, code, a ZIP in its words, or the node's home area) as a
marker on a map with the node's own streets (``tiles``). A click, a drag, the
arrow keys on the focused marker, or a ZIP typed in the form move it (``static/desk.js``); each
move asks ``GET /desk/place`` (the gazetteer, as ``GET /api/v1/place`` answers
it, for a signed-in desk user) and refills the geohash, the area codes and,
unless the publisher has edited it, the area's label. The geohash stays in
the form, folded away, for experts; nobody needs to type one.

Without JavaScript the form still works: a ZIP typed there (differing from
the one shown) wins over the geohash and codes it was drawn with, and the
gazetteer places it when the alert is signed. ``from_form`` turns the form's
place fields into a ``TipDraft``'s ``geohash``, ``codes`` and ``area_label``;
every check (a geohash of the wrong length, a ZIP or code the gazetteer does
not know) is the gazetteer's, with its message naming the field.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from multidict import MultiDict

from relay.core import geohash
from relay.core.drafts import Draft
from relay.core.errors import BadInput
from relay.http.place import ASK, find
from relay.http.webdesk.pages import need
from relay.runtime.httpio import error_response, respond, status_for

routes = web.RouteTableDef()
_ZIP = re.compile(r"^[0-9]{5}$")
_SPLIT = re.compile(r"[\s,]+")
MAX_CODES = 16
#: Where the map starts when the desk can suggest nothing: the whole country.
NOWHERE = {"lat": "39.5", "lon": "-98.35", "zoom": "4"}


@routes.get("/place", name="place")
async def place(request: web.Request) -> web.Response:
    """The gazetteer for the publish form's map; errors as JSON, never a page."""
    need(request, ASK)
    try:
        return respond(await find(request))
    except BadInput as exc:
        return error_response(status_for(exc), exc.errcode, exc.message)


def view(draft: Draft | None, zip_code: str, own_label: str) -> dict[str, str]:
    """What the form's map and place fields start with: the suggestion, or nowhere.
    ``auto``: the label, when the gazetteer named the place rather than the tip."""
    if draft is None:
        label = own_label.strip()
        return {**NOWHERE, "geohash": "", "codes": "", "label": label, "auto": "", "zip": zip_code}
    area = draft.area
    lat, lon, _, _ = geohash.decode(area.geohash)
    zoom = "14" if len(area.geohash) >= 6 else "11"
    codes = " ".join(area.codes)
    found = zip_code or next((c[4:] for c in area.codes if c.startswith("zip:")), "")
    label = area.label if area.label != "-" else ""
    return {
        "lat": f"{lat:.6f}",
        "lon": f"{lon:.6f}",
        "zoom": zoom,
        "geohash": area.geohash,
        "codes": codes,
        "label": label,
        "auto": label if label != own_label.strip() else "",
        "zip": found,
    }


def from_form(form: MultiDict[str]) -> dict[str, Any]:
    """The place fields of a publish form, as a ``TipDraft``'s pieces."""
    fields: dict[str, Any] = {}
    zip_code = form.get("zip", "").strip()
    if zip_code and zip_code != form.get("zip_shown", "").strip():
        if not _ZIP.match(zip_code):
            raise BadInput("AVISA_BAD_PLACE", f"zip: {zip_code[:12]!r} is not 5 digits; e.g. 93030")
        fields["codes"] = [f"zip:{zip_code}"]
    else:
        cell = form.get("geohash", "").strip().lower()
        if cell:
            fields["geohash"] = cell
        codes = [code for code in _SPLIT.split(form.get("codes", "")[:800]) if code]
        if codes:
            if len(codes) > MAX_CODES:
                raise BadInput("AVISA_BAD_PLACE", f"codes: at most {MAX_CODES}")
            fields["codes"] = codes
    label = " ".join(form.get("area_label", "").split())[:200]
    if label:
        fields["area_label"] = label
    return fields
