"""Phone numbers: one normal form (E.164) before anything is sealed or hashed.

``phonenumbers`` (Google's libphonenumber) parses what people and gateways
send — ``(805) 555-0134``, ``+1 805 555 0134``, ``18055550134``, short codes
— so that the same person always gives the same keyed hash. A number that
does not parse as possible is refused with a message that never repeats it
(error text can reach logs).

``never_texted`` names the numbers the text line never answers (DESIGN §17):
premium-rate numbers (a text to one costs the network money and pays whoever
owns it) and short codes. A short code is not a possible number, so it never
gets past ``normalize`` either.
"""

from __future__ import annotations

import phonenumbers

from relay.core.errors import BadInput

MAX_INPUT = 64


def normalize(text: str, region: str = "US") -> str:
    """``text`` as E.164 (``+18055550134``); ``region`` for numbers without ``+``."""
    if not text or len(text) > MAX_INPUT:
        raise BadInput("AVISA_BAD_PHONE", "a phone number is 1-64 characters")
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise BadInput("AVISA_BAD_PHONE", "not a phone number") from None
    if not phonenumbers.is_possible_number(parsed):
        raise BadInput("AVISA_BAD_PHONE", "not a possible phone number for its country")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def never_texted(e164: str) -> str | None:
    """Why the line must never text ``e164`` (``premium_rate``, ``short_code``), or None."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "short_code"
    if not phonenumbers.is_possible_number(parsed):
        return "short_code"
    if phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.PREMIUM_RATE:
        return "premium_rate"
    return None
