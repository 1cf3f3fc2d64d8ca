"""Simulator speed: simulated requests per wall-clock second on the standard scenario.

    python benchmarks/sim_throughput.py [SCENARIO] [--repeat N]

The standard scenario (benchmarks/standard-day.yaml) is a day of diurnal chat traffic,
512 prompt / 256 output tokens on average, on 8 replicas. In one run this times:
the installed simulator (mypyc-compiled when built), the same source interpreted, and the
step-by-step reference mode on the first 5,000 requests, and prints the ratios.
Last line: sim_requests_per_wall_s=<installed simulator, best of N>.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

from llmplan.scenario import load_scenario
from llmplan.scenario.models import SimulationMode
from llmplan.sim.compiled import is_compiled, pure_python
from llmplan.sim.engine import simulate_deployment
from llmplan.sim.run import simulate_scenario
from llmplan.traffic import build_request_stream

HERE = Path(__file__).parent


def _best_rate(repeat: int, n: int, **kwargs: Any) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        simulate_deployment(**kwargs)
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", nargs="?", default=str(HERE / "standard-day.yaml"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    loaded = load_scenario(args.scenario)
    scenario = loaded.scenario
    stream = build_request_stream(scenario)
    name, dep = next(iter(scenario.deployments.items()))
    common = dict(name=name, dep=dep, catalog=loaded.catalog, duration_s=scenario.duration_s)
    installed = _best_rate(args.repeat, len(stream), stream=stream, **common)
    pure = _best_rate(1, len(stream), stream=stream,
                      replica_class=pure_python("replica").Replica, **common)
    small = stream.head(5000)
    reference = _best_rate(1, len(small), stream=small, mode=SimulationMode.REFERENCE, **common)
    fast_small = _best_rate(args.repeat, len(small), stream=small, **common)
    t0 = time.perf_counter()
    result = simulate_scenario(loaded)
    whole = time.perf_counter() - t0
    local = result.deployments[name].local
    assert local is not None
    print(f"machine: {platform.machine()} python {platform.python_version()} "
          f"({platform.python_implementation()}), hot path compiled: {is_compiled()}")
    print(f"scenario: {args.scenario}: {len(stream):,} requests, {dep.replicas} replicas, "
          f"router {dep.router}, load {local.utilisation.load_fraction:.2f} of saturation, "
          f"KV use {local.utilisation.kv_cache_mean_fraction:.2f}, "
          f"preemptions {result.deployments[name].requests.preemptions}")
    print(f"interpreted_requests_per_wall_s={pure:.0f}")
    print(f"compiled_over_interpreted={installed / pure:.2f}")
    print(f"fast_over_reference_first_5000={fast_small / reference:.0f}")
    print(f"end_to_end_requests_per_wall_s={len(stream) / whole:.0f}  (stream + sim + metrics)")
    print(f"sim_requests_per_wall_s={installed:.0f}")


if __name__ == "__main__":
    main()
