"""The ``avisa`` command line (DESIGN §7).

Lives here: ``main`` (the parser and every node command), ``alert`` (alert
and held-queue commands through the local API), ``keys`` (``avisa keys`` and
``avisa trust``), ``client`` (the small API client), ``datadir`` (``init``,
``backup``).

May import: ``relay.http`` and everything below. Never ``relay.demo``:
``relay.entry`` plugs the demo's command in. The work behind a command
lives below (``keys.store``, ``relay.storage``); a command only parses,
calls and prints.
"""
