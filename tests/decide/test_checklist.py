"""The evaluation checklist answers for what is recommended and what the scenario demands:
nothing is "provisioned" for a provider's API, and an offline requirement is named as the
constraint it is, not as outages nobody gave."""

from __future__ import annotations

from helpers import scenario_from

from llmplan.decide.table import checklist
from llmplan.results.decision import ChecklistItem

SCENARIO = """
    duration: 60
    traffic: {{kind: poisson, rate_per_s: 1}}
    tasks:
      - {{name: chat, prompt_tokens: {{kind: fixed, tokens: 100}},
         output_tokens: {{kind: fixed, tokens: 20}}}}
    constraints: {{offline_operation_required: {offline}}}
    deployments:
{deployments}
"""
FLEET = "      fleet: {gpu: L4, model: Llama-3.1-8B}\n"
API = "      api: {kind: cloud, model: gpt-4o-mini}\n"
HYBRID = "      both: {kind: hybrid, local: fleet, cloud: api}\n"


def _items(deployments: str, recommended: str | None = None,
           offline: bool = False) -> dict[str, ChecklistItem]:
    loaded = scenario_from(SCENARIO.format(offline=str(offline).lower(),
                                           deployments=deployments))
    words = {"roll": "roll back", "patches": "patches", "outages": "outages"}
    found = checklist(loaded, recommended)
    return {key: next(c for c in found if words in c.item) for key, words in words.items()}


def test_an_api_recommendation_has_nothing_provisioned_to_roll_back() -> None:
    items = _items(FLEET + API, recommended="api")
    rollback = items["roll"]
    assert rollback.status == "provider-managed" and "infra/" not in rollback.evidence
    assert "gpt-4o-mini" in rollback.evidence
    assert items["patches"].status == "provider-managed"
    # the fleet, recommended, is what infra/ provisions; the hybrid's API side is not
    assert _items(FLEET + API, recommended="fleet")["roll"].status == "provisioned"
    hybrid = _items(FLEET + API + HYBRID, recommended="both")["roll"]
    assert hybrid.status == "provisioned" and "its API side (gpt-4o-mini)" in hybrid.evidence


def test_without_a_recommendation_each_kind_is_answered_for() -> None:
    assert _items(API)["roll"].status == "provider-managed"
    assert "infra/" not in _items(API)["roll"].evidence
    mixed = _items(FLEET + API)["roll"]
    assert "fleets fleet: infra/" in mixed.evidence and "candidates api: nothing" in \
        mixed.evidence


def test_offline_operation_is_the_outage_answer_when_the_scenario_requires_it() -> None:
    for recommended in (None, "fleet"):
        outage = _items(FLEET + API + HYBRID, recommended, offline=True)["outages"]
        assert outage.status == "constraint", outage
        assert "offline operation required" in outage.evidence
        assert "api, both excluded for depending on a cloud API" in outage.evidence
    # a fleet with no provider has no provider outage to assume
    local = _items(FLEET, recommended="fleet")["outages"]
    assert local.status == "not applicable" and "no provider" in local.evidence


def test_rolling_out_a_fleet_of_one_replica_stops_it() -> None:
    # maxUnavailable 1 of one replica: the old pod goes before the new one serves
    lone = _items(FLEET + API + HYBRID, recommended="fleet")["roll"]
    assert lone.status == "provisioned" and "with one replica an update" in lone.evidence
    assert "with one replica" in _items(FLEET + API + HYBRID, recommended="both")["roll"] \
        .evidence
    pair = _items(FLEET.replace("Llama-3.1-8B}", "Llama-3.1-8B, replicas: 2}") + API,
                  recommended="fleet")["roll"]
    assert "with one replica" not in pair.evidence and "maxUnavailable 1" in pair.evidence
