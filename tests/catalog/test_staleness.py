"""Prices older than 180 days are named, in the order asked, and only those."""

from __future__ import annotations

import datetime

from llmplan.catalog import STALE_AFTER_DAYS, Catalog, builtin_catalog, is_stale, stale_prices

TODAY = datetime.date(2026, 12, 1)


def _catalog_with_dates(gpu_dates: dict[str, datetime.date],
                        cloud_dates: dict[str, datetime.date]) -> Catalog:
    base = builtin_catalog()
    return base.merged({"gpus": {k: {"prices_as_of": d} for k, d in gpu_dates.items()},
                        "cloud_models": {k: {"prices_as_of": d}
                                         for k, d in cloud_dates.items()}}, "test")


def test_the_rule_is_180_days() -> None:
    assert STALE_AFTER_DAYS == 180
    assert not is_stale(TODAY - datetime.timedelta(days=180), TODAY)
    assert is_stale(TODAY - datetime.timedelta(days=181), TODAY)
    assert not is_stale(TODAY, TODAY)


def test_names_exactly_the_stale_entries_in_the_order_given() -> None:
    catalog = _catalog_with_dates(
        {"H100-SXM": datetime.date(2026, 6, 4),      # 180 days: still fresh
         "L4": datetime.date(2026, 6, 3),            # 181 days: stale
         "B200": datetime.date(2025, 12, 1)},        # 365 days
        {"gpt-4o": datetime.date(2026, 11, 20),
         "claude-opus-5.5": datetime.date(2026, 1, 1)})
    lines = stale_prices(catalog, ["gpt-4o", "B200", "H100-SXM", "claude-opus-5.5", "L4",
                                   "Llama-3.1-8B", "no-such-entry", "B200"], TODAY)
    assert lines == [
        "GPU B200: prices as of 2025-12-01 are 365 days old (over 180); re-check them",
        "cloud model claude-opus-5.5: prices as of 2026-01-01 are 334 days old (over 180); "
        "re-check them",
        "GPU L4: prices as of 2026-06-03 are 181 days old (over 180); re-check them",
    ]
    assert stale_prices(catalog, ["gpt-4o", "H100-SXM"], TODAY) == []
    assert len(stale_prices(catalog, ["L4"], TODAY, max_age_days=400)) == 0


def test_none_checks_every_priced_entry() -> None:
    catalog = builtin_catalog()
    everything = stale_prices(catalog, None, TODAY)
    named = stale_prices(catalog, list(catalog.gpus) + list(catalog.cloud_models), TODAY)
    assert everything == named
    far_future = stale_prices(catalog, None, TODAY + datetime.timedelta(days=3650))
    assert len(far_future) == len(catalog.gpus) + len(catalog.cloud_models)
    assert stale_prices(catalog, None, datetime.date(2025, 1, 1)) == []
