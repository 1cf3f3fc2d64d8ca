"""Where the answer would flip: the winner again under changed volume, a fleet filled,
local fleets set up otherwise, task quality and prices."""

from __future__ import annotations

from dataclasses import replace

from llmplan.decide.decision import decide
from llmplan.decide.planner import RATE_LIMIT, Planner, Point, two_digits_down
from llmplan.decide.recommendation import per_useful_usd
from llmplan.decide.what_if import quality_variants
from llmplan.results.decision import DeploymentPlan, PlanningWindow, SensitivityCase
from llmplan.results.simulation import RunInfo, SimulationResult
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment

FILL_FRACTION = 0.8      # the "well used" point: 80% of full batches (latency still bounded)



def _fill_case(simulation: SimulationResult, planner: Planner,
               rate_factors: dict[str, float]) -> SensitivityCase | None:
    """The winner at the volume that fills the cheapest local fleet (per useful result):
    the most it serves within the SLO (the rate search), else FILL_FRACTION of its
    full-batch throughput. Local GPUs pay off when they are used."""
    verdict = decide(simulation, planner.loaded)
    local = [(per_useful_usd(c), name)
             for name, c in verdict.deployments.items()
             if c.local is not None and c.local.utilisation.load_fraction > 0]
    if not local:
        return None
    _, name = min(local)
    if name in rate_factors:
        factor, how = rate_factors[name], f"the most {name} serves within the SLO"
    elif planner.sped_up_to_peak is not None:
        return None     # its load fraction is the quiet run's, not the peak's
    else:
        use = verdict.deployments[name].local.utilisation   # type: ignore[union-attr]
        factor = FILL_FRACTION / use.load_fraction
        how = f"runs {name}'s GPUs at {FILL_FRACTION:.0%} of full batches"
    factor = two_digits_down(factor)
    # the volume, over the costed one, that the stretch sped up `factor` times stands for
    volume = two_digits_down(factor / planner.light_draw)
    if volume < 1.2 or factor > RATE_LIMIT or any(abs(volume / f - 1) < 0.1
                                                  for f in VOLUME_FACTORS):
        return None
    info = _at_volume(simulation.scenario.sped_up(factor, requests=len(planner.window),
                                                  span_s=planner.window_s),
                      simulation.scenario, volume)
    varied = SimulationResult(scenario=info, deployments={
        other: planner.simulate(Point(other, factor=factor))
        for other in simulation.deployments})
    result = decide(varied, planner.loaded).recommendation
    return SensitivityCase(change=f"volume x{volume:g} ({how})", winner=result.deployment,
                           ranking=result.ranking)



def _at_volume(info: RunInfo, base: RunInfo, volume: float) -> RunInfo:
    """`info` (the stretch sped up) costed at `volume` times `base`'s long-run rate."""
    rate = base.long_run_requests_per_s
    return info if rate is None else info.model_copy(
        update={"long_run_requests_per_s": rate * volume})



VOLUME_FACTORS = (0.5, 2.0)



def sensitivity(simulation: SimulationResult, planner: Planner,
                rate_factors: dict[str, float] | None = None, *,
                peak: tuple[PlanningWindow, dict[str, DeploymentPlan]] | None = None
                ) -> list[SensitivityCase]:
    """The winner under changed volume (the load curve's runs and the volume that fills
    the cheapest local fleet), task quality (re-counted) and prices (repriced); `peak`:
    the scenario's run judged at a daily peak it misses, as the decision judges it."""
    cases: list[SensitivityCase] = []
    loaded = planner.loaded
    for factor in VOLUME_FACTORS:
        speed = factor * planner.light_draw
        info = _at_volume(simulation.scenario.sped_up(speed, requests=len(planner.window),
                                                      span_s=planner.window_s),
                          simulation.scenario, factor)
        varied = SimulationResult(scenario=info, deployments={
            name: planner.simulate(Point(name, factor=speed))
            for name in simulation.deployments})
        verdict = decide(varied, loaded).recommendation
        cases.append(SensitivityCase(change=f"volume x{factor:g} (fleets as simulated)",
                                     winner=verdict.deployment,
                                     ranking=verdict.ranking))
    for case, (label, changed, affected) in enumerate(planner.variant_cases()):
        varied = simulation.model_copy(update={"deployments": {
            name: planner.simulate_variant(case, name) if name in affected
            else result for name, result in simulation.deployments.items()}})
        # judged at the daily peak by the fleets' searches as simulated: a change that
        # makes a fleet faster may not show (the searches are not run again), one that
        # makes it slower does not bring it back
        verdict = decide(varied, changed, peak=peak).recommendation
        cases.append(SensitivityCase(change=label, winner=verdict.deployment,
                                     ranking=verdict.ranking))
    for label, varied in quality_variants(simulation, loaded):
        verdict = decide(varied, loaded, peak=peak).recommendation
        cases.append(SensitivityCase(change=label, winner=verdict.deployment,
                                     ranking=verdict.ranking))
    fill = _fill_case(simulation, planner, rate_factors or {})
    if fill is not None:
        cases.append(fill)
    for label, cloud_factor, gpu_factor in (("cloud prices x0.5", 0.5, 1.0),
                                            ("cloud prices x2", 2.0, 1.0),
                                            ("GPU prices x0.7", 1.0, 0.7),
                                            ("GPU prices x1.3", 1.0, 1.3)):
        verdict = decide(simulation, _reprice(loaded, cloud_factor, gpu_factor),
                         peak=peak).recommendation
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
                                      if m.cached_input_usd_per_mtok is not None else None),
        "cache_write_usd_per_mtok": (m.cache_write_usd_per_mtok * cloud_factor
                                     if m.cache_write_usd_per_mtok is not None else None),
        "long_context": (m.long_context.model_copy(update={
            "input_usd_per_mtok": m.long_context.input_usd_per_mtok * cloud_factor,
            "output_usd_per_mtok": m.long_context.output_usd_per_mtok * cloud_factor,
            "cached_input_usd_per_mtok": (
                m.long_context.cached_input_usd_per_mtok * cloud_factor
                if m.long_context.cached_input_usd_per_mtok is not None else None)})
            if m.long_context is not None else None)})
        for k, m in catalog.cloud_models.items()}
    # the provider's fees per request and per tool call are its prices too (egress,
    # observability and reviews are not the provider's)
    deployments = {name: dep.model_copy(update={"costs": dep.costs.model_copy(update={
        "per_request_usd": dep.costs.per_request_usd * cloud_factor,
        "usd_per_tool_call": dep.costs.usd_per_tool_call * cloud_factor})})
        if isinstance(dep, CloudDeployment) else dep
        for name, dep in loaded.scenario.deployments.items()}
    return replace(loaded, catalog=catalog.model_copy(update={"gpus": gpus,
                                                             "cloud_models": clouds}),
                   scenario=loaded.scenario.model_copy(update={"deployments": deployments}))
