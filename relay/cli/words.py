"""How ``avisa`` counts in its output: ``1 alert``, ``2 alerts``, never ``alert(s)``.

The command line speaks English; every countable noun it prints goes through
``plural`` so a person reads a real singular or plural.
"""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 channel``, ``2 channels``; ``nouns`` for an irregular plural."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
