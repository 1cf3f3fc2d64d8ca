"""A candidate's cost per month: its cost items (costs.py) from what it ran, scaled from
the simulated window to a month of the traffic's long-run rate (`windows_per_month`: a
diurnal scenario simulated at its peak is billed for its day's mean), and their totals
and unit costs."""

from __future__ import annotations

from llmplan.decide.costs import (
    CallTokens,
    CloudFacts,
    CostItem,
    LocalFacts,
    bought_gpus,
    cloud_items,
    local_items,
)
from llmplan.results.decision import CostLine, CostSummary
from llmplan.results.simulation import AbandonedCalls, DeploymentResult, LongContextCalls, RunInfo
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import Economics, LocalDeployment, Scenario


def deployment_costs(name: str, summary: DeploymentResult, loaded: LoadedScenario,
                     factor: float) -> list[CostItem]:
    """Every cost item of deployment `name` per month (`factor` windows make a month)."""
    scenario, catalog = loaded.scenario, loaded.catalog
    dep = scenario.deployments[name]
    econ = scenario.economics
    items: list[CostItem] = []
    local = fleet_of(name, scenario)
    cloud = dep if isinstance(dep, CloudDeployment) else None
    if isinstance(dep, HybridDeployment):
        cloud_part = scenario.deployments[dep.cloud]
        assert isinstance(cloud_part, CloudDeployment)
        cloud = cloud_part
    if local is not None:
        items += local_items(local, catalog, econ, local_facts(local, summary))
    if cloud is not None:
        part = summary.cloud
        assert part is not None
        # an API is priced at the volume offered (a hybrid's: what it sent the API): what
        # its limits refused would be served (and billed) once they allow it, and the calls
        # that got through are the short ones, so pricing those alone understates the month
        missed = part.unserved
        facts_c = CloudFacts(input_tokens=(part.input_tokens
                                           + (missed.input_tokens if missed else 0)) * factor,
                             output_tokens=(part.output_tokens
                                            + (missed.output_tokens if missed else 0)) * factor,
                             requests=(part.served + (missed.requests if missed else 0))
                             * factor,
                             unserved_requests=(missed.requests if missed else 0) * factor,
                             cached_input_tokens=None if part.cached_input_tokens is None
                             else part.cached_input_tokens * factor,
                             cache_write_tokens=(part.cache_write_tokens or 0) * factor,
                             abandoned=_per_month(part.abandoned, factor),
                             long_context=_per_month(part.long_context, factor))
        items += [CostItem(f"cloud_{i.name}" if local is not None else i.name,
                           i.usd_per_month, i.variable, i.basis)
                  for i in cloud_items(cloud, catalog, econ, facts_c)]
    return items


def local_facts(local: LocalDeployment, summary: DeploymentResult) -> LocalFacts:
    """What a local fleet's cost items are computed from: owned, every GPU the fleet may use
    is bought; on demand, the hours in use are paid; reserved, the floor is reserved (every
    replica of a fixed fleet) and what autoscaling adds above it is rented on demand."""
    fleet = summary.local
    assert fleet is not None
    running = fleet.fleet.mean_active_replicas + fleet.fleet.mean_loading_replicas
    burst = 0.0
    if local.costs.ownership == "owned":
        replicas: float = local.max_replicas
    elif local.costs.ownership == "rented_reserved":
        replicas = local.autoscaling.min_replicas if local.autoscaling is not None \
            else local.replicas
        burst = max(0.0, running - replicas) * local.gpus_per_replica
    else:
        replicas = running
    floor = local.autoscaling.min_replicas * local.gpus_per_replica \
        if local.autoscaling is not None and local.costs.ownership != "owned" else None
    return LocalFacts(gpus=replicas * local.gpus_per_replica,
                      busy_fraction=fleet.utilisation.engine_busy_fraction,
                      burst_gpus=burst,
                      running_gpus=running * local.gpus_per_replica
                      if local.autoscaling is not None else None,
                      floor_gpus=floor)


def fleet_of(name: str, scenario: Scenario) -> LocalDeployment | None:
    """Candidate `name`'s local fleet: itself, a hybrid's local part, or none."""
    dep = scenario.deployments[name]
    local = scenario.deployments[dep.local] if isinstance(dep, HybridDeployment) else dep
    return local if isinstance(local, LocalDeployment) else None


def _gpus_bought(name: str, summary: DeploymentResult, loaded: LoadedScenario) -> int | None:
    """The GPUs an owned fleet buys when whole baseboards make them more than it uses."""
    local = fleet_of(name, loaded.scenario)
    if local is None or local.costs.ownership != "owned" or summary.local is None:
        return None
    facts = local_facts(local, summary)
    bought = bought_gpus(local, loaded.catalog.gpus[local.gpu], facts)
    return bought if bought > facts.gpus else None


def _per_month(found: AbandonedCalls | LongContextCalls | None, factor: float) -> CallTokens:
    """A cloud part's extra billed calls (abandoned attempts, long-context requests),
    scaled to a month."""
    if found is None:
        return CallTokens()
    if isinstance(found, AbandonedCalls):
        return CallTokens(found.attempts * factor, found.input_tokens * factor,
                          found.output_tokens * factor)
    return CallTokens(found.requests * factor, found.input_tokens * factor,
                      found.output_tokens * factor,
                      None if found.cached_input_tokens is None
                      else found.cached_input_tokens * factor,
                      (found.cache_write_tokens or 0) * factor)


def cost_summary(items: list[CostItem], summary: DeploymentResult,
                 factor: float, facts: LocalFacts | None = None) -> CostSummary:
    """Monthly totals and unit costs of a deployment whose simulated window makes
    1/`factor` of a month (`facts`: its local fleet's, when it has one)."""
    monthly = sum(i.usd_per_month for i in items)
    requests = summary.requests.total * factor
    tokens = summary.throughput.offered_output_tokens
    useful = summary.useful.expected_useful_requests * factor
    fixed = sum(i.usd_per_month - i.growing_usd_per_month for i in items)
    above = sum(i.growing_usd_per_month for i in items if i.above_floor)
    floor_volume = None
    if above > 0 and facts is not None and facts.floor_gpus is not None:
        # replicas follow the volume: the floor alone carries this share of it
        floor_volume = requests * facts.floor_gpus \
            / (facts.floor_gpus + facts.rented_above_floor_gpus)
    return CostSummary(
        monthly_usd=monthly, fixed_usd_per_month=fixed, variable_usd_per_month=monthly - fixed,
        above_floor_usd_per_month=above if floor_volume is not None else None,
        floor_requests_per_month=floor_volume,
        requests_per_month=requests, useful_results_per_month=useful,
        usd_per_1k_requests=monthly / requests * 1e3 if requests else None,
        usd_per_million_output_tokens=(monthly / (tokens * factor) * 1e6 if tokens else None),
        usd_per_useful_result=monthly / useful if useful else None,
        items=[CostLine(item=i.name, usd_per_month=i.usd_per_month, variable=i.variable,
                        basis=i.basis) for i in items])


def windows_per_month(info: RunInfo, econ: Economics) -> float:
    """How many simulated windows make a month: the month's requests at the traffic's
    long-run rate over the requests simulated (the simulated `requests` would take
    requests / rate seconds at that rate); the window's own rate when none is known."""
    rate = info.long_run_requests_per_s
    if rate is None or rate <= 0 or info.requests <= 0:
        return econ.month_factor(info.duration_s)
    return econ.month_factor(info.requests / rate)


def price(name: str, summary: DeploymentResult, loaded: LoadedScenario,
          info: RunInfo) -> CostSummary:
    """The cost of one deployment simulated as `info` says, per month."""
    factor = windows_per_month(info, loaded.scenario.economics)
    local = fleet_of(name, loaded.scenario)
    facts = local_facts(local, summary) if local is not None else None
    cost = cost_summary(deployment_costs(name, summary, loaded, factor), summary, factor,
                        facts)
    bought = _gpus_bought(name, summary, loaded)
    return cost if bought is None else cost.model_copy(update={"gpus_bought": bought})
