"""A goodput that misses its SLO never reads as the required share."""

from __future__ import annotations

from llmplan.results.simulation import SloOutcome


def _slo(share: float | None, required: float = 0.95) -> SloOutcome:
    met = share is not None and share >= required
    return SloOutcome(goodput_fraction=share, goodput_requests_per_s=1.0,
                      min_goodput_fraction=required, met=met)


def test_a_narrow_miss_shows_the_decimals_that_make_it_a_miss() -> None:
    assert _slo(0.9496).goodput_shown() == "94.96%"       # not "95.0%"
    assert _slo(0.94996).goodput_shown() == "94.996%"
    assert _slo(0.9499996).goodput_shown() == "94.9999%"   # at most four decimals
    assert _slo(0.90).goodput_shown() == "90.0%"


def test_a_met_or_missing_goodput_keeps_one_decimal() -> None:
    assert _slo(0.95).goodput_shown() == "95.0%"
    assert _slo(0.99996).goodput_shown() == "100.0%"
    assert _slo(None).goodput_shown() == "-"


def test_the_required_share_keeps_its_tenth() -> None:
    assert _slo(0.9, required=0.955).required_shown() == "95.5%"
    assert _slo(0.9, required=0.95).required_shown() == "95%"
