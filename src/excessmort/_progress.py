"""Progress bars for long work: fitting many series, rendering reports.

One policy for the whole package: a bar (``tqdm.auto``, so Jupyter gets its widget and a terminal
gets text) only when someone can see it and the work is long enough to need it. Silent when:

- ``EXCESSMORT_PROGRESS=0`` (the test suite sets it; ``=1`` forces bars on, e.g. in a CI log);
- the caller passes ``progress=False``;
- standard error is not a terminal and the code does not run in a Jupyter kernel;
- tqdm (the ``excessmort[progress]`` extra) is not installed.

``progress(iterable, desc=...)`` wraps an iterable (the report layer renders nine regions through
it); :class:`Stages` ticks through the named stages of one job (``fit()``: read and validate, build
the panel, fit the baseline) without splitting the one-pass kernel into chunks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

__all__ = ["PROGRESS_MIN_SERIES", "Stages", "enabled", "progress"]

T = TypeVar("T")

#: ``fit()`` shows its stages when the panel has more series than this (auto mode).
PROGRESS_MIN_SERIES = 10_000


def _in_notebook() -> bool:
    """True inside a Jupyter (ZMQ) kernel, where tqdm.auto draws a widget."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover - a broken IPython install
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def enabled(progress: bool | None = None) -> bool:
    """Whether a progress bar should be drawn.

    Parameters
    ----------
    progress : bool, optional
        The caller's choice: ``False`` never, ``True`` whenever a display exists, ``None`` (auto) as
        ``True``; the environment variable ``EXCESSMORT_PROGRESS`` (``0``/``1``) overrides both.

    Returns
    -------
    bool
    """
    env = os.environ.get("EXCESSMORT_PROGRESS", "").strip().lower()
    if env in ("0", "false", "no", "off"):
        return False
    if progress is False:
        return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    if env in ("1", "true", "yes", "on"):
        return True
    stream = sys.stderr
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    return is_tty or _in_notebook()


def _bar(**kwargs: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(**kwargs)


def progress(
    iterable: Iterable[T],
    *,
    desc: str | None = None,
    total: int | None = None,
    show: bool | None = None,
) -> Iterator[T]:
    """Iterate with a progress bar when one should be shown (see the module docstring).

    Parameters
    ----------
    iterable : iterable
    desc : str, optional
        Label of the bar, e.g. ``"rendering reports"``.
    total : int, optional
        Number of items when ``iterable`` has no length.
    show : bool, optional
        The caller's ``progress`` option (``False`` silences the bar).

    Yields
    ------
    The items of ``iterable``, unchanged.
    """
    if not enabled(show):
        yield from iterable
        return
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    bar = _bar(total=total, desc=desc, leave=False)
    try:
        for item in iterable:
            yield item
            bar.update(1)
    finally:
        bar.close()


class Stages:
    """A bar over the named stages of one job; a no-op when bars are off.

    Examples
    --------
    >>> with Stages(["read", "fit"], desc="fitting", show=False) as st:
    ...     st.advance("read")
    ...     st.advance("fit")
    >>> st.done
    ['read', 'fit']
    """

    def __init__(
        self, names: Sequence[str], *, desc: str | None = None, show: bool | None = None
    ) -> None:
        self.names = list(names)
        self.desc = desc
        self.done: list[str] = []
        self._bar = (
            _bar(total=len(self.names), desc=desc, leave=False)
            if show is not False and enabled(show)
            else None
        )

    def advance(self, name: str) -> None:
        """Mark stage ``name`` finished and show the next one's name."""
        self.done.append(name)
        if self._bar is not None:
            following = self.names[len(self.done)] if len(self.done) < len(self.names) else "done"
            self._bar.set_postfix_str(following, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        """Close the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Stages:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
