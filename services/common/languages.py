"""Languages as the services name them to a client."""

from __future__ import annotations

from collections.abc import Sequence


def listed(languages: Sequence[str], most: int = 5) -> str:
    """The languages a recogniser knows, for an error message: all of a few, or the count and the first few."""
    if len(languages) <= most:
        return ", ".join(languages)
    return f"{len(languages)} languages: {', '.join(languages[:most])}, ..."
