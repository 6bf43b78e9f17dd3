"""SQLite and the data directory's files: what the node keeps.

Lives here: the database (``db``: one writer thread with group commit; its
migrations in ``schema``), alerts and the feed (``store``; ``writes.Writes`` is the one way
a message is stored), the outbox and delivery state (``outbox``), seq gaps
(``gaps``), trust tables and tokens (``trust``), tips (``tips``), federation's
stored replies and pull cursors (``fedstate``), ``avisa.toml``
reading (``configfile``), private files (``files``) and the sealing key
(``sealkey``). Functions take a connection (or a ``Database``) and ``now``; they
never read a clock or start a task.

Each table has one owner module here (docs/architecture.md, "Who owns which
table"); layers above call its functions and never write SQL or import
``sqlite3`` (they name a job's connection ``db.Connection``).

May import: ``relay.core``, ``keys.cards``, ``keys.core``.

Go instead to ``relay.runtime`` for the node that runs jobs on the database,
``keys.store`` for key files and key tables. New tables: append a migration
to ``schema.MIGRATIONS`` (never edit an applied one).
"""
