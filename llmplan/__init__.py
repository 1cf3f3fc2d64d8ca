"""llm-deploy-planner: local GPUs, cloud APIs, or both, decided with evidence.

The Python API (see `llmplan.api`): `load_scenario`, `simulate`, `simulate_only` and
`recommend` return typed results (`llmplan.results`). The names load on first use, so
`import llmplan` stays cheap (and safe inside a Locust process).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["load_scenario", "recommend", "simulate", "simulate_only"]

if TYPE_CHECKING:
    from llmplan.api import load_scenario, recommend, simulate, simulate_only


def __getattr__(name: str) -> Any:
    if name in __all__:
        from llmplan import api

        return getattr(api, name)
    raise AttributeError(f"module 'llmplan' has no attribute {name!r}")
