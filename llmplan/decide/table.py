"""The seed's decision table and evaluation checklist, filled with this scenario's evidence."""

from __future__ import annotations

from llmplan.results.decision import Candidate, ChecklistItem, DecisionRow
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, CloudLatency, HybridDeployment
from llmplan.scenario.models import LocalDeployment, Scenario

#: the scale row names what holds a full batch back when it is not the GPUs
BOUND_NOTES = {"api_server": "; full batches wait on the API server",
               "cpu": "; full batches wait on the engine's CPU"}

QUESTIONS = ("data_location", "model_quality", "latency", "scale", "operations", "cost",
             "compliance")


def decision_table(candidates: dict[str, Candidate],
                   loaded: LoadedScenario) -> list[DecisionRow]:
    """The seed's seven questions, answered per candidate with this scenario's numbers."""
    scenario = loaded.scenario
    first = next(iter(candidates.values()))
    restricted_tasks = {t.name for t in scenario.tasks if t.sensitivity == "restricted"}
    restricted = sum(s.requests for t, s in first.per_task.items() if t in restricted_tasks)
    total = first.requests.total or 1
    rows: dict[str, dict[str, str]] = {q: {} for q in QUESTIONS}
    for name, s in candidates.items():
        cloud_share = (s.cloud.served / total) if s.cloud is not None else 0.0
        left = (s.hybrid.restricted_served_by_cloud if s.hybrid is not None
                else restricted if s.kind == "cloud" else 0)
        rows["data_location"][name] = (
            f"{cloud_share:.0%} of requests sent to the provider; "
            f"{restricted / total:.0%} of requests are restricted, {left:,} of them left "
            f"owned hardware")
        rows["model_quality"][name] = (f"{s.useful.useful_fraction or 0.0:.1%} useful results "
                                       f"({s.useful.quality_source})")
        lat = s.latency
        rows["latency"][name] = (f"TTFT p95 {_ms(lat.ttft_ms.p95)}, E2E p95 "
                                 f"{_ms(lat.e2e_ms.p95)}; goodput "
                                 f"{s.slo.goodput_fraction or 0.0:.1%}")
        scale = []
        if s.local is not None:
            util = s.local.utilisation
            bound = BOUND_NOTES.get(util.full_batch_step_bound_by, "")
            scale.append(f"{util.achieved_requests_per_s:,.1f} of "
                         f"{util.full_batch_requests_per_s:,.1f} req/s the fleet can serve "
                         f"({util.load_fraction:.0%}{bound}); memory bandwidth "
                         f"{util.mbu_fraction:.0%}, compute {util.mfu_fraction:.0%} of peak; "
                         f"KV cache {util.kv_cache_mean_fraction:.0%} full")
            prefix = s.local.prefix_cache
            if prefix is not None:
                scale.append(f"prefix cache ({prefix.policy}): "
                             f"{prefix.hit_rate_tokens:.0%} of prompt tokens")
        if s.cloud is not None:
            scale.append(f"{s.cloud.throttled_requests:,} requests throttled (429)")
        rows["scale"][name] = "; ".join(scale) or "-"
        hours = [i for i in s.cost.items if i.item in ("engineering", "on_call")]
        rows["operations"][name] = ("; ".join(f"{i.item}: {i.basis}" for i in hours)
                                    or "provider-managed")
        rows["cost"][name] = (f"${s.cost.monthly_usd:,.0f}/month, "
                              f"${(s.cost.usd_per_useful_result or 0):.4f} per useful result")
        rows["compliance"][name] = ("feasible" if s.feasible else
                                    "; ".join(s.infeasible_because))
    return [DecisionRow(question=q, answers=a) for q, a in rows.items()]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def checklist(loaded: LoadedScenario) -> list[ChecklistItem]:
    """The seed's evaluation checklist: what this run measured, simulated or assumed."""
    scenario = loaded.scenario
    quality_given = any(t.quality for t in scenario.tasks)
    evaluated = scenario.evaluations
    calibrated = [n for n, d in scenario.deployments.items() if isinstance(d, LocalDeployment)
                  and d.step_time.kind == "calibrated"]
    outages = [n for n, d in scenario.deployments.items() if isinstance(d, CloudDeployment)
               and (d.outages.windows or d.outages.mtbf_hours)]
    restricted = [t.name for t in scenario.tasks if t.sensitivity == "restricted"]
    hybrids = [n for n, d in scenario.deployments.items() if isinstance(d, HybridDeployment)]
    clouds = [n for n, d in scenario.deployments.items() if isinstance(d, CloudDeployment)]
    given_latency = [n for n, d in scenario.deployments.items()
                     if isinstance(d, CloudDeployment) and d.latency != CloudLatency()]
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
         _latency_evidence(scenario, calibrated, clouds, given_latency)),
        ("What is the total cost per useful result?", "simulated",
         "every item of both cost lists, monthly, at the traffic's long-run volume"),
        ("Who patches and monitors the system?", "assumed",
         "engineering and on-call hours per month in the cost model"),
        ("Can you roll back model changes?", "provisioned",
         "infra/: versioned images, rolling update with maxUnavailable 1"),
        ("What happens during network or provider outages?",
         "simulated" if outages else "assumed",
         f"outages simulated for {', '.join(outages)}" if outages
         else "no outage windows or MTBF given"),
    ]
    return [ChecklistItem(item=item, status=status, evidence=evidence)
            for item, status, evidence in items]


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


def _latency_evidence(scenario: Scenario, calibrated: list[str], clouds: list[str],
                      given: list[str]) -> str:
    local = [n for n, d in scenario.deployments.items() if isinstance(d, LocalDeployment)]
    parts = []
    if calibrated:
        parts.append(f"calibrated from a real server: {', '.join(calibrated)}")
    if set(local) - set(calibrated):
        parts.append(f"{', '.join(n for n in local if n not in calibrated)}: roofline "
                     f"defaults (fitted to published figures); calibrate with `llmplan "
                     f"loadtest` + `llmplan calibrate`")
    if given:
        parts.append(f"provider latency given in the scenario for {', '.join(given)}")
    if set(clouds) - set(given):
        parts.append(f"{', '.join(n for n in clouds if n not in given)}: assumed provider "
                     f"latency (llmplan's defaults); measure it with `llmplan loadtest`")
    return "; ".join(parts)
