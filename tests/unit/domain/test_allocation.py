"""Regional DR request allocation: proportional shares, caps with redistribution, shortfall."""

from __future__ import annotations

import pytest

from vpp.domain.allocation import SiteFlexibility, allocate_regional_request


def test_split_is_proportional_to_available_flexibility() -> None:
    sites = [SiteFlexibility("a", 10), SiteFlexibility("b", 20), SiteFlexibility("c", 30)]
    result = allocate_regional_request(30, sites)  # half of the 60 kW available, from everyone
    assert result.allocations_kw == pytest.approx({"a": 5.0, "b": 10.0, "c": 15.0})
    assert result.shortfall_kw == 0.0
    assert list(result.allocations_kw) == ["a", "b", "c"]


def test_capped_site_gives_its_excess_to_the_others_by_weight() -> None:
    # Shares by weight 1:1:2 of 100 kW are 25, 25, 50; "a" has only 10 kW, so 90 kW is shared
    # again between "b" and "c" 1:2 → 30 and 60.
    sites = [
        SiteFlexibility("a", 10, weight=1),
        SiteFlexibility("b", 100, weight=1),
        SiteFlexibility("c", 100, weight=2),
    ]
    result = allocate_regional_request(100, sites)
    assert result.allocations_kw == pytest.approx({"a": 10.0, "b": 30.0, "c": 60.0})
    assert result.allocated_kw == pytest.approx(100.0)
    assert result.shortfall_kw == 0.0


def test_redistribution_can_cap_a_second_site() -> None:
    # Round 1: 60 kW by 1:1:1 = 20 each; "a" (5) is full. Round 2: 55 kW by 1:1 = 27.5; "b" (12)
    # is full. Round 3: "c" takes the remaining 43 kW.
    sites = [
        SiteFlexibility("a", 5, weight=1),
        SiteFlexibility("b", 12, weight=1),
        SiteFlexibility("c", 100, weight=1),
    ]
    result = allocate_regional_request(60, sites)
    assert result.allocations_kw == pytest.approx({"a": 5.0, "b": 12.0, "c": 43.0})


def test_shortfall_when_the_region_has_too_little_flexibility() -> None:
    sites = [SiteFlexibility("a", 10), SiteFlexibility("b", 20)]
    result = allocate_regional_request(100, sites)
    assert result.allocations_kw == {"a": 10.0, "b": 20.0}
    assert result.shortfall_kw == pytest.approx(70.0)


def test_exactly_the_total_is_placed_without_shortfall() -> None:
    result = allocate_regional_request(30, [SiteFlexibility("a", 10), SiteFlexibility("b", 20)])
    assert result.allocations_kw == pytest.approx({"a": 10.0, "b": 20.0})
    assert result.shortfall_kw == 0.0


def test_zero_flexibility() -> None:
    none_left = allocate_regional_request(50, [SiteFlexibility("a", 0), SiteFlexibility("b", 0)])
    assert none_left.allocations_kw == {"a": 0.0, "b": 0.0}
    assert none_left.shortfall_kw == 50.0

    no_sites = allocate_regional_request(50, [])
    assert no_sites.allocations_kw == {}
    assert no_sites.shortfall_kw == 50.0

    nothing_asked = allocate_regional_request(0, [SiteFlexibility("a", 10)])
    assert nothing_asked.allocations_kw == {"a": 0.0}
    assert nothing_asked.shortfall_kw == 0.0


def test_zero_weight_site_is_not_called() -> None:
    sites = [SiteFlexibility("a", 50, weight=0), SiteFlexibility("b", 20)]
    result = allocate_regional_request(30, sites)
    assert result.allocations_kw == {"a": 0.0, "b": 20.0}
    assert result.shortfall_kw == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("requested_kw", "sites", "message"),
    [
        (-1.0, [SiteFlexibility("a", 10)], "requested_kw"),
        (float("nan"), [SiteFlexibility("a", 10)], "requested_kw"),
        (10.0, [SiteFlexibility("a", -5)], "available_kw"),
        (10.0, [SiteFlexibility("a", 5, weight=-1)], "weight"),
        (10.0, [SiteFlexibility("a", 5), SiteFlexibility("a", 6)], "duplicate"),
    ],
)
def test_bad_input_is_rejected(requested_kw: float, sites: list[SiteFlexibility], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        allocate_regional_request(requested_kw, sites)
