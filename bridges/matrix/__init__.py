"""The Matrix bridge (DESIGN §9, docs/matrix.md).

Lives here: ``bridge`` (routes into rooms; the runner the node starts),
``deskroom`` (the desk's room: tips posted, verifiers' commands),
``session`` (one matrix-nio login: secrets, sync, sends), ``store`` (what the
bridge remembers, migration ``0300_matrix``), ``localsynapse`` (a real local
Synapse for tests, the benchmark and the demo).

May import: ``bridges.base``, ``bridges.render``, ``relay.runtime`` and
below. matrix-nio is imported only here (the ``matrix`` extra).
"""
