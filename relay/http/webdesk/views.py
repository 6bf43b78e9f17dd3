"""What each template is given: plain dicts and strings, shaped from the store.

Templates stay dumb: times are already relative phrases, an alert's area is
already a box and a circle to draw, and what the user may do is already a
yes or no. Text from alerts is passed as it is; Jinja's autoescape makes it
text in the page.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from keys.core.fingerprint import fingerprint
from relay.core.geohash import decode
from relay.core.language import Words
from relay.core.model import Alert, Text
from relay.core.times import rfc3339
from relay.storage.store import StoredAlert


def span(seconds: float, words: Words) -> str:
    """``3d 4h``, ``2h 5m``, ``40s``: two units at most, for quick reading."""
    seconds = int(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return words.gettext("desk.span.days", days=days, hours=hours)
    if hours:
        return words.gettext("desk.span.hours", hours=hours, minutes=minutes)
    if minutes:
        return words.gettext("desk.span.minutes", minutes=minutes)
    return words.gettext("desk.span.seconds", seconds=secs)


def relative(moment: datetime | None, now: datetime, words: Words) -> str:
    if moment is None:
        return "—"
    delta = (moment - now).total_seconds()
    if abs(delta) < 30:
        return words.gettext("desk.time.now")
    if delta >= 0:
        return words.gettext("desk.time.in", span=span(delta, words))
    return words.gettext("desk.time.ago", span=span(delta, words))


def clock_time(moment: datetime, words: Words) -> str:
    """A time of day as the desk says it: 14:02 UTC."""
    return words.gettext("desk.clock", time=moment.strftime("%H:%M"))


def text_for(alert: Alert, language: str) -> Text:
    """The alert's text in the reader's language, else its first language."""
    return alert.text.get(language) or next(iter(alert.text.values()))


def alert_row(
    stored: StoredAlert,
    now: datetime,
    words: Words,
    *,
    own_network: str,
    may_publish: bool,
) -> dict[str, Any]:
    alert = stored.alert
    text = text_for(alert, words.language)
    state = stored.view_state(now)
    lat, lon, lat_half, lon_half = decode(alert.area.geohash)
    return {
        "id": alert.id,
        "network": alert.network,
        "ulid": alert.id.partition("/")[2],
        "headline": text.headline,
        "body": text.body,
        "instruction": text.instruction or "",
        "texts": {lang: {"headline": x.headline, "body": x.body} for lang, x in alert.text.items()},
        "kind": alert.kind,
        "certainty": alert.certainty,
        "state": state,
        "origin": alert.network,
        "endorsed_by": stored.endorsed_by,
        "expires_at": rfc3339(alert.expires_at),
        "expires": relative(alert.expires_at, now, words),
        "received": relative(stored.received_at, now, words),
        "area": alert.area.label,
        "codes": alert.area.codes,
        "geo": {
            "s": lat - lat_half,
            "w": lon - lon_half,
            "n": lat + lat_half,
            "e": lon + lon_half,
            "lat": lat,
            "lon": lon,
            "r": alert.area.radius_m,
        },
        "editable": may_publish and alert.network == own_network and state == "active",
    }


@lru_cache(maxsize=256)
def cached_fingerprint(public_key: bytes) -> str:
    """Fingerprints cost thousands of hashes each; keys change rarely."""
    return fingerprint(public_key)
