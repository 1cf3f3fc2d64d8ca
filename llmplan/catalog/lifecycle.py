"""A hosted model's lifecycle, as its catalog source states it.

The catalog keeps each cloud model's lifecycle in the source of its model id
(`sources.model_id`, the convention cloud_models.yaml states at its top): "STATUS: CURRENT",
"STATUS: DEPRECATED" with the shutdown date, or "STATUS: RETIRED"; a current entry may carry
the provider's scheduled `deprecation_date` in its notes.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Literal

from llmplan.catalog.catalog import CloudModelSpec

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


def retired_reason(name: str, models: dict[str, CloudModelSpec]) -> str | None:
    """Why the cloud model `name` cannot be called (None: it can, as far as the catalog
    says): its catalog status is RETIRED. The status decides, not today's date, so a
    scenario's answer does not change with the day it is run; a shutdown date passing is
    a note of `llmplan simulate` until the catalog says RETIRED."""
    spec = models.get(name)
    if spec is None:
        return None
    life = lifecycle(spec)
    if life.status != "retired":
        return None
    when = f" on {life.shutdown.isoformat()}" if life.shutdown is not None else ""
    successor = (f"; expected a current model such as its successor {life.successor}"
                 if life.successor in models else "; expected a current model")
    return f"cloud model {name} was retired{when} and can no longer be called{successor}"
