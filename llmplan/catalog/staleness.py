"""Which catalog prices are too old to trust without a second look.

Every GPU and cloud-model entry carries `prices_as_of`; prices drift (GPU rental rates move
month to month, API list prices change with each model generation), so a report that uses a
price older than `STALE_AFTER_DAYS` says so.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from llmplan.catalog.catalog import Catalog

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
            if is_stale(entry.prices_as_of, today, max_age_days=max_age_days):
                age_days = (today - entry.prices_as_of).days
                lines.append(f"{kind} {name}: prices as of {entry.prices_as_of.isoformat()} "
                             f"are {age_days} days old (over {max_age_days}); re-check them")
    return lines
