"""Errors and warnings raised by excessmort.

Input errors carry the offending ``column``, ``value`` and ``row`` so that callers (and the CLI) can
point a person at the exact cell to fix.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AreaWarning",
    "ConvergenceWarning",
    "DispersionWarning",
    "ExcessmortError",
    "InputError",
    "MissingDataWarning",
    "ModelNoteWarning",
    "NotFittedError",
    "ReleaseError",
]


class ExcessmortError(Exception):
    """Base class of every error raised by excessmort."""


class InputError(ExcessmortError, ValueError):
    """Bad input data or options.

    Parameters
    ----------
    message : str
        What is wrong and what to do, naming the column, the value and the row.
    column, value, row : optional
        The offending column name, value and row label (position in the user's frame, or ``None``
        when the problem is not about one row).
    """

    def __init__(
        self, message: str, *, column: str | None = None, value: Any = None, row: Any = None
    ) -> None:
        super().__init__(message)
        self.column = column
        self.value = value
        self.row = row


class NotFittedError(ExcessmortError):
    """A result was asked for before the model was fitted."""


class ReleaseError(ExcessmortError):
    """A release step failed or was taken out of order."""


class ConvergenceWarning(UserWarning):
    """One or more series did not converge; the message names their strata."""


class DispersionWarning(UserWarning):
    """Estimated dispersion is implausible (for example phi > 10 or phi < 0.2)."""


class MissingDataWarning(UserWarning):
    """Missing weeks made a figure NaN (an aggregate or a window); the message names series and weeks."""


class ModelNoteWarning(UserWarning):
    """A note about the model fitted (terms dropped or merged), given once per fit."""


class AreaWarning(UserWarning):
    """Areas that overlap in one frame (England beside its regions)."""
