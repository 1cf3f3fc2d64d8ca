"""Typed results: what a simulation produces and what the decision adds (result.json).

`simulation.py` holds the per-deployment figures, `decision.py` cost, feasibility, the
recommendation and planning; `canonical.py` writes them as deterministic JSON (same scenario
and seed, same bytes). `llmplan schema --result` prints the JSON Schema of `Result`.
"""

from llmplan.results.canonical import dumps_canonical, write_result
from llmplan.results.decision import Candidate, CostSummary, Planning, Result
from llmplan.results.simulation import DeploymentResult, LatencyStats, SimulationResult

__all__ = ["Candidate", "CostSummary", "DeploymentResult", "LatencyStats", "Planning", "Result",
           "SimulationResult", "dumps_canonical", "write_result"]
