"""The seed's decision table and evaluation checklist, filled with this scenario's evidence."""

from __future__ import annotations

import math

from llmplan.decide.drivers import SloHeadroom
from llmplan.results.decision import Candidate, ChecklistItem, DecisionRow
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import LocalDeployment, Scenario

#: the scale row names what holds a full batch back when it is not the GPUs
BOUND_NOTES = {"api_server": "; full batches wait on the API server",
               "cpu": "; full batches wait on the engine's CPU"}

QUESTIONS = ("data_location", "model_quality", "latency", "scale", "operations", "cost",
             "compliance")
#: the seed guide's decision table: when each question favours local, and when cloud
SEED_FIT = {
    "data_location": ("data must stay on owned hardware",
                      "data can be sent to a provider under policy"),
    "model_quality": ("a good enough smaller model is acceptable",
                      "the best available model quality matters"),
    "latency": ("local network or offline latency matters", "internet latency is acceptable"),
    "scale": ("the workload is predictable", "the workload changes quickly"),
    "operations": ("the team can manage GPUs and updates",
                   "the team wants managed infrastructure"),
    "cost": ("high steady usage can justify hardware", "variable usage favors pay-as-you-go"),
    "compliance": ("a strict local processing requirement",
                   "vendor controls and contracts are acceptable"),
}


def decision_table(candidates: dict[str, Candidate], loaded: LoadedScenario,
                   headroom: dict[str, SloHeadroom] | None = None, *,
                   mean_requests_per_s: float | None = None) -> list[DecisionRow]:
    """The seed's seven questions, answered per candidate with this scenario's numbers
    (with planning's `headroom`, a fleet's load against what it sustains within the SLO,
    which binds before full batches do; `mean_requests_per_s`: the traffic's long-run
    rate, the month's, which an API's limits are set against)."""
    scenario = loaded.scenario
    first = next(iter(candidates.values()))
    restricted_tasks = {t.name for t in scenario.tasks if t.sensitivity == "restricted"}
    restricted = sum(s.requests for t, s in first.per_task.items() if t in restricted_tasks)
    rows: dict[str, dict[str, str]] = {q: {} for q in QUESTIONS}
    for name, s in candidates.items():
        rows["data_location"][name] = _data_location(s, restricted)
        rows["model_quality"][name] = _model_quality(name, s, scenario)
        lat = s.latency
        rows["latency"][name] = (f"TTFT p95 {_ms(lat.ttft_ms.p95)}, E2E p95 "
                                 f"{_ms(lat.e2e_ms.p95)}; goodput "
                                 f"{s.slo.goodput_shown()}"
                                 + ("" if s.slo.met else
                                    f" (misses the SLO: {s.slo.required_shown()} "
                                    f"required)"))
        scale = []
        if s.local is not None:
            util = s.local.utilisation
            bound = BOUND_NOTES.get(util.full_batch_step_bound_by, "")
            if headroom is not None and name in headroom:
                busiest, slo = headroom[name]
                within = (f"{rate_shown(busiest)} of {rate_shown(slo)} req/s it sustains "
                          f"within the SLO at the busiest stretch's pace "
                          f"({busiest / slo:.0%})") if busiest <= slo else \
                    (f"sustains {rate_shown(slo)} req/s within the SLO, below the "
                     f"{rate_shown(busiest)} the busiest stretch arrives at "
                     f"({busiest / slo:.0%} of it)")
                scale.append(f"{within}; full batches "
                             f"{rate_shown(util.full_batch_requests_per_s)} req/s{bound}")
            else:
                # a hybrid's (its fleet alone, against full batches: not what planning
                # found the whole of it sustains within the SLO)
                whose = "its fleet " if s.hybrid is not None else ""
                scale.append(f"{whose}{rate_shown(util.achieved_requests_per_s)} of "
                             f"{rate_shown(util.full_batch_requests_per_s)} req/s it can "
                             f"serve with full batches ({util.load_fraction:.0%}{bound})")
            scale.append(f"memory bandwidth "
                         f"{util.mbu_fraction:.0%}, compute {util.mfu_fraction:.0%} of peak; "
                         f"KV cache {util.kv_cache_mean_fraction:.0%} full")
            prefix = s.local.prefix_cache
            if prefix is not None:
                scale.append(f"prefix cache ({prefix.policy}): "
                             f"{prefix.hit_rate_tokens:.0%} of prompt tokens")
        if (limits := limit_words(s, mean_requests_per_s)) is not None:
            scale.append(f"limits {limits}")
        if s.cloud is not None:
            gave_up = s.requests.throttled
            scale.append(f"{s.cloud.throttled_requests:,} requests met a 429"
                         + (f" ({gave_up:,} still refused after the retries)" if gave_up
                            else " (all served on a retry)"
                            if s.cloud.throttled_requests else ""))
        rows["scale"][name] = "; ".join(scale) or "-"
        hours = [i for i in s.cost.items
                 if i.item in ("engineering", "on_call", "hardware_incidents")]
        rows["operations"][name] = ("; ".join(f"{i.item}: {i.basis}" for i in hours)
                                    or "provider-managed")
        per_useful = s.cost.usd_per_useful_result
        rows["cost"][name] = (f"${s.cost.monthly_usd:,.0f}/month, " + (
            "no useful result" if per_useful is None
            else f"${per_useful * 1e3:,.2f} per 1k useful results"))
        # the scenario's constraints only: an SLO miss is the latency row's answer
        broken = [r for r in s.infeasible_because if not r.startswith("misses the SLO")]
        rows["compliance"][name] = "; ".join(broken) or "meets every constraint"
    return [DecisionRow(question=q, answers=a) for q, a in rows.items()]


def limit_words(candidate: Candidate, mean_requests_per_s: float | None) -> str | None:
    """"(4,000,000 tokens/min) sustain 67.0 req/s at this token mix, 18% of it at the
    month's mean rate": a cloud API's binding limit against the traffic's long-run rate
    (the run's own mean when that is unknown, and said so), past the limit as a multiple
    of it ("the month's mean rate is 2.03x that (over the limits)"); None without an API's
    limits."""
    cloud = candidate.cloud
    if cloud is None or cloud.limit is None or cloud.limit_sustains_requests_per_s is None:
        return None
    most = cloud.limit_sustains_requests_per_s
    mean = mean_requests_per_s or candidate.throughput.offered_requests_per_s
    whose = "the month's" if mean_requests_per_s else "the run's"
    if mean > most:
        return (f"({cloud.limit}) sustain {rate_shown(most)} req/s at this token mix; "
                f"{whose} mean rate is {mean / most:.2f}x that (over the limits)")
    return (f"({cloud.limit}) sustain {rate_shown(most)} req/s at this token mix, "
            f"{mean / most:.0%} of it at {whose} mean rate")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def share_shown(part: int, whole: int) -> str:
    """A share in whole per cent, never rounded to 0% or 100% when it is neither: near
    either end (within half a per cent, which whole per cent reads as the end) one decimal,
    or where that would still read 0.0% or 100.0%, as many as show two significant digits
    of its distance from that end (14 of 39,606: 0.035%; 39,592 of 39,606: 99.965%). The
    distance is taken from the counts, not from 1 - share, whose rounding error shows
    as a third digit far from the ends (9,999,999 of 10,000,000: 99.999990%)."""
    share = part / whole
    if 0 < part < whole and (share <= 0.005 or share >= 0.995):
        gap_pct = 100.0 * min(part, whole - part) / whole
        decimals = 1
        if float(f"{100.0 * share:.1f}") in (0.0, 100.0):
            decimals = max(2, 1 - math.floor(math.log10(gap_pct)))
        return f"{100.0 * share:.{decimals}f}%"
    return f"{share:.0%}"


def _data_location(s: Candidate, restricted: int) -> str:
    """Where requests went, counted as the simulation routed them. A cloud candidate sends
    every request to the provider, answered or not (a call refused with 429 carried its
    prompt too); a hybrid's figure is what the provider answered."""
    total = s.requests.total or 1
    if s.hybrid is not None:
        sent = f"{share_shown(s.hybrid.served_cloud, total)} of requests answered by the provider"
        left = s.hybrid.restricted_served_by_cloud
        where = f"{left:,} of them answered by the provider" if left else \
            "none of them answered by the provider"
    elif s.cloud is not None:
        sent = (f"every request sent to the provider, {share_shown(s.cloud.served, total)} "
                f"answered by it")
        where = "all of them sent to the provider"
    else:
        sent = "no request sent to a provider"
        where = "all of them kept on owned hardware"
    if not restricted:
        return f"{sent}; no request is restricted"
    return f"{sent}; {restricted:,} restricted requests ({restricted / total:.0%}), {where}"


def _model_quality(name: str, s: Candidate, scenario: Scenario) -> str:
    """The useful share (requests within the SLO x their task's quality) and the task
    quality rates it is made of, for each path of the candidate."""
    dep = scenario.deployments[name]
    paths = ({"local": dep.local, "cloud": dep.cloud} if isinstance(dep, HybridDeployment)
             else {"": name})
    rates, unrated = [], []
    for task in scenario.tasks:
        given = {path: task.quality.get(part, task.quality.get(name))
                 for path, part in paths.items()}
        if all(rate is None for rate in given.values()):
            unrated.append(task.name)
            continue
        rates.append(f"{task.name} " + " / ".join(
            f"{1.0 if rate is None else rate:g}" + (f" {path}" if path else "")
            for path, rate in given.items()))
    useful = (f"{s.useful.useful_fraction or 0.0:.1%} of requests useful (within the SLO x "
              f"task quality)")
    if not rates:
        return f"{useful}; no task quality given: every answer counted right"
    measured = any(part in scenario.evaluations for part in (name, *paths.values()))
    source = "the scenario and its load-test evaluation" if measured else "the scenario"
    other = "; none given for other tasks (counted 1)" if unrated else ""
    return f"{useful}; task quality from {source}: {', '.join(rates)}{other}"


def checklist(loaded: LoadedScenario, recommended: str | None = None,
              candidates: dict[str, Candidate] | None = None) -> list[ChecklistItem]:
    """The seed's evaluation checklist: what this run measured, simulated or assumed. The
    operations items (who patches, rollback, outages) answer for the `recommended`
    candidate's kind when it is given, else for each kind of candidate the scenario has; all
    follow the scenario's constraints (offline operation, restricted data)."""
    scenario = loaded.scenario
    quality_given = any(t.quality for t in scenario.tasks)
    evaluated = scenario.evaluations
    calibrated = [n for n, d in scenario.deployments.items() if isinstance(d, LocalDeployment)
                  and d.step_time.kind == "calibrated"]
    restricted = [t.name for t in scenario.tasks if t.sensitivity == "restricted"]
    hybrids = [n for n, d in scenario.deployments.items() if isinstance(d, HybridDeployment)]
    clouds = [n for n, d in scenario.deployments.items() if isinstance(d, CloudDeployment)]
    # where each API's latency comes from: given in the scenario, measured in the catalog,
    # or llmplan's defaults
    latency_basis = {n: d.latency_from(loaded.catalog.cloud_models.get(d.model))
                     for n, d in scenario.deployments.items() if isinstance(d, CloudDeployment)}
    chosen = scenario.deployments.get(recommended) if recommended is not None else None
    items = [
        ("Does the model answer correctly on your task?",
         "measured" if evaluated else "given" if quality_given else "assumed",
         ("answers checked by load tests with a test set: "
          + ", ".join(f"{d} ({p})" for d, p in evaluated.items())) if evaluated
         else "task quality rates given in the scenario (measure them with a load test's "
              "test set and `evaluations:`)" if quality_given
         else "no quality rates given: every answer counted useful; run "
              "`llmplan loadtest --test-set` and point `evaluations:` at it"),
        ("Can it refuse when it lacks evidence?", "assumed",
         "add must_refuse items to the load test's test set to measure it"),
        ("How does it handle private or regulated data?",
         "simulated" if restricted else "not applicable",
         _restricted_evidence(restricted, hybrids, clouds)),
        ("What is the real latency under load?",
         "measured" if calibrated else "simulated",
         _latency_evidence(scenario, calibrated, latency_basis)),
        ("What is the total cost per useful result?", "simulated",
         "every item of both cost lists, monthly, at the traffic's long-run volume"),
        ("Who patches and monitors the system?",
         *_upkeep(scenario, recommended, chosen)),
        ("Can you roll back model changes?", *_rollback(scenario, recommended, chosen)),
        ("What happens during network or provider outages?",
         *_outages(scenario, recommended, chosen, _fallback_fleet(chosen, candidates))),
    ]
    return [ChecklistItem(item=item, status=status, evidence=evidence)
            for item, status, evidence in items]


Deployment = LocalDeployment | CloudDeployment | HybridDeployment

#: how infra/ rolls a fleet back: what `llmplan stack` provisions
ROLLBACK = "infra/ builds versioned images and rolls updates out with maxUnavailable 1"


def _lone_replica(fleet: LocalDeployment) -> str:
    """What a rollout means for a fleet of one replica: the old pod goes before the new one
    serves, so the fleet is down for a start-up (its simulated spin-up)."""
    low = fleet.autoscaling.min_replicas if fleet.autoscaling is not None else fleet.replicas
    if low > 1:
        return ""
    spin_up = fleet.autoscaling.spin_up_s if fleet.autoscaling is not None else None
    took = f", about {spin_up:g} s as simulated," if spin_up is not None else ""
    return (f"; with one replica an update or a rollback stops it for a start-up{took} "
            f"with nothing serving meanwhile: run two replicas, or update off-hours")


def _names(scenario: Scenario, kind: type) -> list[str]:
    return [n for n, d in scenario.deployments.items() if isinstance(d, kind)]


def _api_model(scenario: Scenario, name: str) -> str:
    dep = scenario.deployments[name]
    return dep.model if isinstance(dep, CloudDeployment) else name


def _upkeep(scenario: Scenario, recommended: str | None,
            chosen: Deployment | None) -> tuple[str, str]:
    hours = "engineering and on-call hours per month in the cost model"
    if isinstance(chosen, CloudDeployment):
        return ("provider-managed", f"{recommended}: the provider patches and monitors "
                                    f"{chosen.model}; your side is the client and its keys")
    if chosen is not None:
        return "assumed", f"{recommended}: {hours}"
    if not _names(scenario, LocalDeployment):
        return "provider-managed", "every candidate is a provider's API"
    return "assumed", hours + (" (provider APIs: the provider's)"
                               if _names(scenario, CloudDeployment) else "")


def _rollback(scenario: Scenario, recommended: str | None,
              chosen: Deployment | None) -> tuple[str, str]:
    pin = "pin a dated model id; the provider retires old versions on its own schedule"
    if isinstance(chosen, CloudDeployment):
        return ("provider-managed", f"{recommended} is the provider's {chosen.model}: nothing "
                                    f"provisioned to roll back; {pin}")
    if isinstance(chosen, HybridDeployment):
        fleet = scenario.deployments[chosen.local]
        lone = _lone_replica(fleet) if isinstance(fleet, LocalDeployment) else ""
        return ("provisioned", f"{recommended}'s fleet {chosen.local}: {ROLLBACK}{lone}; its "
                               f"API side ({_api_model(scenario, chosen.cloud)}): {pin}")
    if isinstance(chosen, LocalDeployment):
        return "provisioned", f"{recommended}: {ROLLBACK}{_lone_replica(chosen)}"
    fleets, apis = _names(scenario, LocalDeployment), _names(scenario, CloudDeployment)
    if not fleets:
        return "provider-managed", f"nothing provisioned to roll back; {pin}"
    if not apis:
        return "provisioned", ROLLBACK
    return ("provisioned for fleets", f"fleets {', '.join(fleets)}: {ROLLBACK}; API "
                                      f"candidates {', '.join(apis)}: nothing provisioned, {pin}")


def _fallback_fleet(chosen: Deployment | None,
                    candidates: dict[str, Candidate] | None) -> Candidate | None:
    """A hybrid's local fleet as simulated alone on the whole traffic (what it would face
    with the API down), when the scenario has it as a candidate of its own."""
    if not isinstance(chosen, HybridDeployment) or candidates is None:
        return None
    return candidates.get(chosen.local)


def _outages(scenario: Scenario, recommended: str | None, chosen: Deployment | None,
             simulated_as: Candidate | None = None) -> tuple[str, str]:
    apis = _names(scenario, CloudDeployment)
    dependent = [*apis, *_names(scenario, HybridDeployment)]
    simulated = [n for n, d in scenario.deployments.items() if isinstance(d, CloudDeployment)
                 and (d.outages.windows or d.outages.mtbf_hours)]
    if scenario.constraints.offline_operation_required:
        excluded = (f"{', '.join(dependent)} excluded for depending on a cloud API"
                    if dependent else "no candidate depends on a cloud API")
        kept = (f"{recommended} runs on owned hardware" if recommended is not None
                and isinstance(chosen, LocalDeployment) else "")
        return "constraint", "; ".join(p for p in ("offline operation required by the "
                                                   "scenario", excluded, kept) if p)
    if isinstance(chosen, LocalDeployment):
        failures = ("replica failures simulated (failures:)" if chosen.failures is not None
                    else "replica failures not simulated (add failures: with an MTBF)")
        return "not applicable", f"{recommended} runs on owned hardware, no provider; {failures}"
    api = (recommended if isinstance(chosen, CloudDeployment) else
           chosen.cloud if isinstance(chosen, HybridDeployment) else None)
    if api is not None:
        fallback = (f"; {recommended} falls back to {chosen.local}"
                    if isinstance(chosen, HybridDeployment) and chosen.fallback_to_local else "")
        if fallback and simulated_as is not None and simulated_as.local is not None:
            # whether the fleet could take the API's share while the API is down: as a
            # candidate of its own it faced the whole traffic
            most = simulated_as.local.utilisation.full_batch_requests_per_s
            if not simulated_as.slo.met:
                fallback += (f", which alone on the whole traffic meets "
                             f"{simulated_as.slo.goodput_fraction or 0.0:.0%} of it within the "
                             f"SLO (at most {most:,.1f} req/s with full batches): during an "
                             f"outage requests queue and miss the SLO (simulate one: outages: "
                             f"on {api})")
        if api in simulated:
            return "simulated", f"outages of {api} simulated{fallback}"
        return "assumed", (f"no outage windows or MTBF given for {api}: simulated with the "
                           f"provider always up{fallback}")
    if simulated:
        return "simulated", f"outages simulated for {', '.join(simulated)}"
    if not dependent:
        return "not applicable", "every candidate runs on owned hardware, no provider"
    return "assumed", f"no outage windows or MTBF given for {', '.join(apis)}"


def _restricted_evidence(restricted: list[str], hybrids: list[str], clouds: list[str]) -> str:
    if not restricted:
        return "no task is marked restricted"
    parts = [f"tasks {', '.join(restricted)} are restricted"]
    if hybrids:
        parts.append(f"the hybrid router of {', '.join(hybrids)} keeps them on owned "
                     f"hardware, checked request by request")
    if clouds:
        parts.append(f"{', '.join(clouds)} would send them to a provider: infeasible")
    return "; ".join(parts)


def _latency_evidence(scenario: Scenario, calibrated: list[str],
                      cloud_basis: dict[str, str]) -> str:
    """`cloud_basis`: each API deployment's CloudDeployment.latency_from."""
    local = [n for n, d in scenario.deployments.items() if isinstance(d, LocalDeployment)]
    parts = []
    if calibrated:
        parts.append(f"calibrated from a real server: {', '.join(calibrated)}")
    if set(local) - set(calibrated):
        parts.append(f"{', '.join(n for n in local if n not in calibrated)}: roofline "
                     f"defaults (fitted to published figures); calibrate with `llmplan "
                     f"loadtest` + `llmplan calibrate`")
    given = [n for n, basis in cloud_basis.items() if basis.startswith("given")]
    measured = {n: basis for n, basis in cloud_basis.items() if basis.startswith("catalog")}
    assumed = [n for n in cloud_basis if n not in given and n not in measured]
    if given:
        parts.append(f"provider latency given in the scenario for {', '.join(given)}")
    if measured:
        # "catalog: measured (Artificial Analysis, 2026-12-07)..." -> "api (Artificial ...)"
        parts.append("provider latency measured by public benchmarks of the provider's API, "
                     "from the catalog, for "
                     + ", ".join(f"{n} ({basis.removeprefix('catalog: measured (')}"
                                 for n, basis in measured.items())
                     + "; measure your own with `llmplan loadtest`")
    if assumed:
        parts.append(f"{', '.join(assumed)}: assumed provider latency (llmplan's defaults); "
                     f"measure it with `llmplan loadtest`")
    return "; ".join(parts)


def rate_shown(requests_per_s: float) -> str:
    """A rate with three significant figures (0.0178, 0.375, 41.7), whole from 100 on, never
    in exponent notation."""
    if requests_per_s >= 100:
        return f"{requests_per_s:,.0f}"
    if requests_per_s <= 0:
        return "0"
    return f"{requests_per_s:.{max(0, 2 - math.floor(math.log10(requests_per_s)))}f}"
