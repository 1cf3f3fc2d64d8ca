"""Simulator speed: simulated requests per wall-clock second on the standard scenario.

    python benchmarks/sim_throughput.py [SCENARIO] [--router round_robin|least_outstanding]

Times the core simulation (SimPy arrivals + replicas) of the first deployment, then the whole
`simulate_scenario` (stream generation and metrics included). Last line:
sim_requests_per_wall_s=<number>.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from llmplan.scenario import load_scenario
from llmplan.traffic import build_request_stream
from sim.engine import simulate_deployment
from sim.run import simulate_scenario

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", nargs="?", default=str(HERE / "standard-day.yaml"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    loaded = load_scenario(args.scenario)
    scenario = loaded.scenario
    stream = build_request_stream(scenario)
    name, dep = next(iter(scenario.deployments.items()))
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        run = simulate_deployment(name, dep, loaded.catalog, stream, scenario.duration_s)
        best = min(best, time.perf_counter() - start)
    t0 = time.perf_counter()
    result = simulate_scenario(loaded)
    whole = time.perf_counter() - t0
    summary = result["deployments"][name]
    print(f"machine: {platform.machine()} {platform.processor() or ''} "
          f"python {platform.python_version()}")
    print(f"scenario: {args.scenario}: {len(stream):,} requests, {dep.replicas} replicas, "
          f"router {dep.router}, busy {summary['utilisation']['gpu_busy_fraction']:.2f}, "
          f"KV {summary['utilisation']['kv_cache_mean_fraction']:.2f}, "
          f"preemptions {summary['requests']['preemptions']}, steps {sum(1 for _ in [run])}")
    print(f"end_to_end_requests_per_wall_s={len(stream) / whole:.0f}")
    print(f"sim_requests_per_wall_s={len(stream) / best:.0f}")


if __name__ == "__main__":
    main()
