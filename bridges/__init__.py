"""Delivery of accepted alerts to the outside: Matrix, SMS and CAP.

Lives here: ``base`` (the bridge runtime: durable cursors, filters,
status, and ``BridgeHost``, the ``Protocol`` a bridge sees its node
through), ``render`` (an alert as people read it; pure), ``runner`` (checks
and starts the configured bridges), and one subpackage per bridge:
``matrix/`` (rooms, and the desk room), ``sms/`` (the text line: Kannel or a
Twilio-compatible gateway, keywords, subscribers) and ``cap/`` (CAP 1.2 /
Atom export, and import of outside CAP sources as tips).

May import: ``relay.runtime`` and below. Never ``relay.federation``,
``relay.http`` or above; a bridge subpackage never imports another.
``render`` is pure (no I/O, no clock).
"""
