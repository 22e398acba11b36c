"""`ratio_note`: a null ratio says why, and a ratio resting on a small share of the data says so."""

from __future__ import annotations

import dataclasses

from services.api.sufficiency_report import ratio_note
from tests.unit.domain.test_sufficiency import FY2023, depot_totals
from vpp.domain.sufficiency import RATIO_DECIMALS, compute_sufficiency, rounded


def test_null_ratio_names_what_is_missing_and_where_figures_are() -> None:
    nothing = compute_sufficiency([], None, 0.0, 0.45, 0, 96)
    note = ratio_note(
        nothing, whose="region 'kawasaki'", slots_present=0, slots_expected=96, member_sites=2,
        declared_elsewhere=["leading-area"],
    )  # fmt: skip
    assert note is not None
    assert note.startswith("no demand in this period, so no ratio: 0 of 96 expected metered site-slots")
    assert note.endswith("declared figures for this period exist for region(s) leading-area")
    empty = ratio_note(nothing, whose="region 'x'", slots_present=0, slots_expected=0, member_sites=0)
    assert empty is not None
    assert "region 'x' has no member sites" in empty


def test_partial_metered_and_mostly_declared_ratios_are_flagged() -> None:
    # Three slots of one depot where 100 were expected: 3 % of a period.
    partial = compute_sufficiency([depot_totals()], None, 0.0, 0.5, 3, 100)
    note = ratio_note(partial, whose="region 'kawasaki'", slots_present=3, slots_expected=100, member_sites=1)
    assert note == (
        "metered data cover only 3.0% of the expected site-slots (1 site(s)): "
        "the ratio describes the slots present, not the whole period"
    )
    # Figures declared net of the metered sites may be added to them (a mixed ratio, mostly declared).
    net = dataclasses.replace(FY2023, includes_metered_sites=False)
    mixed = compute_sufficiency([depot_totals()], net, 0.0, 0.45, 3, 100)
    mixed_note = ratio_note(mixed, whose="region 'leading-area'", slots_present=3, slots_expected=100, member_sites=1)
    assert mixed_note is not None
    assert mixed_note.startswith("mostly declared (published) figures")
    complete = compute_sufficiency([depot_totals()], None, 0.0, 0.5, 3, 3)
    assert ratio_note(complete, whose="region 'k'", slots_present=3, slots_expected=3, member_sites=1) is None


def test_rounding_is_for_display_only() -> None:
    assert rounded(0.46257698749999996, RATIO_DECIMALS) == 0.4626
    assert rounded(46.257698749999996, RATIO_DECIMALS - 2) == 46.26
    assert rounded(None, RATIO_DECIMALS) is None
