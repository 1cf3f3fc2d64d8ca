"""Which hosted models are being retired, and which of them a scenario's candidates use.

The catalog keeps each cloud model's lifecycle in the source of its model id
(`sources.model_id`, the convention cloud_models.yaml states at its top): "STATUS: CURRENT",
"STATUS: DEPRECATED" with the shutdown date, or "STATUS: RETIRED"; a current entry may carry
the provider's scheduled `deprecation_date` in its notes. A model that is shut down within
the cost horizon (economics.amortisation_months from today) is priced for months it cannot
be called, so simulate names it next to the out-of-date prices.
"""

from __future__ import annotations

import calendar
import datetime
import re
from dataclasses import dataclass
from typing import Literal

from llmplan.catalog import CloudModelSpec
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment

Status = Literal["current", "deprecated", "retired"]

_STATUS = re.compile(r"STATUS:\s*(CURRENT|DEPRECATED|RETIRED)\b(.*?)(?=\s(?:Lifecycle|Notes):|$)",
                     re.DOTALL)
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_SCHEDULED = re.compile(r"deprecation_date (\d{4}-\d{2}-\d{2})")
_SUCCESSOR = re.compile(r"successor (?!of\b)([A-Za-z0-9][\w.-]*\w)")


@dataclass(frozen=True)
class Lifecycle:
    """A cloud model's status as its catalog source states it."""

    status: Status | None
    """None: the source states none (an entry a scenario added, say)."""
    shutdown: datetime.date | None
    """The date the provider stops serving it (deprecated), stopped (retired), or has
    scheduled (current); None when the source gives none."""
    successor: str | None
    """The model the source names as its replacement."""

    def retired_on(self, today: datetime.date) -> bool:
        """Whether it can no longer be called on `today` (as the catalog knows it)."""
        return self.status == "retired" or (self.shutdown is not None
                                            and self.shutdown <= today)


def lifecycle(model: CloudModelSpec) -> Lifecycle:
    """The lifecycle recorded in `model`'s model_id source."""
    text = model.sources.get("model_id", "")
    found = _STATUS.search(text)
    if found is None:
        return Lifecycle(None, None, None)
    status: Status = "current" if found[1] == "CURRENT" else \
        "deprecated" if found[1] == "DEPRECATED" else "retired"
    stated, scheduled = _DATE.search(found[2]), _SCHEDULED.search(text)
    day = stated[0] if stated else scheduled[1] if scheduled else None
    shutdown = datetime.date.fromisoformat(day) if day is not None else None
    successor = _SUCCESSOR.search(text)
    return Lifecycle(status, shutdown, successor[1] if successor else None)


def months_later(day: datetime.date, months: int) -> datetime.date:
    """`day` moved `months` calendar months on (the 31st becomes the month's last day)."""
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return day.replace(year=year, month=month,
                       day=min(day.day, calendar.monthrange(year, month)[1]))


def retiring_cloud_models(loaded: LoadedScenario, today: datetime.date) -> list[str]:
    """One line per cloud model the scenario's candidates use that is retired, deprecated,
    or shut down within the cost horizon (economics.amortisation_months from `today`)."""
    scenario, catalog = loaded.scenario, loaded.catalog
    months = scenario.economics.amortisation_months
    horizon = months_later(today, months)
    users: dict[str, list[str]] = {}
    for name, dep in scenario.deployments.items():
        if isinstance(dep, CloudDeployment):
            users.setdefault(dep.model, []).append(name)
    for name, dep in scenario.deployments.items():
        if isinstance(dep, HybridDeployment):
            cloud = scenario.deployments[dep.cloud]
            if isinstance(cloud, CloudDeployment):
                users.setdefault(cloud.model, []).append(name)
    lines = []
    for model, names in users.items():
        spec = catalog.cloud_models.get(model)
        if spec is None:
            continue
        life = lifecycle(spec)
        when = life.shutdown.isoformat() if life.shutdown is not None else None
        if life.retired_on(today):
            what = (f"retired{f' on {when}' if when else ''}: its prices are for a model "
                    f"that can no longer be called")
        elif life.shutdown is not None and life.shutdown <= horizon:
            what = (f"{'deprecated, ' if life.status == 'deprecated' else ''}the provider "
                    f"shuts it down on {when}, within the {months}-month cost horizon "
                    f"(economics.amortisation_months): its prices stop applying then")
        elif life.status == "deprecated":
            what = (f"deprecated, shut down on {when} (after the {months}-month cost horizon)"
                    if when else "deprecated (the catalog gives no shutdown date)")
        else:
            continue
        successor = (f"; price its successor {life.successor}"
                     if life.successor in catalog.cloud_models else "")
        lines.append(f"cloud model {model} (used by {', '.join(names)}): {what}{successor}")
    return lines
