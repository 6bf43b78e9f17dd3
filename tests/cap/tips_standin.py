"""The agreed ``relay.core.tips`` types (BRIEF: "The tip interface"), for the CAP tests
until the desk's module lands on main; ``tests.cap.standin`` installs it only then.

No ``from __future__ import annotations``: msgspec resolves these types at runtime.
"""

from typing import Annotated, Literal

from msgspec import Meta, Struct

from relay.core.model import Agency, AreaCode, LangTag, UtcTime

Channel = Literal["web", "sms", "hotline", "matrix", "cap"]


class Where(Struct, frozen=True, forbid_unknown_fields=True):
    label: Annotated[str, Meta(min_length=1, max_length=200)]
    geohash: Annotated[str, Meta(pattern=r"^[0-9b-hjkmnp-z]{4,7}$")] | None = None
    codes: Annotated[list[AreaCode], Meta(max_length=16)] = []


class TipIn(Struct, frozen=True, forbid_unknown_fields=True):
    text: Annotated[str, Meta(min_length=1, max_length=2000)]
    where: Where
    channel: Channel = "hotline"
    observed_at: UtcTime | None = None
    language: LangTag | None = None
    activity: Annotated[str, Meta(max_length=200)] | None = None
    agencies: Annotated[list[Agency], Meta(max_length=8)] = []
    vehicles: Annotated[str, Meta(max_length=200)] | None = None
    size: Annotated[str, Meta(max_length=200)] | None = None
