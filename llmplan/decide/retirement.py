"""Which hosted models are being retired, and which of them a scenario's candidates use.

Each cloud model's lifecycle is read from its catalog source (llmplan.catalog.lifecycle).
A model that is retired can no longer be called: a candidate using it is not feasible
(`llmplan.catalog.lifecycle.retired_reason`; the catalog's status decides, not the clock,
so a scenario's result does not change with the day it is run). A model that is shut down
within the cost horizon (economics.amortisation_months from today) is priced for months it
cannot be called, so simulate names it next to the out-of-date prices.
"""

from __future__ import annotations

import calendar
import datetime

from llmplan.catalog.lifecycle import lifecycle
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment


def months_later(day: datetime.date, months: int) -> datetime.date:
    """`day` moved `months` calendar months on (the 31st becomes the month's last day)."""
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return day.replace(year=year, month=month,
                       day=min(day.day, calendar.monthrange(year, month)[1]))


def retiring_cloud_models(loaded: LoadedScenario, today: datetime.date) -> list[str]:
    """One line per cloud model the scenario's candidates use that is retired, deprecated,
    or shut down within the cost horizon (economics.amortisation_months from `today`)."""
    return [line for _users, line in _retiring(loaded, today)]


def retiring_under(loaded: LoadedScenario, today: datetime.date,
                   deployment: str | None) -> list[str]:
    """The lines of `retiring_cloud_models` for the models `deployment` uses (the
    recommendation's risk: its API part may not be callable for the whole horizon)."""
    return [line for users, line in _retiring(loaded, today) if deployment in users]


def _retiring(loaded: LoadedScenario, today: datetime.date) -> list[tuple[list[str], str]]:
    """Each retiring model's users and its line."""
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
        if life.status == "retired":
            what = (f"retired{f' on {when}' if when else ''}: its prices are for a model "
                    f"that can no longer be called")
        elif life.retired_on(today):
            what = (f"the provider's shutdown date {when} has passed: it may no longer be "
                    f"callable, though the catalog still lists it as {life.status}; check "
                    f"before relying on it")
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
        lines.append((names, f"cloud model {model} (used by {', '.join(names)}): "
                             f"{what}{successor}"))
    return lines
