"""Planning by search over simulations: how many replicas, how much traffic, how stable.

* min_replicas: the fewest replicas of a local (or hybrid's local) fleet meeting every SLO
  at the scenario's traffic (bisection; more replicas never make the SLO harder to meet).
* max_sustainable_rate: the highest request rate, the same mix compressed in time, at
  which the SLO still holds (bisection on the rate factor).
* sensitivity: does the winner change if volume halves or doubles (re-simulated), or if
  cloud token prices or GPU prices move (costs recomputed)?
"""

from __future__ import annotations

import copy
from typing import Any

from llmplan.decide.decision import decide
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import LocalDeployment
from llmplan.traffic import RequestStream, build_request_stream
from sim.engine import simulate_deployment
from sim.metrics import summarise


def _variant(loaded: LoadedScenario, name: str, replicas: int | None) -> LoadedScenario:
    scenario = loaded.scenario
    if replicas is None:
        return loaded
    dep = scenario.deployments[name]
    fleet = dep.local if isinstance(dep, HybridDeployment) else name
    local = scenario.deployments[fleet]
    assert isinstance(local, LocalDeployment)
    deployments = dict(scenario.deployments)
    deployments[fleet] = local.model_copy(update={"replicas": replicas})
    return LoadedScenario(scenario.model_copy(update={"deployments": deployments}),
                          loaded.catalog, loaded.path)


def simulate_one(loaded: LoadedScenario, name: str, *, replicas: int | None = None,
                 rate_factor: float = 1.0,
                 stream: RequestStream | None = None) -> dict[str, Any]:
    """Summary of one deployment, optionally resized or with traffic sped up."""
    loaded = _variant(loaded, name, replicas)
    scenario = loaded.scenario
    base = stream if stream is not None else build_request_stream(scenario)
    scaled = base.scaled(1.0 / rate_factor)
    duration = scenario.duration_s / rate_factor
    run = simulate_deployment(
        name, scenario.deployments[name], loaded.catalog, scaled, duration,
        drain_s=scenario.simulation.drain_s, seed=scenario.seed,
        deployments=dict(scenario.deployments),
        task_sensitivity=[t.sensitivity for t in scenario.tasks],
        restricted_stays_local=scenario.constraints.restricted_stays_local)
    return summarise(run, scaled, scenario)


def min_replicas(loaded: LoadedScenario, name: str, limit: int = 256) -> int | None:
    """Fewest replicas meeting the SLO at the scenario's traffic; None if `limit` does not."""
    dep = loaded.scenario.deployments[name]
    if isinstance(dep, CloudDeployment):
        return None
    stream = build_request_stream(loaded.scenario)

    def meets(n: int) -> bool:
        return bool(simulate_one(loaded, name, replicas=n, stream=stream)["slo"]["met"])

    hi = 1
    while not meets(hi):
        if hi >= limit:
            return None
        hi = min(limit, hi * 2)
    lo = hi // 2   # does not meet (or 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return hi


def max_sustainable_rate(loaded: LoadedScenario, name: str,
                         iterations: int = 8) -> float | None:
    """Highest mean request rate (req/s) with the SLO met; None if not met even at 1/64."""
    stream = build_request_stream(loaded.scenario)
    if len(stream) == 0:
        return None
    base = len(stream) / loaded.scenario.duration_s

    def meets(factor: float) -> bool:
        return bool(simulate_one(loaded, name, rate_factor=factor, stream=stream)["slo"]["met"])

    lo, hi = 0.0, 1.0
    if meets(1.0):
        lo = 1.0
        hi = 2.0
        while meets(hi) and hi < 1024:
            lo, hi = hi, hi * 2
    else:
        hi = 1.0
        lo = 0.5
        while not meets(lo):
            hi, lo = lo, lo / 2
            if lo < 1 / 64:
                return None
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if meets(mid):
            lo = mid
        else:
            hi = mid
    return base * lo


def sensitivity(result: dict[str, Any], loaded: LoadedScenario) -> list[dict[str, Any]]:
    """The winner under changed volume (re-simulated) and prices (costs recomputed)."""
    cases: list[dict[str, Any]] = []
    stream = build_request_stream(loaded.scenario)
    for factor in (0.5, 2.0):
        varied = copy.deepcopy(result)
        varied["scenario"]["duration_s"] = result["scenario"]["duration_s"] / factor
        for name in result["deployments"]:
            varied["deployments"][name] = simulate_one(loaded, name, rate_factor=factor,
                                                       stream=stream)
        decide(varied, loaded)
        cases.append({"change": f"volume x{factor:g}",
                      "winner": varied["recommendation"]["deployment"],
                      "ranking": varied["recommendation"]["ranking"]})
    for label, cloud_factor, gpu_factor in (("cloud prices x0.5", 0.5, 1.0),
                                            ("cloud prices x2", 2.0, 1.0),
                                            ("GPU prices x0.7", 1.0, 0.7),
                                            ("GPU prices x1.3", 1.0, 1.3)):
        priced = _reprice(loaded, cloud_factor, gpu_factor)
        varied = copy.deepcopy(result)
        decide(varied, priced)
        cases.append({"change": label, "winner": varied["recommendation"]["deployment"],
                      "ranking": varied["recommendation"]["ranking"]})
    return cases


def _reprice(loaded: LoadedScenario, cloud_factor: float, gpu_factor: float) -> LoadedScenario:
    catalog = loaded.catalog
    gpus = {k: g.model_copy(update={
        "purchase_usd": g.purchase_usd * gpu_factor,
        "rental_usd_per_gpu_hour": g.rental_usd_per_gpu_hour * gpu_factor,
        "reserved_usd_per_gpu_hour": g.reserved_usd_per_gpu_hour * gpu_factor})
        for k, g in catalog.gpus.items()}
    clouds = {k: m.model_copy(update={
        "input_usd_per_mtok": m.input_usd_per_mtok * cloud_factor,
        "output_usd_per_mtok": m.output_usd_per_mtok * cloud_factor,
        "cached_input_usd_per_mtok": (m.cached_input_usd_per_mtok * cloud_factor
                                      if m.cached_input_usd_per_mtok is not None else None)})
        for k, m in catalog.cloud_models.items()}
    return LoadedScenario(loaded.scenario,
                          catalog.model_copy(update={"gpus": gpus, "cloud_models": clouds}),
                          loaded.path)


LOAD_FACTORS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def load_curve(loaded: LoadedScenario, name: str) -> list[dict[str, Any]]:
    """Goodput and latency tails at fractions and multiples of the scenario's traffic."""
    stream = build_request_stream(loaded.scenario)
    base = len(stream) / loaded.scenario.duration_s
    points = []
    for factor in LOAD_FACTORS:
        summary = simulate_one(loaded, name, rate_factor=factor, stream=stream)
        points.append({"requests_per_s": base * factor,
                       "goodput_fraction": summary["slo"]["goodput_fraction"],
                       "ttft_p95_ms": summary["latency"]["ttft_ms"]["p95"],
                       "e2e_p95_ms": summary["latency"]["e2e_ms"]["p95"]})
    return points


def plan(result: dict[str, Any], loaded: LoadedScenario) -> dict[str, Any]:
    """The planning section of result.json."""
    per_deployment = {}
    for name, dep in loaded.scenario.deployments.items():
        per_deployment[name] = {
            "min_replicas_meeting_slo": (None if isinstance(dep, CloudDeployment)
                                         else min_replicas(loaded, name)),
            "max_sustainable_requests_per_s": max_sustainable_rate(loaded, name),
            "load_curve": load_curve(loaded, name),
        }
    return {"deployments": per_deployment, "sensitivity": sensitivity(result, loaded)}
