"""Avisa relay node: the top map (DESIGN.md §1, docs/architecture.md).

Code is cut by layer; a layer imports only the layers below it (checked by
``lint-imports``, contracts in ``pyproject.toml``)::

    relay.demo        make demo / avisa demo                    (top)
    relay.cli         avisa commands, the API client, data dirs
    relay.http        the aiohttp app (composition root), operator API
    relay.federation | bridges   peers | Matrix, SMS, CAP      (independent)
    relay.runtime     the running node: pipeline, clock, feed, logs, metrics
    keys.store        key files and key tables
    relay.storage     SQLite: schema, alerts, outbox, gaps, trust, tokens
    keys.cards        key documents, statements, trust cards   (pure)
    relay.core        payload, envelopes, policy, drafts, errors, config (pure)
    keys.core         keyring, fingerprints, the signing key    (pure)

Composition roots, which alone see everything: ``relay.http.app`` (wires a
node, its federation and bridges into one aiohttp app; ``avisa run``) and
``relay.entry`` (the ``avisa`` command with ``avisa demo`` plugged in).
Each package's ``__init__`` says what lives there, what it may import, and
where to go instead.
"""
