"""One simulated deployment as a candidate: its cost, and every reason it cannot be chosen
(hard constraints, the SLO, an API's limits, a fleet that cannot carry the traffic)."""

from __future__ import annotations

from llmplan.catalog.lifecycle import retired_reason
from llmplan.decide.costs import over_budget
from llmplan.decide.daily import daily_limit_reason
from llmplan.decide.pricing import price
from llmplan.decide.table import rate_shown
from llmplan.results.decision import Candidate
from llmplan.results.simulation import DeploymentResult, RunInfo
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import LocalDeployment, region_within
from llmplan.sim.cloud import make_limiter
from llmplan.traffic.arrivals import duration_words


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
