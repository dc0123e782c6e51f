"""The one error of the configuration: every problem found, one line each."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """The configuration cannot be used; ``problems`` has one line per problem, each naming its key.

    The loader raises it with every problem of every layer. A section's ``__attrs_post_init__`` may
    raise it too, with one problem per line where a plain ValueError would join them: it is a
    ValueError, as attrs validation expects.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))
