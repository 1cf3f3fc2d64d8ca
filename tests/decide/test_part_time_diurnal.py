"""A 24-hour traffic curve costed over part of the month's hours is said to be ambiguous."""

from __future__ import annotations

import pytest
from helpers import scenario_from

from llmplan.pipeline import diurnal_part_time

DIURNAL = """
    seed: 1
    duration: 4h
    traffic: {kind: diurnal, mean_rate_per_s: 3, peak_to_mean: 2}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 200},
             output_tokens: {kind: fixed, tokens: 50}}]
    economics: {hours_per_month: HOURS}
    deployments:
      api: {kind: cloud, model: gpt-4o-mini}
"""


@pytest.mark.parametrize(("hours", "noted"), [(220, True), (730, False), (720, False)])
def test_a_diurnal_curve_costed_over_fewer_hours_is_noted(hours: int, noted: bool) -> None:
    """220 hours at the day's mean of 3/s is 2.38 M requests a month; traffic that only
    comes in working hours comes at their rate, which the curve puts above the mean."""
    notes = diurnal_part_time(scenario_from(DIURNAL.replace("HOURS", str(hours))))
    assert bool(notes) is noted
    if noted:
        assert "hours_per_month is 220" in notes[0] and "day's mean rate (3/s)" in notes[0]


def test_steady_traffic_over_fewer_hours_is_not_ambiguous() -> None:
    text = DIURNAL.replace("HOURS", "220").replace(
        "{kind: diurnal, mean_rate_per_s: 3, peak_to_mean: 2}", "{kind: poisson, rate_per_s: 3}")
    assert diurnal_part_time(scenario_from(text)) == []
