"""Planning by search over simulations: how many replicas, how much traffic, how stable.

* min_replicas: the fewest replicas of a local (or hybrid's local) fleet meeting every SLO
  at the scenario's traffic (bisection; more replicas never make the SLO harder to meet).
* max_sustainable_rate: the highest request rate, the same mix compressed in time, at
  which the SLO still holds (bisection on the rate factor).
* sensitivity: does the winner change if volume halves or doubles (re-simulated), or if
  cloud token prices or GPU prices move (costs recomputed)?
"""

from __future__ import annotations

from llmplan.decide.decision import decide
from llmplan.results.decision import DeploymentPlan, LoadPoint, Planning, SensitivityCase
from llmplan.results.simulation import DeploymentResult, SimulationResult
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import LocalDeployment, SimulationMode
from llmplan.sim.metrics import summarise_run
from llmplan.sim.run import run_deployment
from llmplan.traffic import RequestStream, build_request_stream


def resized(loaded: LoadedScenario, name: str, replicas: int | None) -> LoadedScenario:
    """The scenario with deployment `name`'s local fleet at `replicas` (None: unchanged)."""
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
                 stream: RequestStream | None = None) -> DeploymentResult:
    """Summary of one deployment, optionally resized or with traffic sped up."""
    loaded = resized(loaded, name, replicas)
    scenario = loaded.scenario
    base = stream if stream is not None else build_request_stream(scenario)
    scaled = base.scaled(1.0 / rate_factor)
    # planning always uses the fast scheduler (reference mode is for checking it)
    run = run_deployment(loaded, name, scaled, scenario.duration_s / rate_factor,
                         mode=SimulationMode.FAST)
    return summarise_run(run, scaled, scenario)


def min_replicas(loaded: LoadedScenario, name: str, limit: int = 256) -> int | None:
    """Fewest replicas meeting the SLO at the scenario's traffic; None if `limit` does not."""
    dep = loaded.scenario.deployments[name]
    if isinstance(dep, CloudDeployment):
        return None
    stream = build_request_stream(loaded.scenario)

    def meets(n: int) -> bool:
        return simulate_one(loaded, name, replicas=n, stream=stream).slo.met

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
        return simulate_one(loaded, name, rate_factor=factor, stream=stream).slo.met

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


def sensitivity(simulation: SimulationResult, loaded: LoadedScenario) -> list[SensitivityCase]:
    """The winner under changed volume (re-simulated) and prices (costs recomputed)."""
    cases: list[SensitivityCase] = []
    stream = build_request_stream(loaded.scenario)
    for factor in (0.5, 2.0):
        info = simulation.scenario.model_copy(
            update={"duration_s": simulation.scenario.duration_s / factor})
        varied = SimulationResult(scenario=info, deployments={
            name: simulate_one(loaded, name, rate_factor=factor, stream=stream)
            for name in simulation.deployments})
        verdict = decide(varied, loaded).recommendation
        cases.append(SensitivityCase(change=f"volume x{factor:g}", winner=verdict.deployment,
                                     ranking=verdict.ranking))
    for label, cloud_factor, gpu_factor in (("cloud prices x0.5", 0.5, 1.0),
                                            ("cloud prices x2", 2.0, 1.0),
                                            ("GPU prices x0.7", 1.0, 0.7),
                                            ("GPU prices x1.3", 1.0, 1.3)):
        verdict = decide(simulation, _reprice(loaded, cloud_factor, gpu_factor)).recommendation
        cases.append(SensitivityCase(change=label, winner=verdict.deployment,
                                     ranking=verdict.ranking))
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


def load_curve(loaded: LoadedScenario, name: str) -> list[LoadPoint]:
    """Goodput and latency tails at fractions and multiples of the scenario's traffic."""
    stream = build_request_stream(loaded.scenario)
    base = len(stream) / loaded.scenario.duration_s
    points = []
    for factor in LOAD_FACTORS:
        summary = simulate_one(loaded, name, rate_factor=factor, stream=stream)
        points.append(LoadPoint(requests_per_s=base * factor,
                                goodput_fraction=summary.slo.goodput_fraction,
                                ttft_p95_ms=summary.latency.ttft_ms.p95,
                                e2e_p95_ms=summary.latency.e2e_ms.p95))
    return points


def plan(simulation: SimulationResult, loaded: LoadedScenario) -> Planning:
    """The planning section of result.json."""
    per_deployment = {}
    for name, dep in loaded.scenario.deployments.items():
        per_deployment[name] = DeploymentPlan(
            min_replicas_meeting_slo=(None if isinstance(dep, CloudDeployment)
                                      else min_replicas(loaded, name)),
            max_sustainable_requests_per_s=max_sustainable_rate(loaded, name),
            load_curve=load_curve(loaded, name))
    return Planning(deployments=per_deployment, sensitivity=sensitivity(simulation, loaded))
