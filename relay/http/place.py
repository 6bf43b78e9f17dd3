"""``GET /api/v1/place``: the offline gazetteer for the desk (DESIGN §14).

One query, one place: ``?zip=93030``, ``?lat=34.1975&lon=-119.1771``,
``?geohash=9q4gch`` or ``?code=fips:06111`` answers
``{"geohash", "codes": ["fips:06111", "zip:93030"], "label", "lat", "lon"}``
(``relay.core.gazetteer.lookup``): what the desk's map shows when a
coordinator clicks, and what a draft's area would be. Bad input is a 400
``AVISA_BAD_PLACE`` whose message names the field and gives an example. The
people at the desk may ask (intake, verifier, publisher); nothing is stored
and nothing is logged but the count of refusals.
"""

from __future__ import annotations

from aiohttp import web

from relay.core.errors import BadInput
from relay.core.gazetteer import Place, lookup
from relay.http.api import caller
from relay.runtime import places
from relay.runtime.httpio import respond
from relay.storage.trust import Role

routes = web.RouteTableDef()
ASK: tuple[Role, ...] = ("intake", "verifier", "publisher")
MAX_QUERY = 200


@routes.get("/api/v1/place")
async def place(request: web.Request) -> web.Response:
    caller(request, ASK)
    return respond(await find(request))


async def find(request: web.Request) -> Place:
    """The one place a request's query names (this API's, and the web desk's map)."""
    if len(request.query_string) > MAX_QUERY or any(
        len(request.query.getall(name)) > 1 for name in request.query
    ):
        raise BadInput("AVISA_BAD_PLACE", "one short query, e.g. ?zip=93030")
    query = {name: request.query[name] for name in request.query}
    return lookup(await places.get(), query)
