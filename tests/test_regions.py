"""ONS region codes and names: normalisation, England and Wales."""

from __future__ import annotations

import pytest

from excessmort.regions import (
    ENGLAND_CODE,
    REGIONS,
    WALES_CODE,
    is_england,
    is_english_region,
    normalise_region,
    region_name,
    region_slug,
)


def test_nine_regions_in_code_order() -> None:
    assert list(REGIONS) == [f"E1200000{i}" for i in range(1, 10)]


@pytest.mark.parametrize("code", sorted(REGIONS))
def test_every_code_maps_to_itself(code: str) -> None:
    # Regression: the key once dropped digits, which sent every code to E12000009.
    assert normalise_region(code) == code
    assert normalise_region(code.lower()) == code
    assert normalise_region(f" {code} ") == code
    assert normalise_region(REGIONS[code]) == code
    assert normalise_region(REGIONS[code].upper()) == code


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("East", "E12000006"),  # ONS workbooks and files
        ("east of england", "E12000006"),
        ("Yorkshire and The Humber", "E12000003"),
        ("Yorkshire & the Humber", "E12000003"),
        ("yorkshire-and-the-humber", "E12000003"),
        ("south west", "E12000009"),
        ("North-East", "E12000001"),
    ],
)
def test_names_are_normalised(name: str, code: str) -> None:
    assert normalise_region(name) == code


@pytest.mark.parametrize(
    "value", ["E12000010", "E1200000", "E", "Scotland", "England", "", "12000001"]
)
def test_not_regions(value: str) -> None:
    assert normalise_region(value) is None


def test_wales_only_when_allowed() -> None:
    assert normalise_region("Wales") is None and normalise_region(WALES_CODE) is None
    assert normalise_region("wales", allow_wales=True) == WALES_CODE
    assert normalise_region(WALES_CODE, allow_wales=True) == WALES_CODE
    assert not is_english_region(WALES_CODE)
    assert all(is_english_region(c) for c in REGIONS)
    assert not is_english_region(ENGLAND_CODE) and not is_english_region(None)


def test_england_is_recognised_to_be_refused() -> None:
    assert is_england("E92000001") and is_england("England") and is_england(" ENGLAND ")
    assert not is_england("England and Wales") and not is_england("E12000001")


def test_names_and_slugs() -> None:
    assert region_name("E12000007") == "London"
    assert region_name(ENGLAND_CODE) == "England" and region_name(WALES_CODE) == "Wales"
    assert region_name("X") == "X"
    assert region_slug("E12000003") == "yorkshire-and-the-humber"
    assert len({region_slug(c) for c in REGIONS}) == 9
