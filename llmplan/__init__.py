"""llm-deploy-planner: local GPUs, cloud APIs, or both, decided with evidence.

Shared layer: the scenario schema (`llmplan.scenario`), the catalog of GPUs and models
(`llmplan.catalog`), traffic generation (`llmplan.traffic`, free of SimPy so the load tests
replay the very same arrival stream), result writing and the `llmplan` CLI.
"""

__version__ = "0.1.0"
