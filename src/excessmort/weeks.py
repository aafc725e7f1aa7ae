"""Weeks: week-ending dates, ISO weeks and week 53, the weekly grid, reference periods, bank holidays.

ONS registration weeks run Saturday to Friday and are named by the Friday they end on; ONS numbers
them by the ISO week of that Friday (2015 and 2020 have a week 53: the weeks ending 1 January 2016
and 1 January 2021).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "bank_holidays",
    "has_week_53",
    "iso_year_week",
    "reference_mask",
    "to_timestamp",
    "weekly_grid",
]


def to_timestamp(value: object) -> pd.Timestamp:
    """A date-like value (``'2019-12-31'``, ``2019``, date, Timestamp) as a midnight Timestamp.

    A bare year means 1 January of that year; use :func:`reference_bounds` for a year as a range.
    """
    if isinstance(value, int | np.integer):
        return pd.Timestamp(int(value), 1, 1)
    return pd.Timestamp(value).normalize()  # type: ignore[arg-type]


def reference_bounds(start: object, end: object) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Inclusive date bounds of a reference period, read by the one period parser
    (:func:`excessmort.periods.period_bounds`, calendar years): the first day of ``start`` and the
    last day of ``end``.

    A year may be an int or a four-digit string: ``("2015", "2019")`` is 2015-01-01..2019-12-31; a
    month, quarter or ISO week stands for its days (``("2015-01", "2019-12")`` is the same span).

    Examples
    --------
    >>> [str(d.date()) for d in reference_bounds("2015-01", 2019)]
    ['2015-01-01', '2019-12-31']
    """
    from .periods import period_bounds

    lo = period_bounds(start, calendar="calendar")[0]
    hi = period_bounds(end, calendar="calendar")[1]
    return lo, hi


def iso_year_week(
    dates: pd.DatetimeIndex | pd.Series | Iterable[object],
) -> tuple[np.ndarray, np.ndarray]:
    """ISO year and ISO week (1..53) of each date, as int64 arrays.

    Examples
    --------
    >>> y, w = iso_year_week(pd.to_datetime(["2016-01-01", "2021-01-01", "2021-01-08"]))
    >>> list(zip(y.tolist(), w.tolist()))
    [(2015, 53), (2020, 53), (2021, 1)]
    """
    values = dates if isinstance(dates, pd.Series | pd.DatetimeIndex) else list(dates)
    iso = pd.DatetimeIndex(pd.to_datetime(values)).isocalendar()
    return iso["year"].to_numpy(dtype=np.int64), iso["week"].to_numpy(dtype=np.int64)


def has_week_53(year: int) -> bool:
    """Whether ISO year ``year`` has a week 53 (28 December always lies in the last ISO week)."""
    return dt.date(year, 12, 28).isocalendar()[1] == 53


def weekly_grid(dates: Iterable[object]) -> pd.DatetimeIndex:
    """The regular 7-day grid from the first to the last of ``dates``.

    Raises
    ------
    ValueError
        When the dates do not share one weekday (they cannot lie on one weekly grid).
    """
    values = dates if isinstance(dates, pd.Series | pd.Index | np.ndarray) else list(dates)
    idx = pd.DatetimeIndex(
        pd.unique(np.asarray(pd.to_datetime(values), dtype="datetime64[ns]"))
    ).sort_values()
    if len(idx) == 0:
        return idx
    offsets = (idx - idx[0]).days
    bad = np.flatnonzero(offsets % 7 != 0)
    if bad.size:
        raise ValueError(
            f"dates are not on one weekly grid: {idx[bad[0]].date()} is not a whole number of "
            f"weeks after {idx[0].date()}"
        )
    return pd.date_range(idx[0], idx[-1], freq="7D")


def reference_mask(weeks: pd.DatetimeIndex, start: object, end: object) -> np.ndarray:
    """Boolean mask [T] of the weeks whose week-ending date lies in ``[start, end]`` (inclusive)."""
    lo, hi = reference_bounds(start, end)
    return np.asarray((weeks >= lo) & (weeks <= hi), dtype=bool)


#: The bank holidays used unless a country is named: England and Wales (ONS's registrations).
DEFAULT_COUNTRY = "GB-ENG"


def parse_country(country: object) -> tuple[str, str | None]:
    """``"GB-ENG"`` -> ("GB", "ENG"), ``"SE"`` -> ("SE", None), checked against the ``holidays``
    package (the closest code suggested).

    Raises
    ------
    ValueError
        (an :class:`~excessmort.exceptions.InputError`) for a country or subdivision the package
        does not know.

    Examples
    --------
    >>> parse_country("gb-eng"), parse_country("SE")
    (('GB', 'ENG'), ('SE', None))
    """
    import holidays
    from holidays.registry import EntityLoader

    from .exceptions import InputError

    text = str(country).strip().upper().replace("_", "-")
    code, _, subdiv = text.partition("-")
    # The codes list_supported_countries() keys, from the package's registry, and the
    # subdivisions of this one country: its dict would import every country's module (50 ms).
    supported = list(EntityLoader.get_country_codes(include_aliases=True))
    if code not in supported:
        from ._suggest import did_you_mean

        raise InputError(
            f"country {country!r} is not a country of the holidays package (ISO 3166 codes such "
            f"as 'SE', 'FR', 'GB-SCT'){did_you_mean(code, supported)}",
            column="country",
            value=country,
        )
    subdivisions = list(getattr(holidays, code).subdivisions)
    if subdiv and subdiv not in subdivisions:
        raise InputError(
            f"{code} has no subdivision {subdiv!r} in the holidays package; it has "
            f"{sorted(subdivisions)}",
            column="country",
            value=country,
        )
    return code, subdiv or None


@lru_cache(maxsize=64)
def _bank_holidays(
    first_year: int, last_year: int, country: str = DEFAULT_COUNTRY
) -> tuple[dt.date, ...]:
    """The holidays of ``country`` in the years, from the ``holidays`` package or, for a country
    and years asked before with the same version of the package, from the cache file of
    :func:`_holiday_cache` (importing the package loads every country's module: about 0.12 s of
    each ``excessmort run``)."""
    cache = _holiday_cache()
    key = f"{str(country).strip().upper()}:{first_year}:{last_year}"
    known = cache.read() if cache is not None else {}
    if key in known:
        return tuple(dt.date.fromisoformat(day) for day in known[key])
    import holidays

    code, subdiv = parse_country(country)
    years = range(first_year, last_year + 1)
    cal = holidays.country_holidays(code, subdiv=subdiv, years=years)
    days = tuple(sorted(cal.keys()))
    if cache is not None:
        cache.write({**known, key: [day.isoformat() for day in days]})
    return days


class _HolidayCache:
    """A JSON file of holiday dates by ``COUNTRY:first:last``, for one version of ``holidays``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, list[str]]:
        import json

        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, unreadable or damaged: the package is asked
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            k: v
            for k, v in data.items()
            if isinstance(k, str) and isinstance(v, list) and all(isinstance(d, str) for d in v)
        }

    def write(self, data: dict[str, list[str]]) -> None:
        import json
        import os
        import tempfile

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".holidays-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(data, out, sort_keys=True)
                os.replace(tmp, self.path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError:  # a read-only home: the package is asked again next time
            pass


def _holiday_cache() -> _HolidayCache | None:
    """The holiday cache file: ``holidays-<version>.json`` in ``EXCESSMORT_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/excessmort``, else ``~/.cache/excessmort``; ``EXCESSMORT_CACHE_DIR=0`` (or
    an unknown package version) turns it off. A new version of ``holidays`` starts a new file."""
    import os

    import holidays  # (its countries load on first use, not on this import)

    setting = os.environ.get("EXCESSMORT_CACHE_DIR", "").strip()
    release = str(getattr(holidays, "__version__", "")).strip()
    if setting == "0" or not release:
        return None
    if setting:
        root = Path(setting)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "excessmort"
    return _HolidayCache(root / f"holidays-{release}.json")


def bank_holidays(
    first_year: int, last_year: int, country: str = DEFAULT_COUNTRY
) -> pd.DatetimeIndex:
    """Public holidays of ``country`` (default England and Wales, ``"GB-ENG"``) from the
    ``holidays`` package, ``first_year..last_year``; ``country`` is an ISO 3166 code with an
    optional subdivision (``"SE"``, ``"GB-SCT"``, ``"DE-BY"``).

    Examples
    --------
    >>> bh = bank_holidays(2020, 2020)
    >>> pd.Timestamp("2020-05-08") in bh  # VE Day: the early-May bank holiday moved to a Friday
    True
    >>> pd.Timestamp("2020-06-06") in bank_holidays(2020, 2020, "SE")  # Sweden's national day
    True
    """
    return pd.DatetimeIndex(pd.to_datetime(list(_bank_holidays(first_year, last_year, country))))
