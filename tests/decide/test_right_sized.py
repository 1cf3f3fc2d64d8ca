"""Planning decides again with each fixed local fleet at the fewest replicas meeting the
SLO: a fleet written larger than it needs can lose to an API as configured and win once
right-sized, and the output says which, with the replica count to set."""

from __future__ import annotations

from helpers import scenario_from

from llmplan.decide.decision import decide
from llmplan.decide.planning import plan
from llmplan.decide.scaled_runs import resized
from llmplan.sim.run import simulate_scenario

# 1.4 requests/s of 500 + 150 tokens: gpt-4o costs ~$10,100 a month; four owned L40S
# replicas of an 8B model a little more, one replica (all this traffic needs) a little less
SCENARIO = """
    seed: 3
    duration: 1800
    traffic: {kind: poisson, rate_per_s: 1.4}
    tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 500},
             output_tokens: {kind: fixed, tokens: 150}}]
    slo: {ttft_ms: 2000, e2e_ms: 15000, min_goodput_fraction: 0.95}
    deployments:
      gpu: {gpu: L40S, model: Llama-3.1-8B, replicas: 4}
      api: {kind: cloud, model: gpt-4o,
            limits: {requests_per_min: 10000, tokens_per_min: 10000000}}
"""


def test_an_oversized_fleet_wins_once_right_sized() -> None:
    loaded = scenario_from(SCENARIO)
    simulation = simulate_scenario(loaded)
    result = decide(simulation, loaded)
    planned = plan(simulation, loaded, jobs=1)
    result = result.model_copy(update={"planning": planned})
    fewest = planned.deployments["gpu"].min_replicas_meeting_slo
    assert fewest is not None and fewest < 4
    sized = planned.right_sized
    assert sized is not None and set(sized.fleets) == {"gpu"}
    fleet = sized.fleets["gpu"]
    assert (fleet.replicas, fleet.simulated_replicas, fleet.feasible) == (fewest, 4, True)
    # its cost is the resized scenario's cost of the resized run: the same as deciding a
    # scenario written with that many replicas
    written = resized(loaded, "gpu", fewest)
    again = decide(simulate_scenario(written), written).deployments["gpu"].cost
    assert fleet.monthly_usd == again.monthly_usd
    # as written, the API is cheaper per useful result; right-sized, the fleet is
    as_written = result.deployments
    assert result.recommendation.deployment == "api"
    assert as_written["gpu"].cost.usd_per_useful_result > \
        as_written["api"].cost.usd_per_useful_result > (fleet.usd_per_useful_result or 0.0)
    assert sized.recommendation.deployment == "gpu"
    line = result.right_sized_line()
    assert line is not None and f"deployments.gpu.replicas: {fewest}" in line


def test_nothing_to_say_when_every_fleet_is_already_right_sized() -> None:
    loaded = scenario_from(SCENARIO.replace("replicas: 4", "replicas: 1"))
    simulation = simulate_scenario(loaded)
    planned = plan(simulation, loaded, jobs=1)
    assert planned.deployments["gpu"].min_replicas_meeting_slo == 1
    assert planned.right_sized is None
    result = decide(simulation, loaded).model_copy(update={"planning": planned})
    assert result.right_sized_line() is None
    assert "right_sized" not in result.model_dump_json()


def test_a_right_sized_answer_within_the_tie_band_does_not_switch_the_answer() -> None:
    """The recommendation calls costs within 0.5% per useful result a tie; a right-sized
    fleet that much cheaper than the written answer is no reason to switch to it."""
    loaded = scenario_from(SCENARIO)
    simulation = simulate_scenario(loaded)
    planned = plan(simulation, loaded, jobs=1)
    result = decide(simulation, loaded).model_copy(update={"planning": planned})
    api = result.deployments["api"].cost.usd_per_useful_result
    sized = planned.right_sized
    assert sized is not None and api is not None
    assert result.recommendation.deployment == "api" and "right-sized: gpu" in result.headline()

    def with_gpu_at(per_useful: float):  # type: ignore[no-untyped-def]
        fleet = sized.fleets["gpu"].model_copy(update={"usd_per_useful_result": per_useful})
        return result.model_copy(update={"planning": planned.model_copy(update={
            "right_sized": sized.model_copy(update={"fleets": {"gpu": fleet}})})})

    tied = with_gpu_at(api / 1.004)
    assert tied.headline() == "api" and tied.right_sized_line() is None
    cheaper = with_gpu_at(api / 1.01)
    assert cheaper.headline() == "api with the fleets as written (right-sized: gpu)"


def test_one_replica_without_simulated_failures_is_named_as_a_risk() -> None:
    """A fleet of one replica serves nothing while it is down; a run without failures
    never shows it. The right-sized answer of one replica says so, as does a written one,
    and a scenario that simulates failures has its SLO judged with them instead."""
    from llmplan.decide.resilience import single_replica_risks

    loaded = scenario_from(SCENARIO)
    simulation = simulate_scenario(loaded)
    planned = plan(simulation, loaded, jobs=1)
    result = decide(simulation, loaded).model_copy(update={"planning": planned})
    assert planned.deployments["gpu"].min_replicas_meeting_slo == 1
    (line,) = single_replica_risks(loaded, result)
    assert line.startswith("right-sized, gpu runs one replica: while it fails or restarts "
                           "nothing is served")
    one = scenario_from(SCENARIO.replace("replicas: 4", "replicas: 1"))
    alone = decide(simulate_scenario(one), one)
    assert alone.recommendation.deployment == "gpu"
    assert single_replica_risks(one, alone)[0].startswith("gpu runs one replica")
    failing = scenario_from(SCENARIO.replace(
        "replicas: 4}", "replicas: 1, failures: {mtbf_hours: 1000}}"))
    assert single_replica_risks(failing, decide(simulate_scenario(failing), failing)) == []
