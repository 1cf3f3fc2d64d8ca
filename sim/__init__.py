"""The simulator: vLLM-style continuous batching on GPU replicas, driven by SimPy.

Read in this order: steptime.py (how long one batch iteration takes), kvcache.py (how many
KV blocks fit), replica.py (the scheduler, jumping between batch changes in closed form),
reference.py (the same policy stepped one iteration at a time), router.py, engine.py (runs a
deployment against a request stream), metrics.py (what the run means).
"""

from sim.compiled import check_fresh
from sim.engine import DeploymentRun, simulate_deployment

check_fresh()

__all__ = ["DeploymentRun", "simulate_deployment"]
