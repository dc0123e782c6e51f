"""Docker's "unique ID prefix" rule, shared by containers and images."""

from __future__ import annotations

import bisect
import re
from typing import Final

__all__ = ["MIN_PREFIX_LENGTH", "prefix_matches"]

#: Shortest ID prefix resolved, as the internal API says (Docker itself accepts any length).
MIN_PREFIX_LENGTH: Final = 3
_HEX = re.compile(r"[a-f0-9]+")


def prefix_matches(sorted_ids: list[str], prefix: str, *, skip: int = 0) -> list[str]:
    """At most two IDs starting with ``prefix`` (two is enough to call it ambiguous).

    ``skip`` leading characters are a fixed namespace (``sha256:``) and do not count towards the
    minimum length; only lowercase hex can match, so other text is never looked up.
    """
    hex_part = prefix[skip:]
    if len(hex_part) < MIN_PREFIX_LENGTH or not _HEX.fullmatch(hex_part):
        return []
    start = bisect.bisect_left(sorted_ids, prefix)
    return [candidate for candidate in sorted_ids[start : start + 2] if candidate.startswith(prefix)]
