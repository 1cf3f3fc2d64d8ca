"""One catalog of GPUs, models and API prices, every number with its source.

Read by the simulator (step-time defaults, KV capacity), the cost model and the load tests.
A scenario may add entries or override fields under its `catalog:` key.
"""

from llmplan.catalog.catalog import (
    Catalog,
    Checkpoint,
    CloudModelSpec,
    GpuSpec,
    ModelSpec,
    builtin_catalog,
)
from llmplan.catalog.staleness import STALE_AFTER_DAYS, is_stale, stale_prices

__all__ = ["STALE_AFTER_DAYS", "Catalog", "Checkpoint", "CloudModelSpec", "GpuSpec", "ModelSpec",
           "builtin_catalog", "is_stale", "stale_prices"]
