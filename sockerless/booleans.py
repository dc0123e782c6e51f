"""The words that mean true and false, for query strings, environment variables and flags alike."""

from __future__ import annotations

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "parse_bool"]

#: Compared in lower case: Docker's clients send ``1``/``0``, ``true``/``false`` and ``True``/``False``;
#: people writing configuration also say ``yes``/``no`` and ``on``/``off``.
TRUE_WORDS = frozenset({"1", "t", "true", "y", "yes", "on"})
FALSE_WORDS = frozenset({"0", "f", "false", "n", "no", "off"})


def parse_bool(text: str) -> bool | None:
    """``True`` or ``False`` for a word of :data:`TRUE_WORDS` or :data:`FALSE_WORDS`; None otherwise."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None
