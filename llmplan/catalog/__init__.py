"""One catalog of GPUs, models and API prices, every number with its source.

Read by the simulator (step-time defaults, KV capacity), the cost model and the load tests.
A scenario may add entries or override fields under its `catalog:` key.
"""

from llmplan.catalog.catalog import (
    BEDROCK_GLOBAL,
    BedrockRouting,
    Catalog,
    Checkpoint,
    CloudModelSpec,
    GpuSpec,
    MeasuredLatency,
    ModelSpec,
    bedrock_profile_prefix,
    builtin_catalog,
)
from llmplan.catalog.staleness import STALE_AFTER_DAYS, is_stale, stale_prices

__all__ = ["BEDROCK_GLOBAL", "STALE_AFTER_DAYS", "BedrockRouting", "Catalog", "Checkpoint",
           "CloudModelSpec", "GpuSpec", "MeasuredLatency", "ModelSpec", "bedrock_profile_prefix",
           "builtin_catalog", "is_stale", "stale_prices"]
