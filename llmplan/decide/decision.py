"""Which deployment wins, why, and where the answer would flip.

From the simulated results: the cost of each candidate (costs.py), scaled from the
simulated window to a month of the traffic's long-run rate (`windows_per_month`: a diurnal
scenario simulated at its peak is billed for its day's mean); feasibility (hard
constraints, then the SLO); a ranking of the feasible ones by cost per useful result; the
seed's decision table filled with this scenario's numbers (table.py); its evaluation
checklist saying what was measured, simulated or assumed (table.py); and the break-even
monthly volume between every local and every cloud candidate. `decide` returns a new
`Result`; the simulation is left as it was.
"""

from __future__ import annotations

import math

from llmplan.catalog.lifecycle import retired_reason
from llmplan.decide.costs import (
    CallTokens,
    CloudFacts,
    CostItem,
    LocalFacts,
    bought_gpus,
    cloud_items,
    local_items,
    over_budget,
)
from llmplan.decide.daily import daily_limit_reason, past_the_daily_limit
from llmplan.decide.drivers import SloHeadroom, drivers, slo_noise_words
from llmplan.decide.table import checklist, decision_table, rate_shown
from llmplan.results.decision import (
    BreakEven,
    Candidate,
    CostLine,
    CostSummary,
    DeploymentPlan,
    Planning,
    PlanningWindow,
    Recommendation,
    Result,
)
from llmplan.results.simulation import (
    AbandonedCalls,
    DeploymentResult,
    LongContextCalls,
    RunInfo,
    SimulationResult,
)
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import Economics, LocalDeployment, Scenario, region_within
from llmplan.sim.cloud import make_limiter
from llmplan.traffic.arrivals import DiurnalTraffic, duration_words


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


def infeasibility(name: str, summary: DeploymentResult, loaded: LoadedScenario,
                  monthly_usd: float) -> list[str]:
    """Why a candidate cannot be chosen (empty: feasible)."""
    scenario = loaded.scenario
    dep = scenario.deployments[name]
    rules = scenario.constraints
    reasons = []
    restricted = [t.name for t in scenario.tasks if t.sensitivity == "restricted"]
    if isinstance(dep, CloudDeployment) and rules.restricted_stays_local and restricted:
        reasons.append(f"restricted data ({', '.join(restricted)}) would be sent to "
                       f"{loaded.catalog.cloud_models[dep.model].provider}")
    if isinstance(dep, HybridDeployment) and summary.hybrid is not None \
            and rules.restricted_stays_local and summary.hybrid.restricted_served_by_cloud:
        reasons.append("restricted requests reached the cloud")   # must never happen
    if rules.data_residency:
        regions = [scenario.deployments[n] for n in ([dep.cloud] if isinstance(
            dep, HybridDeployment) else [name])]
        outside = [c.region for c in regions if isinstance(c, CloudDeployment)
                   and not any(region_within(c.region, allowed)
                               for allowed in rules.data_residency)]
        if outside:
            reasons.append(f"processes data in {', '.join(outside)}, outside the allowed "
                           f"regions ({', '.join(rules.data_residency)})")
    apis = [scenario.deployments[dep.cloud]] if isinstance(dep, HybridDeployment) else [dep]
    for api in apis:
        if isinstance(api, CloudDeployment) and (
                retired := retired_reason(api.model, loaded.catalog.cloud_models)) is not None:
            reasons.append(retired)
    if rules.offline_operation_required and not isinstance(dep, LocalDeployment):
        reasons.append("must work offline, and it depends on a cloud API")
    if rules.max_monthly_usd is not None and monthly_usd > rules.max_monthly_usd:
        reasons.append(over_budget(monthly_usd, rules.max_monthly_usd))
    slo = summary.slo
    if (slo.goodput_fraction or 0.0) < slo.min_goodput_fraction:
        reasons.append(f"misses the SLO: {slo.goodput_shown()} of requests within bounds, "
                       f"{slo.required_shown()} required"
                       + _over_its_limits(name, summary, loaded))
    reasons += [f"misses a task's SLO: {short}" for short in slo.tasks_short or []]
    return reasons


def _over_its_limits(name: str, summary: DeploymentResult, loaded: LoadedScenario) -> str:
    """For an API sent more requests a second than its rate limits let through for good:
    the limit that binds, what it refused, and every limit to raise to carry the traffic
    (sim/ratelimit.py's accounting at the mix of the requests sent); "" otherwise."""
    api = loaded.scenario.deployments[name]
    cloud = summary.cloud
    if not isinstance(api, CloudDeployment) or cloud is None or cloud.limit is None \
            or not cloud.limit_sustains_requests_per_s:
        return ""
    offered, most = summary.throughput.offered_requests_per_s, cloud.limit_sustains_requests_per_s
    if offered <= most * (1 + 1e-9):
        return ""
    words = (f"; its limits ({cloud.limit}) let {rate_shown(most)} req/s through at this token "
             f"mix, under the {rate_shown(offered)}/s sent ({cloud.throttled_requests:,} "
             f"request{'s' if cloud.throttled_requests != 1 else ''} met a 429)")
    missed = cloud.unserved
    calls = cloud.served + (missed.requests if missed else 0)
    if not calls:
        return words
    prompt = (cloud.input_tokens + (missed.input_tokens if missed else 0)) / calls
    output = (cloud.output_tokens + (missed.output_tokens if missed else 0)) / calls
    model = loaded.catalog.cloud_models[api.model]
    cached = (cloud.cached_input_tokens / (prompt * calls)
              if cloud.cached_input_tokens is not None and prompt else None)
    reserve = float(api.limits.max_tokens) if api.limits.max_tokens else output
    found = make_limiter(api, model, cached).sustained(prompt + reserve, prompt + output, prompt)
    if found is None or found.requests_per_s >= offered:
        return words
    return words + (f"; to carry it, raise them to at least {found.needed_for(offered)} ("
                    + ", ".join(f"limits.{key}" for key in found.fields_for(offered)) + ")")


def latency_from(name: str, loaded: LoadedScenario) -> str:
    """Where a deployment's latency comes from (a hybrid: both of its sides): given in the
    scenario, measured in the catalog, or llmplan's defaults (CloudDeployment.latency_from)."""
    dep = loaded.scenario.deployments[name]
    if isinstance(dep, HybridDeployment):
        return f"{latency_from(dep.local, loaded)} + {latency_from(dep.cloud, loaded)}"
    if isinstance(dep, CloudDeployment):
        return dep.latency_from(loaded.catalog.cloud_models.get(dep.model))
    if dep.step_time.kind == "calibrated":
        return f"measured: calibrated ({dep.step_time.file})"
    return f"defaults: {dep.step_time.kind} step model"


#: full batches at the mix's mean lengths estimate what a fleet finishes to within a few
#: percent either way (a mix's spread and the batch's ramp move it): a shortfall within
#: this factor is left to the run's own latencies
OVERLOAD_MARGIN = 1.1


def overload_reason(name: str, summary: DeploymentResult, loaded: LoadedScenario,
                    info: RunInfo) -> str | None:
    """Why a fixed local fleet cannot carry this traffic however its run went (None: it
    can, as far as its full batches say): with every batch full it answers fewer requests a
    second than the traffic's average rate times the goodput the SLO asks, so over a month
    the rest wait until they time out or are refused, or the queue grows without end; a
    run that ends before that backlog builds shows none of it. Only a shortfall past
    OVERLOAD_MARGIN is called: the full batches are an estimate."""
    dep = loaded.scenario.deployments[name]
    local, rate = summary.local, info.long_run_requests_per_s
    if not isinstance(dep, LocalDeployment) or dep.autoscaling is not None \
            or summary.hybrid is not None or local is None or rate is None \
            or not summary.requests.completed:     # no mix it ran to estimate from
        return None
    capacity = local.utilisation.full_batch_requests_per_s
    required = summary.slo.min_goodput_fraction
    if capacity <= 0 or capacity * OVERLOAD_MARGIN >= rate * required:
        return None
    return (f"its full batches answer {capacity:,.3g} requests/s, {capacity / rate:.0%} of the "
            f"{rate:,.3g}/s the traffic brings on average, under the "
            f"{summary.slo.required_shown()} the SLO asks: the rest would wait until they "
            f"time out, or queue for ever (the {duration_words(info.duration_s)} simulated "
            f"show only the start of that backlog)")


def candidate(name: str, summary: DeploymentResult, loaded: LoadedScenario,
              info: RunInfo) -> Candidate:
    """One simulated deployment with its cost and feasibility."""
    cost = price(name, summary, loaded, info)
    reasons = infeasibility(name, summary, loaded, cost.monthly_usd)
    if (daily := daily_limit_reason(name, summary, loaded, info)) is not None:
        reasons.append(daily)
    if (overload := overload_reason(name, summary, loaded, info)) is not None:
        reasons.append(overload)
    if cost.usd_per_useful_result is None and not reasons:
        # nothing it answers is worth anything (the tasks' quality, or no answer at all):
        # a cost per useful result does not exist to rank it by
        reasons.append("produces no useful result: task quality x answers within the SLO "
                       "is 0")
    return Candidate.of(summary, cost, reasons, latency_from(name, loaded))


def unit_usd(usd: float) -> str:
    """A unit cost to three significant figures ($0.000423, $0.0123, $0.500, $2.50,
    $1,234.56): fractions of a cent keep their digits, whole dollars their cents."""
    if usd <= 0 or usd >= 1:
        return f"${usd:,.2f}"
    return f"${usd:.{max(2, 2 - math.floor(math.log10(usd)))}f}"


def recommend(candidates: dict[str, Candidate], loaded: LoadedScenario,
              headroom: dict[str, SloHeadroom] | None = None) -> Recommendation:
    """The cheapest feasible candidate per useful result that can be built, and why."""
    ranking = sorted((n for n, c in candidates.items() if c.feasible),
                     key=lambda n: (per_useful_usd(candidates[n]), n))
    ranking += sorted((n for n, c in candidates.items() if not c.feasible),
                      key=lambda n: _nearest_first(candidates[n], n))
    return _recommendation(ranking, candidates, dict(sorted(loaded.unbuildable.items())),
                           loaded.not_provisionable, headroom)


def _nearest_first(found: Candidate, name: str) -> tuple[int, int, float, str]:
    """How far an excluded candidate is from the bar, as a sort key: one that only misses
    the SLO first (the nearer its goodput, the earlier), then by how many rules it breaks
    (a restricted task sent to a provider, a budget, a limit), then by name."""
    only_slo = all(reason.startswith("misses the SLO") for reason in found.infeasible_because)
    goodput = found.slo.goodput_fraction or 0.0
    return (0 if only_slo else 1, len(found.infeasible_because), -goodput, name)


def slo_headroom(planning: Planning, loaded: LoadedScenario) -> dict[str, SloHeadroom]:
    """Each local fleet's busiest-stretch arrival rate against the highest rate at which
    planning found it holds the SLO (both in requests/s of that stretch)."""
    window = planning.window
    if window.span_s <= 0 or not window.requests:
        return {}
    pace = window.requests / window.span_s
    return {name: SloHeadroom(pace, found.max_sustainable_requests_per_s)
            for name, found in planning.deployments.items()
            if isinstance(loaded.scenario.deployments.get(name), LocalDeployment)
            and found.max_sustainable_requests_per_s}


def decide(simulation: SimulationResult, loaded: LoadedScenario,
           planning: Planning | None = None, *,
           peak: tuple[PlanningWindow, dict[str, DeploymentPlan]] | None = None) -> Result:
    """Cost, feasibility and the recommendation for a simulation of `loaded`; with
    `planning` (plan() of the same simulation), judged against what the fleets serve
    within the SLO as well as with full batches (`peak`: planning's window and searches
    alone, to judge a variant of the run against a daily peak it misses)."""
    candidates = {name: candidate(name, summary, loaded, simulation.scenario)
                  for name, summary in simulation.deployments.items()}
    if planning is not None:
        peak = planning.window, planning.deployments
    if peak is not None:
        candidates = at_the_peak(candidates, *peak)
    elif (daily := daily_peak_requests_per_s(loaded, simulation)) is not None:
        candidates = below_the_peak(candidates, daily)
    candidates = past_the_daily_limit(candidates, loaded, simulation.scenario)
    unbuildable = dict(sorted(loaded.unbuildable.items())) or None
    headroom = slo_headroom(planning, loaded) if planning is not None else None
    recommendation = recommend(candidates, loaded, headroom)
    rows = break_even(candidates, loaded, diurnal_peak_requests_per_s(loaded, simulation))
    return Result(scenario=simulation.scenario, deployments=candidates,
                  recommendation=recommendation,
                  break_even=with_slo_capacity(rows, planning, loaded) if planning else rows,
                  decision_table=decision_table(
                      candidates, loaded, headroom,
                      mean_requests_per_s=simulation.scenario.long_run_requests_per_s),
                  checklist=checklist(loaded, recommendation.deployment, candidates),
                  unbuildable=unbuildable, planning=planning)


#: a diurnal run whose hours reach under the day's peak rate by more than this factor is
#: judged at the peak (planning speeds its stretches up to it)
PEAK_MISSED = 1.2


def daily_peak_requests_per_s(loaded: LoadedScenario,
                              simulation: SimulationResult) -> float | None:
    """The requests/s (conversations' turns counted) of a diurnal traffic's daily peak when
    the simulated hours miss it by more than PEAK_MISSED (None otherwise)."""
    traffic = loaded.scenario.traffic
    if not isinstance(traffic, DiurnalTraffic) or \
            traffic.peak_missed_by(loaded.scenario.duration_s) <= PEAK_MISSED:
        return None
    return diurnal_peak_requests_per_s(loaded, simulation)


def diurnal_peak_requests_per_s(loaded: LoadedScenario,
                                simulation: SimulationResult) -> float | None:
    """The requests/s (conversations' turns counted) of a diurnal traffic's daily peak,
    whether or not the run reaches it (None: not diurnal): the long-run rate times the
    curve's peak-to-mean, spikes left out."""
    traffic = loaded.scenario.traffic
    duration_s = loaded.scenario.duration_s
    if not isinstance(traffic, DiurnalTraffic):
        return None
    long_run = simulation.scenario.long_run_requests_per_s
    base = traffic.long_run_rate(duration_s).requests_per_s
    if long_run is None or base <= 0:
        return None
    return float(traffic.mean_rate_per_s * traffic.peak_to_mean * long_run / base)


def below_the_peak(candidates: dict[str, Candidate], peak: float) -> dict[str, Candidate]:
    """Without planning: the local fleets excluded whose full batches cannot serve a daily
    peak the simulated hours miss (an upper bound: within the SLO they serve less)."""
    out = {}
    for name, found in candidates.items():
        local = found.local
        rate = local.utilisation.full_batch_requests_per_s if local is not None else None
        if found.hybrid is not None or rate is None or rate >= peak:
            out[name] = found
            continue
        out[name] = found.excluded(f"its full batches serve {rate:,.3g} requests/s, under "
                                   f"the traffic's daily peak of {peak:,.3g}/s, which the "
                                   "simulated hours do not reach (plan to judge it within "
                                   "the SLO)")
    return out


def at_the_peak(candidates: dict[str, Candidate], window: PlanningWindow,
                plans: dict[str, DeploymentPlan]) -> dict[str, Candidate]:
    """The candidates, those excluded that do not sustain a diurnal traffic's daily peak
    within the SLO when the simulated hours miss it (planning ran at the peak's rate):
    a fleet sized on a quiet hour is priced on the whole day's volume."""
    peak = window.peak_requests_per_s()
    if peak is None:
        return candidates
    out = {}
    for name, found in candidates.items():
        plan = plans.get(name)
        rate = plan.max_sustainable_requests_per_s if plan is not None else None
        at_peak = next((p for p in plan.load_curve if abs(p.requests_per_s - peak)
                        <= 1e-9 * peak), None) if plan is not None else None
        short = rate is not None and rate < peak * (1 - 1e-9)
        if rate is None and at_peak is not None and at_peak.goodput_fraction is not None:
            short = at_peak.goodput_fraction < found.slo.min_goodput_fraction
        if not short:
            out[name] = found
            continue
        sustains = (f"sustains {rate:,.3g} requests/s within the SLO"
                    if rate is not None else "misses the SLO")
        out[name] = found.excluded(f"{sustains} against the traffic's daily peak of "
                                   f"{peak:,.3g}/s, which the simulated hours do not reach "
                                   "(planning, at the peak's rate)")
    return out


def _recommendation(ranking: list[str], candidates: dict[str, Candidate],
                    unbuildable: dict[str, str],
                    not_provisionable: dict[str, str] | None = None,
                    headroom: dict[str, SloHeadroom] | None = None) -> Recommendation:
    feasible = [n for n in ranking if candidates[n].feasible]
    not_built = "".join(f"; {n} cannot be built ({why})" for n, why in unbuildable.items())
    # a cheaper candidate the stack cannot build as simulated is passed over while a
    # feasible one it can build remains (what is provisioned must be what was simulated)
    blocked = not_provisionable or {}
    passed_over = []
    if any(n not in blocked for n in feasible):
        passed_over = [n for n in feasible if n in blocked]
        passed_over = passed_over[:next(i for i, n in enumerate(feasible) if n not in blocked)]
        feasible = [n for n in feasible if n not in passed_over]
        ranking = [*feasible, *passed_over, *(n for n in ranking if n not in feasible
                                              and n not in passed_over)]
    if not feasible:
        return Recommendation(deployment=None, ranking=ranking,
                              reason="no candidate is feasible: " + "; ".join(
                                  f"{n}: {', '.join(candidates[n].infeasible_because)}"
                                  + slo_noise_words(candidates[n])
                                  for n in ranking) + not_built)
    best = feasible[0]
    cost = candidates[best].cost
    per_useful = per_useful_usd(candidates[best])
    reason = (f"{best} meets every constraint and the SLO "
              f"({candidates[best].slo.goodput_fraction or 0.0:.1%} goodput) at "
              f"{unit_usd(per_useful)} per useful result (${cost.monthly_usd:,.0f}/month)")
    if len(feasible) > 1:
        runner_up = feasible[1]
        other = per_useful_usd(candidates[runner_up])
        if other <= per_useful * 1.005:
            reason += f", within 0.5% of {runner_up}'s cost per useful result"
        elif per_useful == 0:
            reason += f", free per useful result where {runner_up} costs {unit_usd(other)}"
        else:
            reason += (f", {other / per_useful:.2f}x cheaper per useful result "
                       f"than {runner_up}")
    if (spill := candidates[best].daily_limit) is not None:
        reason += f"; {spill}"
    if best in blocked:
        # every feasible candidate is one the stack cannot build as simulated: the answer
        # stands, and says what to change before building it
        reason += (f"; but {blocked[best]}, and no feasible candidate can be: change that "
                   f"before `llmplan stack`")
    for n in passed_over:
        other = per_useful_usd(candidates[n])
        reason += (f"; {n} would cost {unit_usd(other)} per useful result but cannot be "
                   f"provisioned as simulated ({blocked[n]})")
    excluded = [n for n in ranking if not candidates[n].feasible]
    if excluded:
        reason += "; excluded: " + "; ".join(
            f"{n} ({candidates[n].infeasible_because[0]})" for n in excluded)
    reason += not_built
    return Recommendation(deployment=best, ranking=ranking, reason=reason,
                          drivers=drivers(best, feasible, candidates, headroom, passed_over))


def per_useful_usd(candidate: Candidate) -> float:
    """Its cost per useful result; none (nothing useful) ranks after every cost, free too."""
    usd = candidate.cost.usd_per_useful_result
    return math.inf if usd is None else usd


def break_even(candidates: dict[str, Candidate], loaded: LoadedScenario,
               peak_per_s: float | None = None) -> list[BreakEven]:
    """Monthly request volume where each local and each cloud candidate cost the same.

    Costs are modelled as fixed + variable x volume (variable per request at the simulated
    mix); the local side is only valid up to its simulated capacity, and a break-even past
    it says so (the fleet must grow, adding fixed costs). `peak_per_s`: a diurnal
    traffic's daily peak, which lasts hours: the capacity is judged at it, whether or not
    the simulated hours reach it.
    """
    out = []
    kinds = {n: loaded.scenario.deployments[n].kind for n in candidates}
    for local in (n for n in candidates if kinds[n] == "local"):
        for cloud in (n for n in candidates if kinds[n] == "cloud"):
            a, b = candidates[local].cost, candidates[cloud].cost
            volume, dearer_again = _crossings(a, b)
            useful_a, useful_b = a.useful_share(), b.useful_share()
            # per useful result, local's L/u_l under cloud's C/u_c: u_c L under u_l C
            useful, useful_again = _crossings(a, b, useful_b, useful_a) \
                if useful_a and useful_b else (None, None)
            fleet = loaded.scenario.deployments[local]
            assert isinstance(fleet, LocalDeployment)
            capacity = _capacity_per_month(candidates[local], fleet, peak_per_s)
            knee = a.floor_requests_per_month
            out.append(BreakEven(
                local=local, cloud=cloud, local_fixed_usd=a.fixed_usd_per_month,
                local_usd_per_request=a.usd_per_request_from(knee or 0.0),
                local_floor_requests_per_month=knee,
                cloud_fixed_usd=b.fixed_usd_per_month,
                cloud_usd_per_request=b.usd_per_request_from(0.0),
                break_even_requests_per_month=volume,
                local_dearer_again_requests_per_month=dearer_again,
                local_useful_share=useful_a, cloud_useful_share=useful_b,
                break_even_useful_requests_per_month=useful,
                local_dearer_again_useful_requests_per_month=useful_again,
                simulated_requests_per_month=a.requests_per_month,
                local_capacity_requests_per_month=capacity,
                fleet_must_grow=_must_grow(local, loaded, volume, capacity,
                                           again=dearer_again),
                excluded=_excluded_sides(candidates, local, cloud)))
    return out


def _excluded_sides(candidates: dict[str, Candidate], *names: str) -> str | None:
    """"api is excluded by the decision (restricted data ...)": each side of a break-even
    pair the decision left out, with its reasons (None: both may be chosen). A reader of
    the break-even alone would otherwise take the cheaper side below it for an option."""
    words = [f"{name} is excluded by the decision ({'; '.join(found.infeasible_because)})"
             for name in names if not (found := candidates[name]).feasible]
    return "; ".join(words) or None


def _crossings(local: CostSummary, cloud: CostSummary, local_weight: float = 1.0,
               cloud_weight: float = 1.0) -> tuple[float | None, float | None]:
    """The monthly volume past which `local` costs less than `cloud`, and the one past
    which it costs more (again): where the two cost lines (CostSummary.usd_at, an
    autoscaled rented fleet's with its knee at the volume its floor carries), each times
    its weight, cross, the local one falling below, or rising above (None: it does not).
    Both: a reserved floor cheap enough to beat the API, with on-demand GPUs above it that
    cost more per request than the API does. Only the second: a fleet whose fixed costs
    are under the API's own (its monthly fees) and whose requests cost more. Weighted by
    the other side's share of useful requests, the lines cross where the two cost the
    same per useful result."""
    starts = [0.0, *([local.floor_requests_per_month]
                     if local.floor_requests_per_month else [])]
    below, above = None, None
    for lo, hi in zip(starts, [*starts[1:], math.inf], strict=True):
        gap = local_weight * local.usd_at(lo) - cloud_weight * cloud.usd_at(lo)
        closing = cloud_weight * cloud.usd_per_request_from(lo) \
            - local_weight * local.usd_per_request_from(lo)
        if gap == 0 or closing == 0 or (gap > 0) != (closing > 0) \
                or lo + gap / closing > hi:
            continue
        if gap > 0 and below is None:
            below = lo + gap / closing
        elif gap < 0:
            above = lo + gap / closing
            break
    return below, above


def _capacity_per_month(candidate: Candidate, fleet: LocalDeployment,
                        peak_per_s: float | None = None) -> float | None:
    """Monthly volume at which the traffic's sustained rate reaches the fleet's full-batch
    throughput, an autoscaled fleet's at its max_replicas (its cost line grows with the
    volume up to there): the run's mean rate, or a diurnal traffic's daily peak, which
    lasts hours (None: nothing to scale from)."""
    offered = max(candidate.throughput.offered_requests_per_s, peak_per_s or 0.0)
    if candidate.local is None or offered <= 0:
        return None
    full = candidate.local.full_batch_requests_per_s_with(fleet.autoscaling.max_replicas) \
        if fleet.autoscaling is not None \
        else candidate.local.utilisation.full_batch_requests_per_s
    return candidate.cost.requests_per_month * full / offered if full is not None else None


def _must_grow(local: str, loaded: LoadedScenario, volume: float | None,
               capacity: float | None, within: str = "", *,
               again: float | None = None) -> str | None:
    """What the fleet must grow to when a volume where it and the API cost the same is
    past the most it serves a month (None: none is): the break-even `volume`, above which
    the fleet costs less, or, that one within it, the one where it costs more `again`, up
    to which it does. A fixed fleet, replicas whose fixed costs move the crossing; an
    autoscaled one, replicas past its autoscaling.max_replicas, which it will not start
    until that cap is raised (owned, bought as well)."""
    if capacity is None or capacity <= 0:
        return None
    if volume is not None and volume > capacity:
        at, point = volume, "the break-even"
    elif again is not None and again > capacity:
        at, point = again, "the volume up to which it costs less"
    else:
        return None
    dep = loaded.scenario.deployments[local]
    assert isinstance(dep, LocalDeployment)
    has = dep.max_replicas
    needs = math.ceil(at / capacity * has)
    serves = f"{local} serves at most {capacity / 1e6:,.1f} M requests a month{within} with "
    if dep.autoscaling is None:
        return (f"{serves}{has} replica{'s' if has > 1 else ''}: at {point} "
                f"({at / 1e6:,.1f} M) it needs at least {needs}, whose fixed costs move "
                f"{'the break-even further out' if at == volume else 'it nearer'}")
    # rented, replicas above the cap cost what those above the floor do, as the cost line
    # has them; owned, max_replicas is what was bought, and more must be
    moved = 'the break-even further out' if at == volume else 'that volume nearer'
    cost = (f"more GPUs to buy, which move {moved}" if dep.costs.ownership == "owned" else
            "rented as those above its floor are, they leave "
            f"{'the break-even' if at == volume else 'that volume'} where it is")
    return (f"{serves}its autoscaling.max_replicas of {has}: at {point} "
            f"({at / 1e6:,.1f} M) it needs at least {needs}, past that cap (raise it): "
            f"{cost}")


def with_slo_capacity(rows: list[BreakEven], planning: Planning,
                      loaded: LoadedScenario) -> list[BreakEven]:
    """The break-even rows checked against what each fleet serves within the SLO, which
    planning found: the month's volume at which the busiest stretch arrives at the
    fleet's highest sustainable rate (full batches are an upper bound the SLO binds
    first, often by far: a diurnal peak several times the mean), never above that bound
    (planning caps the rate where the traffic's sustained rate reaches full batches, and
    the stretch's own pace may put the two a hair apart)."""
    out = []
    for row in rows:
        slo = planning.monthly_capacity(row.local, row.simulated_requests_per_month)
        if slo is None:
            out.append(row)
            continue
        if row.local_capacity_requests_per_month is not None:
            slo = min(slo, row.local_capacity_requests_per_month)
        grow = _must_grow(row.local, loaded, row.break_even_requests_per_month, slo,
                          " within the SLO", again=row.local_dearer_again_requests_per_month)
        out.append(row.model_copy(update={"local_slo_capacity_requests_per_month": slo,
                                          "fleet_must_grow": grow}))
    return out
