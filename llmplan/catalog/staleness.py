"""Which catalog prices are too old to trust without a second look.

Every GPU and cloud-model entry carries `prices_as_of`; prices drift (GPU rental rates move
month to month, API list prices change with each model generation), so a report that uses a
price older than `STALE_AFTER_DAYS` says so.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from llmplan.catalog.catalog import SCENARIO_SOURCE, Catalog, CloudModelSpec, GpuSpec

#: A price older than this many days is reported as stale (issue 10: 180 days).
STALE_AFTER_DAYS = 180


def is_stale(prices_as_of: datetime.date, today: datetime.date, *,
             max_age_days: int = STALE_AFTER_DAYS) -> bool:
    """Whether a price dated `prices_as_of` is more than `max_age_days` old on `today`."""
    return (today - prices_as_of).days > max_age_days


def stale_prices(catalog: Catalog, names: Iterable[str] | None, today: datetime.date, *,
                 max_age_days: int = STALE_AFTER_DAYS) -> list[str]:
    """One line per GPU or cloud model among `names` whose prices are older than
    `max_age_days` on `today`, in the order given (None: every priced entry).

    Names that are neither a GPU nor a cloud model (open-weights models carry no price) are
    skipped; an id that is both is checked as both.
    """
    wanted = list(catalog.gpus) + list(catalog.cloud_models) if names is None else list(names)
    lines: list[str] = []
    for name in dict.fromkeys(wanted):
        for kind, entries in (("GPU", catalog.gpus), ("cloud model", catalog.cloud_models)):
            entry = entries.get(name)
            if entry is None:
                continue
            if not is_stale(entry.prices_as_of, today, max_age_days=max_age_days):
                continue
            prices = [field for field in type(entry).model_fields
                      if "_usd" in field and getattr(entry, field) is not None]
            dated = [field for field in prices if not _given_by_scenario(entry, field)]
            if not dated:
                continue          # the scenario gave every price: they are its own, today's
            which = "" if dated == prices else f" ({', '.join(dated)})"
            age_days = (today - entry.prices_as_of).days
            lines.append(f"{kind} {name}: prices{which} as of "
                         f"{entry.prices_as_of.isoformat()} are {age_days} days old (over "
                         f"{max_age_days}); re-check them")
    return lines


def _given_by_scenario(entry: GpuSpec | CloudModelSpec, field: str) -> bool:
    """Whether a scenario's `catalog:` section set `field` without dating it: the merge
    (Catalog.merged) sources such a field to the scenario, and a scenario that gives its own
    `prices_as_of` is judged by that date instead."""
    return entry.sources.get(field, "").startswith(SCENARIO_SOURCE) \
        and not entry.sources.get("prices_as_of", "").startswith(SCENARIO_SOURCE)
