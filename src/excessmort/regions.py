"""ONS region codes E12000001..E12000009 and their names; England is their sum."""

from __future__ import annotations

import re

__all__ = [
    "ENGLAND_CODE",
    "ENGLAND_NAME",
    "REGIONS",
    "WALES_CODE",
    "is_england",
    "is_english_region",
    "normalise_region",
    "region_name",
    "region_slug",
]

REGIONS: dict[str, str] = {
    "E12000001": "North East",
    "E12000002": "North West",
    "E12000003": "Yorkshire and The Humber",
    "E12000004": "East Midlands",
    "E12000005": "West Midlands",
    "E12000006": "East of England",
    "E12000007": "London",
    "E12000008": "South East",
    "E12000009": "South West",
}
ENGLAND_CODE = "E92000001"
ENGLAND_NAME = "England"
WALES_CODE = "W92000004"
WALES_NAME = "Wales"


def _key(text: str) -> str:
    # Letters and digits only: case, spaces and punctuation are ignored, but the digits of an ONS
    # code are kept (stripping them would map every E12 code onto one region).
    return re.sub(r"[^a-z0-9]", "", text.lower().replace("&", "and"))


_ALIASES: dict[str, str] = {_key(name): code for code, name in REGIONS.items()}
_ALIASES.update(
    {
        _key("East"): "E12000006",  # ONS workbooks say "East"
        _key("Yorkshire and the Humber"): "E12000003",
        _key("Yorkshire & Humber"): "E12000003",
        _key("Yorkshire"): "E12000003",
    }
)
_ALIASES.update({_key(code): code for code in REGIONS})
_OUTSIDE: dict[str, str] = {_key(WALES_CODE): WALES_CODE, _key(WALES_NAME): WALES_CODE}


def normalise_region(value: object, *, allow_wales: bool = False) -> str | None:
    """Return the ONS code for a region code or name, or ``None`` when it is not a region.

    Parameters
    ----------
    value : object
        A code such as ``"E12000007"`` or a name such as ``"London"`` or ``"East"`` (case, spaces
        and punctuation are ignored).
    allow_wales : bool
        Accept Wales (``W92000004``), an area outside England that is never summed into England.

    Returns
    -------
    str or None

    Examples
    --------
    >>> normalise_region("east")
    'E12000006'
    >>> normalise_region("Scotland") is None
    True
    """
    key = _key(str(value))
    if key in _ALIASES:
        return _ALIASES[key]
    if allow_wales and key in _OUTSIDE:
        return _OUTSIDE[key]
    return None


def is_english_region(code: object) -> bool:
    """Whether ``code`` is one of the nine English regions E12000001..E12000009.

    Wales (``W92000004``) is not: it may be kept as an area of its own but is never summed into
    England.

    Examples
    --------
    >>> is_english_region("E12000007"), is_english_region("W92000004")
    (True, False)
    """
    return isinstance(code, str) and code in REGIONS


def is_england(value: object) -> bool:
    """Whether ``value`` names England itself (``E92000001`` or ``"England"``).

    England is the sum of the nine regions: it is derived, never read.

    Examples
    --------
    >>> is_england("E92000001"), is_england(" england "), is_england("England and Wales")
    (True, True, False)
    """
    return _key(str(value)) in (_key(ENGLAND_CODE), _key(ENGLAND_NAME))


def region_name(code: str) -> str:
    """Name of a region (or England / Wales) from its ONS code; unknown codes come back as is."""
    if code == ENGLAND_CODE:
        return ENGLAND_NAME
    if code == WALES_CODE:
        return WALES_NAME
    return REGIONS.get(code, code)


def region_slug(code: str) -> str:
    """Folder-safe slug of a region name, e.g. ``'yorkshire-and-the-humber'``."""
    return re.sub(r"[^a-z0-9]+", "-", region_name(code).lower()).strip("-")
