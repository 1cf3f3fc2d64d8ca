"""Every cost item against a hand-worked example, and break-even against its closed form."""

from __future__ import annotations

import html
import math

import pytest
from helpers import page_text, scenario_from

from llmplan.catalog import builtin_catalog
from llmplan.decide.costs import CloudFacts, LocalFacts, cloud_items, local_items
from llmplan.decide.table import rate_shown
from llmplan.pipeline import evaluate
from llmplan.report.cost_charts import break_even_chart
from llmplan.report.page import render
from llmplan.results.decision import Candidate
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment
from llmplan.scenario.models import FailureSpec, LocalDeployment

SCENARIO = """
    seed: 1
    duration: 3600
    traffic: {kind: constant, rate_per_s: 2}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 1000},
             output_tokens: {kind: fixed, tokens: 200}}]
    economics: {amortisation_months: 36, electricity_usd_per_kwh: ELECTRICITY, pue: 1.5,
                idle_power_fraction: 0.3, server_power_w: 1000, engineer_usd_per_hour: 100,
                hours_per_month: 730}
    catalog:
      gpus:
        H100-SXM: {purchase_usd: 25000, tdp_w: 700, rental_usd_per_gpu_hour: 2.0,
                   reserved_usd_per_gpu_hour: 1.5}
      cloud_models:
        gpt-4o-mini: {input_usd_per_mtok: 0.5, output_usd_per_mtok: 2.0,
                      cached_input_usd_per_mtok: 0.25}
    deployments:
      owned:
        gpu: H100-SXM
        model: Llama-3.1-8B
        replicas: 2
        tp: 4
        costs: {server_usd: 35000, gpus_per_server: 8, maintenance_fraction_per_year: 0.06,
                replacement_fraction_per_year: 0.024, rack_usd_per_server_month: 1200,
                cooling_usd_per_month: 250, serving_software_usd_per_gpu_month: 50,
                engineering_hours_per_month: 40, oncall_hours_per_month: 20,
                monitoring_usd_per_month: 300}
      rented:
        gpu: H100-SXM
        model: Llama-3.1-8B
        replicas: 2
        costs: {ownership: rented_reserved, engineering_hours_per_month: 10,
                oncall_hours_per_month: 0, monitoring_usd_per_month: 0}
      api:
        kind: cloud
        model: gpt-4o-mini
        limits: {requests_per_min: 100000, tokens_per_min: 100000000}
        costs: {cached_input_fraction: 0.2, per_request_usd: 0.001, tool_calls_per_request: 0.5,
                usd_per_tool_call: 0.01, storage_retrieval_usd_per_month: 100,
                egress_kb_per_request: 8, egress_usd_per_gb: 0.09,
                observability_usd_per_month: 50, vendor_review_usd_one_off: 3600,
                rate_limit_planning_usd_per_month: 20}
"""


def _loaded(electricity: str = "0.2"):  # type: ignore[no-untyped-def]
    return scenario_from(SCENARIO.replace("ELECTRICITY", electricity))


def test_owned_gpu_items_by_hand() -> None:
    loaded = _loaded()
    dep = loaded.scenario.deployments["owned"]
    assert isinstance(dep, LocalDeployment)
    items = {i.name: i.usd_per_month for i in local_items(
        dep, loaded.catalog, loaded.scenario.economics, LocalFacts(gpus=8, busy_fraction=0.5))}
    hardware = 8 * 25_000 + 1 * 35_000                           # 235,000
    assert items["hardware"] == pytest.approx(hardware / 36)
    kw = (8 * 700 * (0.3 + 0.7 * 0.5) + 1000) / 1000               # 4.64 kW
    assert items["electricity"] == pytest.approx(kw * 1.5 * 730 * 0.2)
    assert items["cooling"] == 250
    assert items["maintenance"] == pytest.approx(hardware * 0.06 / 12)
    assert items["replacement_cycle"] == pytest.approx(hardware * 0.024 / 12)
    assert items["rack_colocation"] == 1200
    assert items["serving_software"] == 8 * 50
    assert items["engineering"] == 40 * 100 and items["on_call"] == 20 * 100
    assert items["monitoring"] == 300
    # Llama 3's fleet: 419 interruptions in 54 days on 16,384 H100s, 4 h each by default
    incidents = 8 * 730 / (16_384 * 54 * 24 / 419)
    assert items["hardware_incidents"] == pytest.approx(incidents * 4 * 100)
    assert len(items) == 11


def test_rented_gpus_replace_purchase_power_and_facility() -> None:
    loaded = _loaded()
    dep = loaded.scenario.deployments["rented"]
    assert isinstance(dep, LocalDeployment)
    items = {i.name: i.usd_per_month for i in local_items(
        dep, loaded.catalog, loaded.scenario.economics, LocalFacts(gpus=2, busy_fraction=0.9))}
    assert items["gpu_rental"] == pytest.approx(2 * 1.5 * 730)
    assert not {"hardware", "electricity", "cooling", "maintenance", "rack_colocation",
                "replacement_cycle"} & set(items)
    assert items["engineering"] == 1000


def test_a_reservation_bills_every_hour_of_the_month_on_demand_only_the_hours_run() -> None:
    """A fleet run 200 hours a month (office hours): on demand it pays for those hours, a
    reservation for all 730 of the month's, used or not."""
    loaded = scenario_from(SCENARIO.replace("ELECTRICITY", "0.2")
                           .replace("hours_per_month: 730", "hours_per_month: 200"))
    economics = loaded.scenario.economics
    reserved = loaded.scenario.deployments["rented"]
    assert isinstance(reserved, LocalDeployment)
    on_demand = reserved.model_copy(update={"costs": reserved.costs.model_copy(
        update={"ownership": "rented_on_demand"})})
    facts = LocalFacts(gpus=2, busy_fraction=0.9)
    bills = {dep.costs.ownership: next(i for i in local_items(dep, loaded.catalog, economics,
                                                              facts) if i.name == "gpu_rental")
             for dep in (reserved, on_demand)}
    assert bills["rented_reserved"].usd_per_month == pytest.approx(2 * 1.5 * 730)
    assert "730 h (reserved: every hour of the month)" in bills["rented_reserved"].basis
    assert bills["rented_on_demand"].usd_per_month == pytest.approx(2 * 2.0 * 200)
    assert bills["rented_on_demand"].basis.endswith("x 200 h")


def test_cloud_items_by_hand() -> None:
    loaded = _loaded()
    dep = loaded.scenario.deployments["api"]
    assert isinstance(dep, CloudDeployment)
    facts = CloudFacts(input_tokens=10e6, output_tokens=2e6, requests=10_000)
    items = {i.name: i.usd_per_month for i in cloud_items(
        dep, loaded.catalog, loaded.scenario.economics, facts)}
    assert items["input_tokens"] == pytest.approx(10 * (0.8 * 0.5 + 0.2 * 0.25))
    assert items["output_tokens"] == pytest.approx(2 * 2.0)
    assert items["request_fees"] == pytest.approx(10)
    assert items["tool_calls"] == pytest.approx(10_000 * 0.5 * 0.01)
    assert items["storage_retrieval"] == 100
    assert items["network_egress"] == pytest.approx(10_000 * 8 / 1e6 * 0.09)
    assert items["observability"] == 50
    assert items["vendor_review"] == pytest.approx(3600 / 36)
    assert items["rate_limit_planning"] == 20


def test_break_even_matches_the_closed_form() -> None:
    # electricity free: the owned fleet is all fixed cost; the API is all per request
    loaded = _loaded("0")
    result = evaluate(loaded)
    fixed = 235_000 / 36 + 250 + 235_000 * (0.06 + 0.024) / 12 + 1200 + 400 + 4000 + 2000 + 300
    fixed += 8 * 730 / (16_384 * 54 * 24 / 419) * 4 * 100     # hardware incidents
    per_request = ((1000 * (0.8 * 0.5 + 0.2 * 0.25) + 200 * 2.0) / 1e6 + 0.001 + 0.005
                   + 8 / 1e6 * 0.09)
    api_fixed = 100 + 50 + 100 + 20
    expected = (fixed - api_fixed) / per_request
    row = next(r for r in result.break_even if r.local == "owned")
    assert row.local_fixed_usd == pytest.approx(fixed)
    assert row.cloud_usd_per_request == pytest.approx(per_request)
    assert row.break_even_requests_per_month == pytest.approx(expected, rel=1e-6)
    # and at that volume the two really cost the same
    cost = result.deployments
    local_at = cost["owned"].cost.fixed_usd_per_month
    cloud_at = api_fixed + per_request * expected
    assert local_at == pytest.approx(cloud_at)
    assert cost["api"].cost.usd_per_1k_requests == pytest.approx(
        (api_fixed + per_request * 2 * 730 * 3600) / (2 * 730 * 3600) * 1000, rel=1e-6)


GROWTH = """
    seed: 1
    duration: 120
    traffic: {kind: constant, rate_per_s: 2}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 1000},
             output_tokens: {kind: fixed, tokens: 200}}]
    deployments:
      gpu:
        gpu: L4
        model: Llama-3.1-8B
        costs: {engineering_hours_per_month: HOURS}
      api: {kind: cloud, model: gpt-4o,
            limits: {requests_per_min: 100000, tokens_per_min: 100000000}}
"""


@pytest.mark.parametrize("hours", [0, 1_000_000])
def test_break_even_past_the_fleets_capacity_says_the_fleet_must_grow(hours: int) -> None:
    # with a million engineering hours a month the GPU only pays off at a volume far past
    # what one L4 serves; with none, well within it
    result = evaluate(scenario_from(GROWTH.replace("HOURS", str(hours))))
    (row,) = result.break_even
    volume, capacity = row.break_even_requests_per_month, row.local_capacity_requests_per_month
    assert volume is not None and capacity is not None
    gpu = result.deployments["gpu"]
    assert gpu.local is not None
    use = gpu.local.utilisation
    # steady traffic: a month of the fleet's full-batch throughput
    assert capacity == pytest.approx(use.full_batch_requests_per_s * 730 * 3600, rel=1e-9)
    if hours:
        assert volume > capacity
        assert row.fleet_must_grow is not None
        assert f"needs at least {math.ceil(volume / capacity)}" in row.fleet_must_grow
    else:
        assert volume < capacity and row.fleet_must_grow is None


def test_the_reports_must_grow_warning_names_each_pair_and_marks_an_excluded_side() -> None:
    """The fleet's break-even past its capacity against two APIs at the same prices, one
    excluded by a daily limit (10 requests/day for 43,200 calls a day): the report's
    warning said "gpu serves at most ..." twice, naming neither API, and gave the excluded
    pair's as if it were a choice; the table and the chart mark that pair."""
    result = evaluate(scenario_from(GROWTH.replace("HOURS", "1000000").replace(
        "rate_per_s: 2", "rate_per_s: 0.5") + """
      api2: {kind: cloud, model: gpt-4o,
             limits: {requests_per_min: 100000, tokens_per_min: 100000000,
                      requests_per_day: 10}}
    """))
    assert result.deployments["api"].feasible and not result.deployments["api2"].feasible
    rows = {row.cloud: row for row in result.break_even}
    assert rows["api"].fleet_must_grow and rows["api2"].fleet_must_grow
    warning = page_text(render(result)).split("Break-even past a fleet's capacity:</b> ")[1]
    warning = html.unescape(warning.split("</p>")[0])
    assert warning == (f"gpu / api: {rows['api'].fleet_must_grow}; gpu / api2 (api2 "
                       f"excluded): {rows['api2'].fleet_must_grow}.")


@pytest.mark.parametrize(("gpu", "layout", "replicas", "per_server", "servers"), [
    ("GB200", (4, 1), 3, None, 3),      # a GB200 compute tray holds 4 GPUs (node_gpus)
    ("GB200", (2, 1), 3, None, 2),      # two tp-2 replicas a tray
    ("H100-SXM", (4, 1), 3, None, 2),   # an HGX board holds 8: two tp-4 replicas a server
    ("H100-SXM", (2, 1), 3, 4, 2),      # the deployment's own 4-GPU servers
    ("H100-SXM", (8, 2), 3, None, 6),   # tp 8 x pp 2: stages on two servers a replica
    ("L40S", (4, 3), 1, 4, 3),          # tp 4 x pp 3 on the deployment's 4-GPU servers
    ("H100-SXM", (4, 3), 2, None, 6),   # three servers of one stage each a replica
    # a server holds no more than the catalog's node: GB200 trays of 4, as simulated
    ("GB200", (4, 2), 1, 8, 2),
])
def test_servers_hold_whole_replicas_of_the_gpus_node(gpu: str, layout: tuple[int, int],
                                                       replicas: int, per_server: int | None,
                                                       servers: int) -> None:
    costs = "" if per_server is None else f", costs: {{gpus_per_server: {per_server}}}"
    tp, pp = layout
    loaded = scenario_from(f"""
        seed: 1
        duration: 60
        traffic: {{kind: constant, rate_per_s: 1}}
        tasks: [{{name: t, prompt_tokens: {{kind: fixed, tokens: 100}},
                 output_tokens: {{kind: fixed, tokens: 10}}}}]
        deployments:
          d: {{gpu: {gpu}, model: Llama-3.1-8B, tp: {tp}, pp: {pp}, replicas: {replicas}{costs}}}
    """)
    dep = loaded.scenario.deployments["d"]
    assert isinstance(dep, LocalDeployment)
    items = {i.name: i for i in local_items(dep, loaded.catalog, loaded.scenario.economics,
                                            LocalFacts(gpus=tp * pp * replicas,
                                                       busy_fraction=0.5))}
    assert f"+ {servers} servers at" in items["hardware"].basis
    assert items["rack_colocation"].usd_per_month == servers * dep.costs.rack_usd_per_server_month


def test_with_planning_the_break_even_is_checked_against_what_the_slo_allows() -> None:
    """Full batches are an upper bound; planning's highest sustainable rate is what the
    fleet serves within the SLO. The month's volume at which the busiest stretch arrives
    at that rate bounds the break-even too (hand-computed from the planning window)."""
    from llmplan.decide.break_even import with_slo_capacity
    from llmplan.results.decision import DeploymentPlan, Planning, PlanningWindow

    result = evaluate(scenario_from(GROWTH.replace("HOURS", "0")))
    (row,) = result.break_even
    assert row.break_even_requests_per_month is not None and row.fleet_must_grow is None
    # a planning that found the L4 sustains a tenth of the break-even's pace
    window = PlanningWindow(requests=600, start_s=0.0, span_s=300.0, whole_stream=False)
    rate = 2.0 * 0.1 * row.break_even_requests_per_month / row.simulated_requests_per_month
    planning = Planning(deployments={"gpu": DeploymentPlan(
        min_replicas_meeting_slo=1, max_sustainable_requests_per_s=rate, load_curve=[])},
        sensitivity=[], window=window)
    (checked,) = with_slo_capacity(result.break_even, planning,
                                   scenario_from(GROWTH.replace("HOURS", "0")))
    slo = checked.local_slo_capacity_requests_per_month
    assert slo == pytest.approx(0.1 * row.break_even_requests_per_month)
    assert checked.fleet_must_grow is not None and "within the SLO" in checked.fleet_must_grow
    assert "needs at least 10" in checked.fleet_must_grow
    # a fleet whose full batches serve nothing (every replica down all run) serves nothing
    # within the SLO either, whatever rate a search found
    down = row.model_copy(update={"local_capacity_requests_per_month": 0.0})
    (none,) = with_slo_capacity([down], planning, scenario_from(GROWTH.replace("HOURS", "0")))
    assert none.local_slo_capacity_requests_per_month == 0.0


@pytest.mark.parametrize(("busiest", "slo", "idle"),
                         [(1.0, 10.0, True), (9.0, 10.0, False), (25.0, 10.0, False)])
def test_with_planning_an_idle_fleet_is_judged_by_what_it_sustains_within_the_slo(
        busiest: float, slo: float, idle: bool) -> None:
    """Full batches overstate what a fleet could serve where the SLO binds first: with
    planning, the idle-fleet reason compares the busiest stretch's rate with planning's
    highest rate meeting the SLO, and says nothing of a fleet near that rate."""
    from llmplan.decide.decision import decide, slo_headroom
    from llmplan.results.decision import DeploymentPlan, Planning, PlanningWindow
    from llmplan.sim.run import simulate_scenario

    loaded = scenario_from(GROWTH.replace("HOURS", "0").replace("rate_per_s: 2",
                                                                  "rate_per_s: 0.2"))
    simulation = simulate_scenario(loaded)
    plain = decide(simulation, loaded)
    use = plain.deployments["gpu"].local.utilisation  # type: ignore[union-attr]
    assert use.load_fraction < 0.5   # full batches call this L4 idle
    window = PlanningWindow(requests=int(busiest * 300), start_s=0.0, span_s=300.0,
                            whole_stream=False)
    planning = Planning(deployments={"gpu": DeploymentPlan(
        min_replicas_meeting_slo=1, max_sustainable_requests_per_s=slo, load_curve=[])},
        sensitivity=[], window=window)
    assert slo_headroom(planning, loaded) == {"gpu": (pytest.approx(busiest), slo)}
    judged = decide(simulation, loaded, planning)
    texts = [d.text for d in judged.recommendation.drivers if d.text.startswith("gpu's")]
    within = [t for t in texts if "within the SLO" in t]
    assert bool(within) is idle and not [t for t in texts if "full batches" in t]
    if idle:
        assert f"serves {busiest / slo:.0%} of what it sustains" in within[0]   # one L4
    assert judged.planning == planning
    # the decision table's scale row reads the same headroom
    scale = next(r.answers["gpu"] for r in judged.decision_table if r.question == "scale")
    # a stretch faster than what the fleet sustains reads as short of it, not "X of Y"
    assert scale.startswith(f"{rate_shown(busiest)} of {rate_shown(slo)} req/s it sustains "
                            f"within the SLO" if busiest <= slo else
                            f"sustains {rate_shown(slo)} req/s within the SLO, below the "
                            f"{rate_shown(busiest)} the busiest stretch arrives at")
    assert [rate_shown(x) for x in (999.6, 41.72, 0.375, 1.78e-5)] == \
        ["1,000", "41.7", "0.375", "0.0000178"]
    plain_scale = next(r.answers["gpu"] for r in plain.decision_table if r.question == "scale")
    assert "req/s it can serve with full batches" in plain_scale


AUTOSCALED_RESERVED = """
    seed: 2
    duration: 900
    traffic: {kind: poisson, rate_per_s: 1,
              spikes: [{start_s: 200, duration_s: 400, multiplier: 5}]}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 2000},
             output_tokens: {kind: fixed, tokens: 300}}]
    deployments:
      reserved:
        gpu: L4
        model: Llama-3.1-8B
        replicas: 1
        autoscaling: {min_replicas: 1, max_replicas: 6, spin_up_s: 30, cooldown_s: 60}
        costs: {ownership: rented_reserved}
"""


def _scaled_out_reservation(text: str) -> tuple[LoadedScenario, Candidate, float]:
    """The scenario, its 'reserved' fleet's result and the replicas it ran on average
    (the spike scaled it out past its one reserved replica)."""
    loaded = scenario_from(text)
    dep = evaluate(loaded).deployments["reserved"]
    assert dep.local is not None
    fleet = dep.local.fleet
    running = fleet.mean_active_replicas + fleet.mean_loading_replicas
    assert running > 1.5                       # the peak scaled it out
    return loaded, dep, running


def test_an_autoscaled_reservation_reserves_its_floor_and_rents_the_rest_on_demand() -> None:
    """A reservation is a fixed count: the floor (min_replicas) is reserved for every hour
    of the month; the replicas autoscaling adds above it run on demand, for the hours they
    run. Billing the mean fleet at the reserved rate would sell elastic capacity at the
    reservation's price."""
    loaded, dep, running = _scaled_out_reservation(AUTOSCALED_RESERVED)
    gpu = loaded.catalog.gpus["L4"]
    (rental,) = [i for i in dep.cost.items if i.item == "gpu_rental"]
    assert rental.usd_per_month == pytest.approx(
        1 * gpu.reserved_usd_per_gpu_hour * 730
        + (running - 1) * gpu.rental_usd_per_gpu_hour * 730, rel=1e-9)
    assert "above the reservation" in rental.basis


def test_an_autoscaled_reservations_on_demand_gpus_run_the_serving_software_too() -> None:
    """Serving software is licensed per GPU that serves: the on-demand GPUs an autoscaled
    reservation adds on average need it as the reserved floor does, and that part comes
    and goes with the volume."""
    text = AUTOSCALED_RESERVED.replace("costs: {ownership: rented_reserved}",
                                       "costs: {ownership: rented_reserved, "
                                       "serving_software_usd_per_gpu_month: 300}")
    _, dep, running = _scaled_out_reservation(text)
    (software,) = [i for i in dep.cost.items if i.item == "serving_software"]
    assert software.usd_per_month == pytest.approx(running * 300, rel=1e-9)
    assert software.variable


TIMEOUTS = """
    seed: 4
    duration: 120
    traffic: {kind: poisson, rate_per_s: 0.5}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 4000},
             output_tokens: {kind: fixed, tokens: 2000}}]
    slo: {min_goodput_fraction: 0.01}
    deployments:
      api:
        kind: cloud
        model: gpt-4o-mini
        limits: {requests_per_min: 100000, tokens_per_min: 100000000}
        latency: {network_rtt_ms: 40, ttft_ms: {median: 500, p95: 500},
                  output_tokens_per_s: {median: 50, p5: 50}}
        retry: {request_timeout_s: TIMEOUT, max_retries: 2}
"""


@pytest.mark.parametrize("timeout_s", [20, 60])
def test_attempts_the_client_times_out_are_billed_for_what_the_provider_did(
        timeout_s: int) -> None:
    """A 2,000-token answer at 50 tokens/s after 0.62 s (the round trip, the provider's
    0.5 s and the 4,000-token prompt at 50,000 tokens/s) takes 40.6 s: a 20 s timeout gives
    up on every attempt, after the provider read the prompt and generated
    1 + (20 - 0.62) x 50 = 970 tokens; three attempts each (two retries), all billed. A 60 s
    timeout abandons none."""
    result = evaluate(scenario_from(TIMEOUTS.replace("TIMEOUT", str(timeout_s))))
    api = result.deployments["api"]
    assert api.cloud is not None
    items = {i.item: i for i in api.cost.items}
    if timeout_s == 60:
        assert api.cloud.abandoned is None and "abandoned_attempts" not in items
        return
    calls = api.cloud.abandoned
    assert calls is not None and api.cloud.served == 0
    assert calls.attempts == api.cloud.calls == 3 * result.deployments["api"].requests.total
    assert calls.input_tokens == 4000 * calls.attempts
    assert calls.output_tokens == pytest.approx(970.0 * calls.attempts, rel=1e-9)
    usd = items["abandoned_attempts"].usd_per_month
    per_attempt = (4000 * 0.15 + 970 * 0.6) / 1e6     # the catalog's gpt-4o-mini prices
    # a month is 730 h of the traffic's long-run rate: the simulated requests' share of it
    windows = 730 * 3600 / (result.scenario.requests / 0.5)
    assert usd == pytest.approx(calls.attempts * windows * per_attempt, rel=1e-6)


LONG_PROMPTS = """
    seed: 5
    duration: 300
    traffic: {kind: poisson, rate_per_s: 0.2}
    tasks:
      - {name: long, weight: 1, prompt_tokens: {kind: fixed, tokens: 250000},
         output_tokens: {kind: fixed, tokens: 1000}}
      - {name: short, weight: 3, prompt_tokens: {kind: fixed, tokens: 150000},
         output_tokens: {kind: fixed, tokens: 1000}}
    slo: {min_goodput_fraction: 0.01}
    deployments:
      api:
        kind: cloud
        model: gemini-3.1-pro-preview
        limits: {requests_per_min: 100000, tokens_per_min: 1000000000}
"""


def test_prompts_past_the_long_context_threshold_are_billed_at_its_prices() -> None:
    """Gemini 3.1 Pro bills a request whose prompt is past 200k tokens at $4/$18 per M
    instead of $2/$12: the 250k-token requests pay the difference on every token, the
    150k-token ones do not."""
    loaded = scenario_from(LONG_PROMPTS)
    result = evaluate(loaded)
    api = result.deployments["api"]
    assert api.cloud is not None
    long = api.cloud.long_context
    assert long is not None and 0 < long.requests < api.requests.total
    assert long.input_tokens == 250_000 * long.requests
    # Gemini 3.1 Pro cannot answer without thinking: a plain answer carries its lowest
    # effort's hidden tokens, billed as output at the long-context price too
    out = 1000 + builtin_catalog().cloud_models["gemini-3.1-pro-preview"].plain_reasoning_tokens
    assert out > 1000
    assert long.output_tokens == out * long.requests
    items = {i.item: i for i in api.cost.items}
    windows = 730 * 3600 / (result.scenario.requests / 0.2)
    extra = long.requests * windows * (250_000 * (4.0 - 2.0) + out * (18.0 - 12.0)) / 1e6
    assert items["long_context"].usd_per_month == pytest.approx(extra, rel=1e-6)
    assert "over 200,000 tokens" in items["long_context"].basis
    # the standard items price every token at the standard prices
    assert items["input_tokens"].usd_per_month == pytest.approx(
        api.cloud.input_tokens * windows * 2.0 / 1e6, rel=1e-6)


def test_hardware_incidents_grow_with_the_fleet_at_the_simulated_failure_rate() -> None:
    """The flat engineering and on-call hours stay flat; the interruptions' hours grow
    with the GPUs owned, at the scenario's own failures.mtbf_hours when it simulates
    failures (what is priced is what was simulated), else at Llama 3's fleet rate."""
    loaded = _loaded()
    dep = loaded.scenario.deployments["owned"]
    assert isinstance(dep, LocalDeployment)
    econ = loaded.scenario.economics

    def incident_usd(d: LocalDeployment, gpus: int) -> float:
        return next(i.usd_per_month for i in local_items(
            d, loaded.catalog, econ, LocalFacts(gpus=gpus, busy_fraction=0.5))
            if i.name == "hardware_incidents")

    assert incident_usd(dep, 64) == pytest.approx(8 * incident_usd(dep, 8))
    failing = dep.model_copy(update={"failures": FailureSpec(mtbf_hours=1000)})
    # 8 GPUs in tp-4 replicas: 2 replicas x 730 h / 1,000 h = 1.46 interruptions, 4 h each
    assert incident_usd(failing, 8) == pytest.approx(2 * 730 / 1000 * 4 * 100)
    rented = loaded.scenario.deployments["rented"]
    assert isinstance(rented, LocalDeployment)
    assert not [i for i in local_items(rented, loaded.catalog, econ,
                                       LocalFacts(gpus=8, busy_fraction=0.5))
                if i.name == "hardware_incidents"]     # the provider's hardware


def test_egress_is_the_prompts_sent_unless_a_size_is_given() -> None:
    """What leaves your network for an API is the prompt: 4 bytes a token by default (a
    300k-token prompt is no 8 KB), or the scenario's own KB per request."""
    loaded = _loaded()
    dep = loaded.scenario.deployments["api"]
    assert isinstance(dep, CloudDeployment)
    facts = CloudFacts(input_tokens=3e9, output_tokens=1e8, requests=10_000)

    def egress_usd(d: CloudDeployment) -> float:
        return next(i.usd_per_month for i in cloud_items(d, loaded.catalog,
                                                         loaded.scenario.economics, facts)
                    if i.name == "network_egress")

    default = dep.model_copy(update={"costs": dep.costs.model_copy(
        update={"egress_kb_per_request": None})})
    assert egress_usd(default) == pytest.approx(3e9 * 4 / 1e9 * 0.09)
    assert egress_usd(dep) == pytest.approx(10_000 * 8 / 1e6 * 0.09)


def test_an_autoscaled_owned_fleet_draws_idle_power_on_the_gpus_not_running() -> None:
    """Every owned GPU is bought; only the replicas running draw power at the run's busy
    share, the rest idle (economics.idle_power_fraction)."""
    loaded = _loaded()
    dep = loaded.scenario.deployments["owned"]
    assert isinstance(dep, LocalDeployment)
    econ = loaded.scenario.economics
    (line,) = [i for i in local_items(dep, loaded.catalog, econ,
                                      LocalFacts(gpus=8, busy_fraction=0.5, running_gpus=2))
               if i.name == "electricity"]
    kw = (2 * 700 * (0.3 + 0.7 * 0.5) + 6 * 700 * 0.3 + 1000) / 1000
    assert line.usd_per_month == pytest.approx(kw * 1.5 * 730 * 0.2)
    assert "2.00 of 8 GPUs running on average" in line.basis


@pytest.mark.parametrize("busy", [0.02, 0.3, 0.7, 0.95, 1.0])
def test_only_the_stepping_that_more_requests_lengthen_grows_with_volume(busy: float) -> None:
    """Electricity grows with volume only by the power above idle, and only as the
    stepping time grows: an engine busy whenever a request is in flight (requests at
    random: busy = 1 - exp(-rate x time in flight)) steps longer by d busy / d rate; once
    it steps all the time, more requests only join its batches and cost no more power."""
    from llmplan.decide.costs import busy_time_elasticity

    loaded = _loaded()
    dep = loaded.scenario.deployments["owned"]
    assert isinstance(dep, LocalDeployment)
    econ = loaded.scenario.economics
    (line,) = [i for i in local_items(dep, loaded.catalog, econ,
                                      LocalFacts(gpus=8, busy_fraction=busy))
               if i.name == "electricity"]
    stepping = 8 * 700 * 0.7 * busy / 1000 * 1.5 * 730 * 0.2
    # by finite difference of the M/G/infinity busy share at the rate that gives `busy`
    x = -math.log(1 - busy) if busy < 1 else math.inf
    grows = (0.0 if busy >= 1 else
             (1 - math.exp(-x * 1.001)) / (1 - math.exp(-x)) - 1) / 0.001
    assert busy_time_elasticity(busy) == pytest.approx(grows, rel=2e-3, abs=1e-9)
    assert line.growing_usd_per_month == pytest.approx(stepping * grows, rel=2e-3, abs=1e-9)
    assert line.growing_usd_per_month < line.usd_per_month
    assert line.variable == (busy < 1)


@pytest.mark.parametrize(("gpu", "gpus", "bought"), [
    ("H100-SXM", 2, 4),     # HGX H100 comes on 4- and 8-GPU baseboards
    ("H100-SXM", 6, 8),
    ("H100-SXM", 8, 8),
    ("B200", 2, 8),         # HGX B200: 8-GPU boards only
    ("MI300X", 1, 8),       # AMD's platform: 8 OAM modules on a baseboard
    ("L40S", 3, 3),         # PCIe cards are sold one by one
])
def test_an_owned_fleet_buys_whole_baseboards(gpu: str, gpus: int, bought: int) -> None:
    """SXM and OAM modules are not sold alone: a fleet of 2 H100 SXMs buys a 4-GPU board,
    and says that the other two are idle capacity. Renting is by the GPU."""
    loaded = scenario_from(f"""
        seed: 1
        duration: 60
        traffic: {{kind: constant, rate_per_s: 1}}
        tasks: [{{name: t, prompt_tokens: {{kind: fixed, tokens: 100}},
                 output_tokens: {{kind: fixed, tokens: 10}}}}]
        deployments:
          d: {{gpu: {gpu}, model: Llama-3.1-8B, replicas: {gpus}}}
    """)
    dep = loaded.scenario.deployments["d"]
    assert isinstance(dep, LocalDeployment)
    gpu_spec = loaded.catalog.gpus[gpu]
    items = {i.name: i for i in local_items(dep, loaded.catalog, loaded.scenario.economics,
                                            LocalFacts(gpus=gpus, busy_fraction=0.5))}
    servers = int(items["hardware"].basis.split(" servers at")[0].rsplit("+ ", 1)[1])
    hardware = bought * gpu_spec.purchase_usd + servers * dep.costs.server_usd
    assert items["hardware"].usd_per_month == pytest.approx(
        hardware / loaded.scenario.economics.amortisation_months)
    assert items["hardware"].basis.startswith(f"{bought:,} x ")
    assert ("of them serve, the rest are idle capacity" in items["hardware"].basis) \
        == (bought > gpus)
    # the board's unused GPUs draw idle power
    econ = loaded.scenario.economics
    gpus_w = gpu_spec.tdp_w * (gpus * (econ.idle_power_fraction + (1 - econ.idle_power_fraction)
                                       * 0.5) + (bought - gpus) * econ.idle_power_fraction)
    kw = (gpus_w + servers * econ.server_power_w) / 1e3
    assert items["electricity"].usd_per_month == pytest.approx(
        kw * econ.pue * econ.hours_per_month * econ.electricity_usd_per_kwh)



def test_a_server_set_smaller_than_a_board_still_holds_a_whole_board() -> None:
    # three tp-2 replicas of H100 SXMs, two GPUs a server (costs.gpus_per_server): an HGX
    # board of 4 cannot be split between servers, so each of the 3 servers holds one
    loaded = scenario_from("""
        seed: 1
        duration: 60
        traffic: {kind: constant, rate_per_s: 1}
        tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 100},
                 output_tokens: {kind: fixed, tokens: 10}}]
        deployments:
          d: {gpu: H100-SXM, model: Llama-3.1-8B, tp: 2, replicas: 3,
              costs: {gpus_per_server: 2}}
    """)
    dep = loaded.scenario.deployments["d"]
    assert isinstance(dep, LocalDeployment)
    items = {i.name: i for i in local_items(dep, loaded.catalog, loaded.scenario.economics,
                                            LocalFacts(gpus=6, busy_fraction=0.5))}
    assert items["hardware"].basis.startswith("12 x ")
    assert "+ 3 servers at" in items["hardware"].basis


def test_the_table_says_how_many_gpus_an_owned_fleet_buys() -> None:
    # two H100 SXMs in use, a 4-GPU board bought: the summary's "serves with" says both
    loaded = scenario_from("""
        seed: 1
        duration: 30
        traffic: {kind: poisson, rate_per_s: 1}
        tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 100},
                 output_tokens: {kind: fixed, tokens: 10}}]
        deployments:
          board: {gpu: H100-SXM, model: Llama-3.1-8B, replicas: 2}
          rented: {gpu: H100-SXM, model: Llama-3.1-8B, replicas: 2,
                   costs: {ownership: rented_on_demand}}
          cards: {gpu: L40S, model: Llama-3.1-8B, replicas: 3}
    """)
    deps = evaluate(loaded).deployments
    assert deps["board"].cost.gpus_bought == 4
    assert deps["board"].serves_with() == "2 x H100-SXM (4 bought)"
    assert deps["rented"].cost.gpus_bought is None           # rented by the GPU
    assert deps["cards"].cost.gpus_bought is None            # PCIe cards sold alone
    assert deps["cards"].serves_with() == "3 x L40S"


def test_the_cost_per_million_output_tokens_counts_answers_finished_in_the_drain() -> None:
    # 20 s of traffic whose 1,800-token answers take about 20 s each at the default 90
    # tokens/s: most finish after the duration, and are billed all the same (as are those
    # still unanswered when the drain ends: an API is priced at the volume offered)
    loaded = scenario_from("""
        seed: 3
        duration: 20
        traffic: {kind: constant, rate_per_s: 2}
        tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 100},
                 output_tokens: {kind: fixed, tokens: 1800}}]
        catalog:
          cloud_models:
            gpt-4o-mini: {input_usd_per_mtok: 0.5, output_usd_per_mtok: 2.0}
        deployments:
          api:
            kind: cloud
            model: gpt-4o-mini
            limits: {requests_per_min: 100000, tokens_per_min: 100000000}
            costs: {egress_usd_per_gb: 0}
    """)
    result = evaluate(loaded)
    api = result.deployments["api"]
    assert api.requests.total == 40
    finished_in_window = api.throughput.output_tokens_per_s * 20
    assert finished_in_window < 0.5 * 40 * 1800        # the drain matters here
    # every answer is billed: per million output tokens, the output price plus the
    # prompts' input at 100 input tokens per 1,800 output
    assert api.cost.usd_per_million_output_tokens == pytest.approx(2.0 + 0.5 * 100 / 1800)


AUTOSCALED_ON_DEMAND = """
    seed: 1
    duration: 600
    traffic: {kind: constant, rate_per_s: 60}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 1000},
             output_tokens: {kind: fixed, tokens: 200}}]
    economics: {engineer_usd_per_hour: 100}
    catalog:
      gpus:
        H100-SXM: {rental_usd_per_gpu_hour: 2.0}
      cloud_models:
        gpt-4o-mini: {input_usd_per_mtok: 0.5, output_usd_per_mtok: 2.0}
    deployments:
      gpu:
        gpu: H100-SXM
        model: Llama-3.1-8B
        replicas: 3
        autoscaling: {min_replicas: 1, max_replicas: 8}
        costs: {ownership: rented_on_demand, engineering_hours_per_month: HOURS,
                oncall_hours_per_month: 0, monitoring_usd_per_month: 0}
      api:
        kind: cloud
        model: gpt-4o-mini
        limits: {requests_per_min: 100000, tokens_per_min: 100000000}
"""


@pytest.mark.parametrize("hours", [0, 500])
def test_an_autoscaled_rented_fleet_breaks_even_on_its_floor(hours: int) -> None:
    """An autoscaled fleet on demand runs replicas as the traffic needs them, down to
    min_replicas: its three H100s at 60 requests/s are one at a third of the volume and
    still one below it. The API pays $0.0009 a call (1,000 x $0.5/M + 200 x $2/M, plus
    4 KB of egress at $0.09/GB); the fleet one GPU x $2/h x 730 h = $1,460 at its floor.
    Without engineering hours the two meet at 1,460 / 0.00090036 = 1.62 M requests a
    month, where one replica serves it (priced as three, it was three times that); with
    $50,000 of them, past the floor's 52.56 M, where the fleet grows at $1,460 a replica."""
    result = evaluate(scenario_from(AUTOSCALED_ON_DEMAND.replace("HOURS", str(hours))))
    gpu = result.deployments["gpu"]
    assert gpu.local is not None
    running = gpu.local.fleet.mean_active_replicas + gpu.local.fleet.mean_loading_replicas
    assert running == pytest.approx(3.0)      # steady: the starting three, all the run
    volume = 60 * 3600 * 730
    per_call = (1000 * 0.5 + 200 * 2.0) / 1e6 + 1000 * 4 / 1e9 * 0.09
    floor_usd, people = 1 * 2.0 * 730, hours * 100
    knee = volume / 3
    (row,) = result.break_even
    assert gpu.cost.monthly_usd == pytest.approx(3 * floor_usd + people)
    assert row.local_fixed_usd == pytest.approx(floor_usd + people)
    assert row.local_floor_requests_per_month == pytest.approx(knee)
    # above the floor, a replica's $1,460 for each third of the volume
    assert row.local_usd_per_request == pytest.approx(floor_usd / knee)
    if hours == 0:
        expected = floor_usd / per_call
        assert expected < knee
    else:
        expected = knee + (floor_usd + people - per_call * knee) / (per_call - floor_usd / knee)
        assert expected > knee
    assert row.break_even_requests_per_month == pytest.approx(expected, rel=1e-6)
    # and there the fleet and the API cost the same
    assert gpu.cost.usd_at(expected) == pytest.approx(
        result.deployments["api"].cost.usd_at(expected), rel=1e-6)
    # at the costed volume, the cost line gives the month's cost back
    assert gpu.cost.usd_at(volume) == pytest.approx(gpu.cost.monthly_usd)
    rental = next(i for i in gpu.cost.items if i.item == "gpu_rental")
    assert rental.variable and "above autoscaling's floor of 1 grow with volume" in rental.basis



@pytest.mark.parametrize(("hours", "ownership"), [(1_000_000, "rented_on_demand"),
                                                  (1_000_000, "owned"),
                                                  (2_600, "rented_on_demand")])
def test_an_autoscaled_fleet_must_grow_past_its_max_replicas(hours: int,
                                                             ownership: str) -> None:
    """The fleet above starts at 3 replicas and may run 8: steady at 60 requests/s it runs
    its 3, and serves 8/3 of what they do with every batch full once it scales out. A
    break-even past that needs replicas over its autoscaling.max_replicas: rented, like
    those above its floor, whose cost its line already has; owned, GPUs to buy. With
    $260,000 of engineering a month the two meet at knee + (F - c K) / (c - s) = 298 M
    (F = $261,460, c = $0.00090036, s = $1,460 / K, K = 52.56 M), past what its 3 replicas
    serve but within its 8: nothing to grow. The note counted the starting 3 replicas as
    the fleet, called a break-even the autoscaler reaches one the fleet must grow to, and
    said fixed costs move it for a rented fleet, whose cost line grows with the volume."""
    text = AUTOSCALED_ON_DEMAND.replace("HOURS", str(hours)).replace("rented_on_demand",
                                                                     ownership)
    result = evaluate(scenario_from(text), planning=False)
    gpu = result.deployments["gpu"]
    assert gpu.local is not None and gpu.local.fleet.mean_active_replicas == pytest.approx(3)
    (row,) = result.break_even
    volume, capacity = row.break_even_requests_per_month, row.local_capacity_requests_per_month
    assert volume is not None and capacity is not None
    # steady traffic: a month of 8 replicas' full batches, each at the run's rate over 3
    full = gpu.local.utilisation.full_batch_requests_per_s * 8 / 3
    assert capacity == pytest.approx(full * 730 * 3600, rel=1e-9)
    if hours < 1_000_000:
        knee, floor_usd, per_call = 60 * 3600 * 730 / 3, 2.0 * 730, \
            (1000 * 0.5 + 200 * 2.0) / 1e6 + 1000 * 4 / 1e9 * 0.09
        expected = knee + (floor_usd + hours * 100 - per_call * knee) \
            / (per_call - floor_usd / knee)
        assert volume == pytest.approx(expected, rel=1e-6)
        assert capacity * 3 / 8 < volume < capacity and row.fleet_must_grow is None
        return
    grow = row.fleet_must_grow
    assert grow is not None and "with its autoscaling.max_replicas of 8" in grow
    assert f"needs at least {math.ceil(volume / capacity * 8)}, past that cap" in grow
    assert ("more GPUs to buy" in grow) == (ownership == "owned")
    assert ("leave the break-even where it is" in grow) == (ownership != "owned")

def test_a_cheap_reserved_floor_with_dear_on_demand_gpus_breaks_even_twice() -> None:
    """A reserved floor of one H100 at $1/h ($730 a month) and replicas above it on demand
    at $4/h ($2,920 each), steady at three for 60 requests/s (157.68 M a month): the floor
    carries a third, K = 52.56 M, and each replica above it costs $2,920 / K = $0.0000556 a
    request. The API costs c = 1,000 x $0.02/M + 200 x $0.05/M + 4 KB x $0.09/GB =
    $0.00003036 a call: it passes the flat floor at 730 / c = 24.0 M, under the knee, and
    the fleet, dearer per request above it, passes the API again where
    730 + (V - K) x 2,920 / K = c V: V = (730 - 2,920) / (c - 2,920 / K) = 86.9 M. The API
    costs less at the costed volume: "the fleet above 24 M" would be wrong there."""
    text = AUTOSCALED_ON_DEMAND.replace("HOURS", "0").replace(
        "rented_on_demand", "rented_reserved").replace(
        "H100-SXM: {rental_usd_per_gpu_hour: 2.0}",
        "H100-SXM: {rental_usd_per_gpu_hour: 4.0, reserved_usd_per_gpu_hour: 1.0}").replace(
        "{input_usd_per_mtok: 0.5, output_usd_per_mtok: 2.0}",
        "{input_usd_per_mtok: 0.02, output_usd_per_mtok: 0.05}")
    result = evaluate(scenario_from(text))
    gpu, api = result.deployments["gpu"], result.deployments["api"]
    volume = 60 * 3600 * 730
    floor_usd, knee, per_replica = 1.0 * 730, volume / 3, 4.0 * 730
    per_call = (1000 * 0.02 + 200 * 0.05) / 1e6 + 1000 * 4 / 1e9 * 0.09
    (row,) = result.break_even
    assert row.local_floor_requests_per_month == pytest.approx(knee)
    assert row.break_even_requests_per_month == pytest.approx(floor_usd / per_call, rel=1e-6)
    again = (floor_usd - per_replica) / (per_call - per_replica / knee)
    assert knee < again < volume
    assert row.local_dearer_again_requests_per_month == pytest.approx(again, rel=1e-6)
    for v in (row.break_even_requests_per_month, again):    # the lines meet at both
        assert gpu.cost.usd_at(v) == pytest.approx(api.cost.usd_at(v), rel=1e-6)
    assert api.cost.monthly_usd < gpu.cost.monthly_usd          # past the second
    line = row.line()
    assert f"up to {again / 1e6:.3g} M" in line and "api costs less again" in line
    # the report's table says it, and its chart marks both crossings
    assert f"gpu costs less only up to {again:,.0f}" in render(result)
    (marks,) = [t for t in break_even_chart(result).data if t.name.startswith("break-even")]
    assert list(marks.x) == pytest.approx([row.break_even_requests_per_month, again])
    # with both GPU rates at $1/h the fleet stays cheaper above the first: no second
    flat = evaluate(scenario_from(text.replace("rental_usd_per_gpu_hour: 4.0",
                                               "rental_usd_per_gpu_hour: 1.0")))
    (row,) = flat.break_even
    assert row.break_even_requests_per_month is not None
    assert row.local_dearer_again_requests_per_month is None
    assert "again" not in row.line()


def test_a_fleet_with_fixed_costs_under_the_apis_costs_less_only_below_a_volume() -> None:
    """An API with $5,000 a month of its own fixed costs (observability) at
    c = 1,000 x $0.01/M + 200 x $0.02/M + 4 KB x $0.09/GB = $0.00001436 a call, against a
    fleet on demand whose floor of one H100 ($1,460) carries K = 52.56 M requests and each
    replica above it another K for $1,460 (s = $0.0000278 a request): the fleet costs less
    at low volume, the API past 1,460 + s (V - K) = 5,000 + c V, V = 5,000 / (s - c) =
    372.6 M. Without a falling crossing the line had said the API costs less at every
    volume."""
    text = AUTOSCALED_ON_DEMAND.replace("HOURS", "0").replace(
        "{input_usd_per_mtok: 0.5, output_usd_per_mtok: 2.0}",
        "{input_usd_per_mtok: 0.01, output_usd_per_mtok: 0.02}").replace(
        "limits: {requests_per_min: 100000, tokens_per_min: 100000000}",
        "limits: {requests_per_min: 100000, tokens_per_min: 100000000}\n"
        "        costs: {observability_usd_per_month: 5000}")
    result = evaluate(scenario_from(text))
    gpu, api = result.deployments["gpu"], result.deployments["api"]
    volume = 60 * 3600 * 730
    knee, floor_usd = volume / 3, 2.0 * 730
    per_call = (1000 * 0.01 + 200 * 0.02) / 1e6 + 1000 * 4 / 1e9 * 0.09
    (row,) = result.break_even
    assert row.local_fixed_usd < row.cloud_fixed_usd
    assert row.local_usd_per_request > row.cloud_usd_per_request
    crossing = (5000 - floor_usd + floor_usd / knee * knee) / (floor_usd / knee - per_call)
    assert row.break_even_requests_per_month is None
    assert row.local_dearer_again_requests_per_month == pytest.approx(crossing, rel=1e-6)
    assert gpu.cost.usd_at(crossing) == pytest.approx(api.cost.usd_at(crossing), rel=1e-6)
    line = row.line()
    assert f"cost the same at {crossing / 1e6:.3g} M" in line
    assert "gpu costs less below it" in line and "api above" in line
    assert "every volume" not in line
    assert f"{crossing:,.0f} (gpu costs less below it, api above)" in render(result)


#: the fleet's answers useful 60% of the time, the API's 90%
QUALITY = ("output_tokens: {kind: fixed, tokens: 200}}]",
           "output_tokens: {kind: fixed, tokens: 200}, quality: {gpu: 0.6, api: 0.9}}]")


def test_both_crossings_per_useful_result_are_reported() -> None:
    """Per useful result the lines are weighted by the other side's useful share: the
    fleet's (60%) cost times 0.9 against the API's (90%) times 0.6. The reserved floor of
    the test above (F = $730, K = 52.56 M, $2,920 a replica above it, c = $0.00003036 a
    call) then crosses at 0.9 F = 0.6 c V, V = 36.1 M, and again above the knee where
    0.9 (F + (V - K) 2,920 / K) = 0.6 c V: V = 0.9 (F - 2,920) / (0.6 c - 0.9 x 2,920 / K)
    = 62.0 M. The line had said the fleet costs less per useful result at every volume
    above the first; the second crossing was not computed at all."""
    text = AUTOSCALED_ON_DEMAND.replace("HOURS", "0").replace(
        "rented_on_demand", "rented_reserved").replace(
        "H100-SXM: {rental_usd_per_gpu_hour: 2.0}",
        "H100-SXM: {rental_usd_per_gpu_hour: 4.0, reserved_usd_per_gpu_hour: 1.0}").replace(
        "{input_usd_per_mtok: 0.5, output_usd_per_mtok: 2.0}",
        "{input_usd_per_mtok: 0.02, output_usd_per_mtok: 0.05}").replace(*QUALITY)
    result = evaluate(scenario_from(text))
    gpu, api = result.deployments["gpu"], result.deployments["api"]
    assert gpu.cost.useful_share() == pytest.approx(0.6)
    assert api.cost.useful_share() == pytest.approx(0.9)
    knee, floor_usd, per_replica = 60 * 3600 * 730 / 3, 1.0 * 730, 4.0 * 730
    per_call = (1000 * 0.02 + 200 * 0.05) / 1e6 + 1000 * 4 / 1e9 * 0.09
    (row,) = result.break_even
    first = 0.9 * floor_usd / (0.6 * per_call)
    again = 0.9 * (floor_usd - per_replica) / (0.6 * per_call - 0.9 * per_replica / knee)
    assert row.break_even_useful_requests_per_month == pytest.approx(first, rel=1e-6)
    assert row.local_dearer_again_useful_requests_per_month == pytest.approx(again, rel=1e-6)
    for v in (first, again):        # the same cost per useful result at both
        assert gpu.cost.usd_at(v) / 0.6 == pytest.approx(api.cost.usd_at(v) / 0.9, rel=1e-6)
    line = row.line()
    assert f"gpu above it up to {again / 1e6:.3g} M" in line and "api above that" in line
    assert f"{first:,.0f} (gpu costs less only up to {again:,.0f}) (60%, 90%)" \
        in render(result)


def test_a_fleet_cheaper_below_a_volume_per_useful_result_says_where() -> None:
    """The fleet with fixed costs under the API's (the test before last), its answers 60%
    useful against the API's 90%: per useful result 0.9 x (1,460 + s (V - K)) =
    0.6 x (5,000 + c V) at V = (0.6 x 5,000) / (0.9 s - 0.6 c) = 183 M, where the costs
    alone cross at 372.6 M. With no first crossing either way, the line said nothing per
    useful result and the report's table 'none'."""
    text = AUTOSCALED_ON_DEMAND.replace("HOURS", "0").replace(
        "{input_usd_per_mtok: 0.5, output_usd_per_mtok: 2.0}",
        "{input_usd_per_mtok: 0.01, output_usd_per_mtok: 0.02}").replace(
        "limits: {requests_per_min: 100000, tokens_per_min: 100000000}",
        "limits: {requests_per_min: 100000, tokens_per_min: 100000000}\n"
        "        costs: {observability_usd_per_month: 5000}").replace(*QUALITY)
    result = evaluate(scenario_from(text))
    slope = 2.0 * 730 / (60 * 3600 * 730 / 3)
    per_call = (1000 * 0.01 + 200 * 0.02) / 1e6 + 1000 * 4 / 1e9 * 0.09
    crossing = 0.6 * 5000 / (0.9 * slope - 0.6 * per_call)
    (row,) = result.break_even
    assert row.break_even_useful_requests_per_month is None
    assert row.local_dearer_again_useful_requests_per_month == pytest.approx(crossing, rel=1e-6)
    line = row.line()
    assert f"they cost the same at {crossing / 1e6:.3g} M requests a month" in line
    assert "gpu below it, api above" in line and "every volume" not in line
    assert f"{crossing:,.0f} (gpu costs less below it, api above) (60%, 90%)" \
        in render(result)

def test_a_second_crossing_past_what_the_fleet_serves_says_it_must_grow() -> None:
    """The reserved floor above: the fleet costs less from 24.0 M to 86.9 M a month. A
    planning that finds it serves 50 M within the SLO leaves the first crossing inside
    and the second past it: to cost less up to 86.9 M it needs 86.9 / 50 x 8 = 14
    replicas, past its max_replicas of 8; rented above its floor, they leave that volume
    where it is. Only the first crossing was checked, so nothing was said."""
    from llmplan.decide.break_even import with_slo_capacity
    from llmplan.results.decision import DeploymentPlan, Planning, PlanningWindow

    text = AUTOSCALED_ON_DEMAND.replace("HOURS", "0").replace(
        "rented_on_demand", "rented_reserved").replace(
        "H100-SXM: {rental_usd_per_gpu_hour: 2.0}",
        "H100-SXM: {rental_usd_per_gpu_hour: 4.0, reserved_usd_per_gpu_hour: 1.0}").replace(
        "{input_usd_per_mtok: 0.5, output_usd_per_mtok: 2.0}",
        "{input_usd_per_mtok: 0.02, output_usd_per_mtok: 0.05}")
    result = evaluate(scenario_from(text), planning=False)
    (row,) = result.break_even
    knee, per_call = 60 * 3600 * 730 / 3, (1000 * 0.02 + 200 * 0.05) / 1e6 + 4e-6 * 0.09
    again = (730 - 2920) / (per_call - 2920 / knee)
    assert row.local_dearer_again_requests_per_month == pytest.approx(again, rel=1e-6)
    assert row.fleet_must_grow is None
    window = PlanningWindow(requests=600, start_s=0.0, span_s=300.0, whole_stream=False)
    rate = 2.0 * 50e6 / row.simulated_requests_per_month      # 50 M a month
    planning = Planning(deployments={"gpu": DeploymentPlan(
        min_replicas_meeting_slo=None, max_sustainable_requests_per_s=rate, load_curve=[])},
        sensitivity=[], window=window)
    (checked,) = with_slo_capacity([row], planning, scenario_from(text))
    assert checked.local_slo_capacity_requests_per_month == pytest.approx(50e6)
    assert checked.fleet_must_grow == (
        f"gpu serves at most 50.0 M requests a month within the SLO with its "
        f"autoscaling.max_replicas of 8: at the volume up to which it costs less "
        f"({again / 1e6:,.1f} M) it needs at least {math.ceil(again / 50e6 * 8)}, past that "
        "cap (raise it): rented as those above its floor are, they leave that volume where "
        "it is")

@pytest.mark.parametrize("first_crossing", [True, False])
def test_a_second_crossing_per_useful_result_past_the_fleet_says_it_must_grow(
        first_crossing: bool) -> None:
    """The two scenarios above, the fleet serving 50 M requests a month (between their
    crossings: 36.1 M and 62.0 M; none and 183 M): the fleet costs less per useful result
    up to the second crossing, past what it serves. Only the first crossing was checked
    against the capacity, so neither line said the fleet must grow to get there."""
    text = AUTOSCALED_ON_DEMAND.replace("HOURS", "0").replace(*QUALITY)
    if first_crossing:
        text = text.replace("rented_on_demand", "rented_reserved").replace(
            "H100-SXM: {rental_usd_per_gpu_hour: 2.0}",
            "H100-SXM: {rental_usd_per_gpu_hour: 4.0, reserved_usd_per_gpu_hour: 1.0}"
        ).replace("{input_usd_per_mtok: 0.5, output_usd_per_mtok: 2.0}",
                  "{input_usd_per_mtok: 0.02, output_usd_per_mtok: 0.05}")
    else:
        text = text.replace(
            "{input_usd_per_mtok: 0.5, output_usd_per_mtok: 2.0}",
            "{input_usd_per_mtok: 0.01, output_usd_per_mtok: 0.02}").replace(
            "limits: {requests_per_min: 100000, tokens_per_min: 100000000}",
            "limits: {requests_per_min: 100000, tokens_per_min: 100000000}\n"
            "        costs: {observability_usd_per_month: 5000}")
    (row,) = evaluate(scenario_from(text)).break_even
    volume = row.break_even_useful_requests_per_month
    again = row.local_dearer_again_useful_requests_per_month
    assert again is not None and (volume is not None) == first_crossing
    assert (volume or 0.0) < 50e6 < again
    small = row.model_copy(update={"local_capacity_requests_per_month": 50e6,
                                   "local_slo_capacity_requests_per_month": None})
    said = f"the {again / 1e6:.3g} M is past the 50 M gpu serves as simulated: it must grow"
    assert said in small.per_useful_past_capacity()
    assert f"({said} to cost less up to it)" in small.line()
    roomy = small.model_copy(update={"local_capacity_requests_per_month": again * 1.01})
    assert roomy.per_useful_past_capacity() == "" and "must grow" not in roomy.line()


LOW_VOLUME = """
    seed: 1
    duration: 600
    traffic: {kind: constant, rate_per_s: 0.1}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 1000},
             output_tokens: {kind: fixed, tokens: 200}}]
    constraints: {data_residency: [REGION]}
    catalog:
      gpus:
        H100-SXM: {rental_usd_per_gpu_hour: 2.0}
      cloud_models:
        gpt-4o-mini: {input_usd_per_mtok: 0.5, output_usd_per_mtok: 2.0}
    deployments:
      gpu:
        gpu: H100-SXM
        model: Llama-3.1-8B
        costs: {ownership: rented_on_demand, engineering_hours_per_month: 0,
                oncall_hours_per_month: 0, monitoring_usd_per_month: 0}
      api: {kind: cloud, model: gpt-4o-mini, region: us-east-1}
"""


def test_the_break_even_is_said_beside_the_recommendation() -> None:
    """0.1 requests/s is 262,800 a month; the API's calls cost 1,000 x $0.5/M + 200 x $2/M
    + 4 KB at $0.09/GB = $0.00090036, the GPU $2 x 730 h = $1,460 whatever the volume: they
    meet at 1,460 / 0.00090036 = 1.62 M a month, 6.17 times the volume, which the terminal
    says beside the API it recommends (the sensitivity's "volume x230" case is a sample
    past it, not where the answer changes)."""
    result = evaluate(scenario_from(LOW_VOLUME.replace("REGION", "us")))
    assert result.recommendation.deployment == "api"
    volume = 1_460 / ((1000 * 0.5 + 200 * 2.0) / 1e6 + 4e3 / 1e9 * 0.09)
    (row,) = result.break_even
    assert row.break_even_requests_per_month == pytest.approx(volume, rel=1e-6)
    assert result.break_even_lines() == [
        f"gpu and api cost the same at {volume / 1e6:.3g} M requests a month, "
        f"x{volume / (0.1 * 3600 * 730):.3g} the costed 262,800: api costs less below it, "
        "gpu above"]
    assert "1.62 M" in result.break_even_lines()[0] and "x6.17" in result.break_even_lines()[0]
    # an API the rules exclude is no alternative at any volume: no line
    kept_home = evaluate(scenario_from(LOW_VOLUME.replace("REGION", "eu")))
    assert kept_home.recommendation.deployment == "gpu"
    assert kept_home.break_even and kept_home.break_even_lines() == []
