"""The simulator: vLLM-style continuous batching on GPU replicas, driven by SimPy.

Read in this order: serving.py (what a replica is given), replica.py (the scheduler,
jumping between batch changes in closed form), reference.py (the same policy stepped one
iteration at a time), router.py, fleet.py (replicas behind a router), fleet_control.py
(failures, autoscaling), cloud.py and ratelimit.py (APIs), hybrid.py, engine.py (runs a
deployment against a request stream), table.py and metrics.py (what the run means), run.py
(a scenario's deployments). Memory and step time come from llmplan.perf.

This folder is installed as `llmplan.sim` (llmplan/sim is a link to it).
"""

from llmplan.sim.compiled import check_fresh
from llmplan.sim.engine import DeploymentRun, simulate_deployment
from llmplan.sim.run import run_deployment, simulate_scenario

check_fresh()

__all__ = ["DeploymentRun", "run_deployment", "simulate_deployment", "simulate_scenario"]
