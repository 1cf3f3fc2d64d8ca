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


def test_prices_a_scenario_gives_are_its_own_and_not_called_old() -> None:
    """A scenario that sets every price of a GPU or cloud model it uses gets no 'prices are
    N days old' line for them; one that sets some hears which are still the catalog's; one
    that dates its own prices is judged by its date."""
    from llmplan.pipeline import used_stale_prices
    from llmplan.scenario.loader import load_scenario_text

    base = """
duration: 60
traffic: {kind: poisson, rate_per_s: 1}
tasks: [{name: chat, prompt_tokens: {kind: fixed, tokens: 100},
         output_tokens: {kind: fixed, tokens: 50}}]
deployments:
  gpu: {kind: local, gpu: H100-SXM, model: Llama-3.1-8B, replicas: 1}
  api: {kind: cloud, model: gpt-4o}
catalog:
"""
    today = datetime.date(2030, 1, 1)       # every catalog price is old by then
    gpu_prices = {"purchase_usd": 25000, "rental_usd_per_gpu_hour": 2.0,
                  "reserved_usd_per_gpu_hour": 1.5}
    api_prices = {"input_usd_per_mtok": 2.0, "output_usd_per_mtok": 8.0,
                  "cached_input_usd_per_mtok": 1.0}

    def stale(catalog: dict[str, object]) -> list[str]:
        import json
        text = base + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in catalog.items())
        return used_stale_prices(load_scenario_text(text), today)

    untouched = stale({"gpus": {"L4": {"purchase_usd": 2000}}})
    assert [line.split(":")[0] for line in untouched] == ["GPU H100-SXM", "cloud model gpt-4o"]
    assert stale({"gpus": {"H100-SXM": gpu_prices},
                  "cloud_models": {"gpt-4o": api_prices}}) == []
    some = stale({"gpus": {"H100-SXM": {"purchase_usd": 25000}},
                  "cloud_models": {"gpt-4o": api_prices}})
    assert len(some) == 1 and some[0].startswith(
        "GPU H100-SXM: prices (rental_usd_per_gpu_hour, reserved_usd_per_gpu_hour) as of ")
    dated = stale({"gpus": {"H100-SXM": {**gpu_prices, "prices_as_of": "2026-01-01"}},
                   "cloud_models": {"gpt-4o": api_prices}})
    assert dated == ["GPU H100-SXM: prices as of 2026-01-01 are 1461 days old (over 180); "
                     "re-check them"]
