"""Closest-match suggestions for messages: "did you mean 'London'?" (difflib)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(value: object, options: Iterable[object], *, n: int = 1) -> str:
    """``" (did you mean 'London'?)"`` for the closest option, or ``""`` when none is close.

    Case and punctuation are ignored in the comparison; the option is shown as given.

    Examples
    --------
    >>> did_you_mean("Londn", ["London", "North East"])
    " (did you mean 'London'?)"
    >>> did_you_mean("xyz", ["London"])
    ''
    """
    opts = [str(o) for o in options]
    if not opts:
        return ""

    def key(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    keyed = {}
    for o in opts:
        keyed.setdefault(key(o), o)
    hits = difflib.get_close_matches(key(str(value)), list(keyed), n=n, cutoff=0.6)
    if not hits:
        return ""
    shown = " or ".join(repr(keyed[h]) for h in hits)
    return f" (did you mean {shown}?)"
