"""``avisa keys …`` and ``avisa trust …`` commands beyond ``keys show``.

Filled in by the key-management work (peer cards, rotation, revocation).
"""

from __future__ import annotations

from typing import Any


def register_keys(actions: Any) -> None:
    """Add ``rotate``, ``revoke``, ``export-card`` to ``avisa keys``."""


def register_trust(commands: Any) -> None:
    """Add ``avisa trust add|list|remove|revoke``."""
