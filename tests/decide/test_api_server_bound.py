"""A plan whose capacity is set by the API server, not the GPUs, says so and says what helps."""

from __future__ import annotations

import pytest

from llmplan.api import load_scenario
from llmplan.pipeline import evaluate
from llmplan.results import Result

SCENARIO = """
seed: 5
duration: 60
traffic: {kind: poisson, rate_per_s: 20}
tasks:
  - name: only
    prompt_tokens: {kind: fixed, tokens: 100}
    output_tokens: {kind: fixed, tokens: 200}
deployments:
  one:
    gpu: H100-SXM
    model: Llama-3.1-8B
    engine: {max_num_seqs: 1024, api_server_count: %d}
"""


def _evaluate(servers: int, tmp_path_factory: pytest.TempPathFactory) -> Result:
    path = tmp_path_factory.mktemp("s") / "scenario.yaml"
    path.write_text(SCENARIO % servers, encoding="utf-8")
    return evaluate(load_scenario(path))


def test_one_api_server_caps_the_fleet_and_the_answer_says_so(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    result = _evaluate(1, tmp_path_factory)
    local = result.deployments["one"].local
    assert local is not None
    use = local.utilisation
    assert use.full_batch_step_bound_by == "api_server"
    texts = [d.text for d in result.recommendation.drivers]
    assert any("wait on the API server" in t and "api_server_count" in t for t in texts), texts
    # its basis names what a scenario can set, in the scenario's words: the roofline's
    # default 80 us per streamed token, one server
    basis = next(d.basis for d in result.recommendation.drivers if "API server" in d.text)
    assert "80 us of API server time per streamed token" in basis
    assert "step_time.frontend_per_token_us" in basis and "StepTime" not in basis
    scale = next(r for r in result.decision_table if r.question == "scale")
    assert "wait on the API server" in scale.answers["one"]
    # four servers: the GPUs set the pace again and nothing claims otherwise
    more = _evaluate(4, tmp_path_factory)
    local4 = more.deployments["one"].local
    assert local4 is not None
    use4 = local4.utilisation
    assert use4.full_batch_step_bound_by != "api_server"
    assert use4.full_batch_requests_per_s > use.full_batch_requests_per_s
    assert not any("API server" in d.text for d in more.recommendation.drivers)
