"""Which deployment wins, why, and where the answer would flip.

From the simulated results: the cost of each candidate (costs.py), scaled from the
simulated window to a month; feasibility (hard constraints, then the SLO); a ranking of the
feasible ones by cost per useful result; the seed's decision table filled with this
scenario's numbers; its evaluation checklist saying what was measured, simulated or
assumed; and the break-even monthly volume between every local and every cloud candidate.
"""

from __future__ import annotations

from typing import Any

from llmplan.decide.costs import (
    CloudFacts,
    CostItem,
    LocalFacts,
    cloud_items,
    items_as_dict,
    local_items,
)
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import LocalDeployment


def month_factor(result: dict[str, Any], loaded: LoadedScenario) -> float:
    """Months are hours_per_month long; the simulation covered duration_s."""
    duration_s = float(result["scenario"]["duration_s"])
    return loaded.scenario.economics.hours_per_month * 3600.0 / duration_s


def deployment_costs(name: str, summary: dict[str, Any], loaded: LoadedScenario,
                     factor: float) -> list[CostItem]:
    scenario, catalog = loaded.scenario, loaded.catalog
    dep = scenario.deployments[name]
    econ = scenario.economics
    items: list[CostItem] = []
    local = dep if isinstance(dep, LocalDeployment) else None
    cloud = dep if isinstance(dep, CloudDeployment) else None
    if isinstance(dep, HybridDeployment):
        local_part, cloud_part = scenario.deployments[dep.local], scenario.deployments[dep.cloud]
        assert isinstance(local_part, LocalDeployment) and isinstance(cloud_part, CloudDeployment)
        local, cloud = local_part, cloud_part
    if local is not None:
        # owned: every GPU the fleet may use is bought; rented: pay for the hours in use
        replicas = (local.max_replicas if local.costs.ownership == "owned"
                    else summary["fleet"]["mean_active_replicas"])
        facts = LocalFacts(gpus=replicas * local.tp,
                           busy_fraction=summary["utilisation"]["gpu_busy_fraction"])
        items += local_items(local, catalog, econ, facts)
    if cloud is not None:
        part = summary["cloud"]
        facts_c = CloudFacts(input_tokens=part["input_tokens"] * factor,
                             output_tokens=part["output_tokens"] * factor,
                             requests=part["served"] * factor)
        items += [CostItem(f"cloud_{i.name}" if local is not None else i.name,
                           i.usd_per_month, i.variable, i.basis)
                  for i in cloud_items(cloud, catalog, econ, facts_c)]
    return items


def cost_summary(items: list[CostItem], summary: dict[str, Any], factor: float) -> dict[str, Any]:
    monthly = sum(i.usd_per_month for i in items)
    requests = summary["requests"]["total"] * factor
    tokens = summary["throughput"]["output_tokens_per_s"] * summary.get("_duration_s", 0.0)
    useful = summary["useful"]["expected_useful_requests"] * factor
    fixed = sum(i.usd_per_month for i in items if not i.variable)
    return {
        "monthly_usd": monthly,
        "fixed_usd_per_month": fixed,
        "variable_usd_per_month": monthly - fixed,
        "requests_per_month": requests,
        "useful_results_per_month": useful,
        "usd_per_1k_requests": monthly / requests * 1e3 if requests else None,
        "usd_per_million_output_tokens": (monthly / (tokens * factor) * 1e6
                                          if tokens else None),
        "usd_per_useful_result": monthly / useful if useful else None,
        "items": items_as_dict(items),
    }


def infeasibility(name: str, summary: dict[str, Any], loaded: LoadedScenario,
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
    if isinstance(dep, HybridDeployment) and summary["hybrid"]["restricted_served_by_cloud"]:
        reasons.append("restricted requests reached the cloud")   # must never happen
    if rules.data_residency:
        regions = [scenario.deployments[n] for n in ([dep.cloud] if isinstance(
            dep, HybridDeployment) else [name])]
        outside = [c.region for c in regions
                   if isinstance(c, CloudDeployment) and c.region not in rules.data_residency]
        if outside:
            reasons.append(f"processes data in {', '.join(outside)}, outside the allowed "
                           f"regions ({', '.join(rules.data_residency)})")
    if rules.offline_operation_required and not isinstance(dep, LocalDeployment):
        reasons.append("must work offline, and it depends on a cloud API")
    if rules.max_monthly_usd is not None and monthly_usd > rules.max_monthly_usd:
        reasons.append(f"costs ${monthly_usd:,.0f}/month, over the ${rules.max_monthly_usd:,.0f}"
                       f" budget")
    slo = summary["slo"]
    if not slo["met"]:
        reasons.append(f"misses the SLO: {slo['goodput_fraction']:.1%} of requests within "
                       f"bounds, {slo['min_goodput_fraction']:.0%} required")
    return reasons


def decide(result: dict[str, Any], loaded: LoadedScenario) -> dict[str, Any]:
    """Add cost, feasibility and the recommendation to a simulation result (in place)."""
    factor = month_factor(result, loaded)
    deployments = result["deployments"]
    for name, summary in deployments.items():
        summary["_duration_s"] = result["scenario"]["duration_s"]
        items = deployment_costs(name, summary, loaded, factor)
        summary["cost"] = cost_summary(items, summary, factor)
        del summary["_duration_s"]
        reasons = infeasibility(name, summary, loaded, summary["cost"]["monthly_usd"])
        summary["feasible"] = not reasons
        summary["infeasible_because"] = reasons
    ranking = sorted((n for n, s in deployments.items() if s["feasible"]),
                     key=lambda n: (deployments[n]["cost"]["usd_per_useful_result"]
                                    or float("inf"), n))
    ranking += sorted(n for n, s in deployments.items() if not s["feasible"])
    result["recommendation"] = _recommendation(ranking, deployments)
    result["break_even"] = break_even(deployments, loaded)
    result["decision_table"] = decision_table(deployments, loaded)
    result["checklist"] = checklist(deployments, loaded)
    return result


def _recommendation(ranking: list[str], deployments: dict[str, Any]) -> dict[str, Any]:
    feasible = [n for n in ranking if deployments[n]["feasible"]]
    if not feasible:
        return {"deployment": None, "ranking": ranking,
                "reason": "no candidate is feasible: " + "; ".join(
                    f"{n}: {', '.join(deployments[n]['infeasible_because'])}" for n in ranking)}
    best = feasible[0]
    cost = deployments[best]["cost"]
    reason = (f"{best} meets every constraint and the SLO "
              f"({deployments[best]['slo']['goodput_fraction']:.1%} goodput) at "
              f"${cost['usd_per_useful_result']:.4f} per useful result "
              f"(${cost['monthly_usd']:,.0f}/month)")
    if len(feasible) > 1:
        runner_up = feasible[1]
        other = deployments[runner_up]["cost"]["usd_per_useful_result"]
        reason += (f", {other / cost['usd_per_useful_result']:.2f}x cheaper per useful result "
                   f"than {runner_up}")
    excluded = [n for n in ranking if not deployments[n]["feasible"]]
    if excluded:
        reason += "; excluded: " + "; ".join(
            f"{n} ({deployments[n]['infeasible_because'][0]})" for n in excluded)
    return {"deployment": best, "ranking": ranking, "reason": reason}


def break_even(deployments: dict[str, Any], loaded: LoadedScenario) -> list[dict[str, Any]]:
    """Monthly request volume where each local and each cloud candidate cost the same.

    Costs are modelled as fixed + variable x volume (variable per request at the simulated
    mix); the local side is only valid up to its simulated capacity.
    """
    out = []
    kinds = {n: loaded.scenario.deployments[n].kind for n in deployments}
    for local in (n for n in deployments if kinds[n] == "local"):
        for cloud in (n for n in deployments if kinds[n] == "cloud"):
            a, b = deployments[local]["cost"], deployments[cloud]["cost"]
            va = a["variable_usd_per_month"] / a["requests_per_month"]
            vb = b["variable_usd_per_month"] / b["requests_per_month"]
            volume = None
            if vb > va:
                volume = (a["fixed_usd_per_month"] - b["fixed_usd_per_month"]) / (vb - va)
            out.append({"local": local, "cloud": cloud,
                        "local_fixed_usd": a["fixed_usd_per_month"],
                        "local_usd_per_request": va, "cloud_fixed_usd": b["fixed_usd_per_month"],
                        "cloud_usd_per_request": vb,
                        "break_even_requests_per_month": volume if volume and volume > 0
                        else None,
                        "simulated_requests_per_month": a["requests_per_month"]})
    return out


def decision_table(deployments: dict[str, Any], loaded: LoadedScenario) -> list[dict[str, Any]]:
    """The seed's seven questions, answered per candidate with this scenario's numbers."""
    scenario = loaded.scenario
    restricted = sum(s["requests"] for t, s in next(iter(deployments.values()))["per_task"].items()
                     if any(x.name == t and x.sensitivity == "restricted"
                            for x in scenario.tasks))
    total = next(iter(deployments.values()))["requests"]["total"] or 1
    rows: dict[str, dict[str, str]] = {q: {} for q in (
        "data_location", "model_quality", "latency", "scale", "operations", "cost",
        "compliance")}
    for name, s in deployments.items():
        kind = s["kind"]
        cloud_share = (s["cloud"]["served"] / total) if "cloud" in s else 0.0
        left = (s["hybrid"]["restricted_served_by_cloud"] if kind == "hybrid"
                else restricted if kind == "cloud" else 0)
        rows["data_location"][name] = (
            f"{cloud_share:.0%} of requests sent to the provider; "
            f"{restricted / total:.0%} of requests are restricted, {left:,} of them left "
            f"owned hardware")
        rows["model_quality"][name] = (f"{s['useful']['useful_fraction']:.1%} useful results "
                                       f"({s['useful']['quality_source']})")
        lat = s["latency"]
        rows["latency"][name] = (f"TTFT p95 {_ms(lat['ttft_ms']['p95'])}, E2E p95 "
                                 f"{_ms(lat['e2e_ms']['p95'])}; goodput "
                                 f"{s['slo']['goodput_fraction']:.1%}")
        util = s.get("utilisation", {})
        scale = []
        if util:
            scale.append(f"GPU busy {util['gpu_busy_fraction']:.0%}, "
                         f"KV {util['kv_cache_mean_fraction']:.0%}")
        if "cloud" in s:
            scale.append(f"{s['cloud']['throttled_requests']:,} requests throttled (429)")
        rows["scale"][name] = "; ".join(scale) or "-"
        hours = [i for i in s["cost"]["items"] if i["item"] in ("engineering", "on_call")]
        rows["operations"][name] = ("; ".join(f"{i['item']}: {i['basis']}" for i in hours)
                                    or "provider-managed")
        cost = s["cost"]
        rows["cost"][name] = (f"${cost['monthly_usd']:,.0f}/month, "
                              f"${(cost['usd_per_useful_result'] or 0):.4f} per useful result")
        rows["compliance"][name] = ("feasible" if s["feasible"] else
                                    "; ".join(s["infeasible_because"]))
    return [{"question": q, "answers": a} for q, a in rows.items()]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def checklist(deployments: dict[str, Any], loaded: LoadedScenario) -> list[dict[str, str]]:
    """The seed's evaluation checklist: what this run measured, simulated or assumed."""
    scenario = loaded.scenario
    quality_given = any(t.quality for t in scenario.tasks)
    evaluated = scenario.evaluations
    calibrated = [n for n, d in scenario.deployments.items() if isinstance(d, LocalDeployment)
                  and d.step_time.kind == "calibrated"]
    outages = [n for n, d in scenario.deployments.items() if isinstance(d, CloudDeployment)
               and (d.outages.windows or d.outages.mtbf_hours)]
    restricted = [t.name for t in scenario.tasks if t.sensitivity == "restricted"]
    return [
        {"item": "Does the model answer correctly on your task?",
         "status": "measured" if evaluated else "given" if quality_given else "assumed",
         "evidence": ("answers checked by load tests with a test set: "
                      + ", ".join(f"{d} ({p})" for d, p in evaluated.items())) if evaluated
         else "task quality rates given in the scenario (measure them with a load test's "
              "test set and `evaluations:`)" if quality_given
         else "no quality rates given: every answer counted useful; run "
              "`llmplan loadtest --test-set` and point `evaluations:` at it"},
        {"item": "Can it refuse when it lacks evidence?", "status": "assumed",
         "evidence": "add must_refuse items to the load test's test set to measure it"},
        {"item": "How does it handle private or regulated data?",
         "status": "simulated" if restricted else "not applicable",
         "evidence": f"tasks {', '.join(restricted)} are restricted; the hybrid router keeps "
                     f"them local and every request was checked" if restricted
         else "no task is marked restricted"},
        {"item": "What is the real latency under load?",
         "status": "measured" if calibrated else "simulated",
         "evidence": f"calibrated from a real server: {', '.join(calibrated)}" if calibrated
         else "roofline defaults (fitted to published figures); calibrate with "
              "`llmplan loadtest` + `llmplan calibrate`"},
        {"item": "What is the total cost per useful result?", "status": "simulated",
         "evidence": "every item of both cost lists, monthly, from the simulated volume"},
        {"item": "Who patches and monitors the system?", "status": "assumed",
         "evidence": "engineering and on-call hours per month in the cost model"},
        {"item": "Can you roll back model changes?", "status": "provisioned",
         "evidence": "infra/: versioned images, rolling update with maxUnavailable 1"},
        {"item": "What happens during network or provider outages?",
         "status": "simulated" if outages else "assumed",
         "evidence": f"outages simulated for {', '.join(outages)}" if outages
         else "no outage windows or MTBF given"},
    ]
