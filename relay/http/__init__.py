"""The HTTP side: the aiohttp app and its handlers.

Lives here: ``app`` (the composition root: ``build_app``, ``serve``,
``run_until_stopped``; lifecycle by ``cleanup_ctx``), ``api`` (the local
operator API, DESIGN §6), ``desk`` (the tip desk's API, §10), ``report``
(the public tip form) and ``cap`` (the CAP/Atom export routes, §12). New
HTTP handlers go here; the federation routes stay in
``relay.federation.inbound``.

May import: ``relay.federation``, ``bridges`` and everything below them.
Never ``relay.cli`` or ``relay.demo``. Errors are raised as
``relay.core.errors`` types; ``relay.runtime.httpio`` alone maps them to
statuses.
"""
