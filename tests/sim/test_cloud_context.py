"""An API refuses what its model cannot take, as the provider does (HTTP 400, nothing
charged): a prompt and the answer it asks for beyond the model's context window, or an
answer beyond its maximum output. gpt-4o-mini: 128,000 tokens of context, 16,384 of
output (catalog)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import scenario_from

from llmplan.catalog import builtin_catalog
from llmplan.scenario.cloud import CloudDeployment
from llmplan.sim.cloud import fits_model, sustained_limit
from llmplan.sim.run import simulate_scenario
from llmplan.traffic import RequestStream

MINI = builtin_catalog().cloud_models["gpt-4o-mini"]

SCENARIO = """
    seed: 3
    duration: 120
    traffic: {{kind: poisson, rate_per_s: 1}}
    tasks:
      - {{name: t, prompt_tokens: {{kind: fixed, tokens: {prompt}}},
         output_tokens: {{kind: fixed, tokens: {output}}}}}
    deployments:
      api:
        kind: cloud
        model: gpt-4o-mini
        limits: {{requests_per_min: 100000, tokens_per_min: 1000000000{max_tokens}}}
        latency: {{output_tokens_per_s: {{median: 2000, p5: 1800}}}}
"""


def _api(prompt: int, output: int, max_tokens: int | None = None):  # type: ignore[no-untyped-def]
    extra = f", max_tokens: {max_tokens}" if max_tokens is not None else ""
    loaded = scenario_from(SCENARIO.format(prompt=prompt, output=output, max_tokens=extra))
    result = simulate_scenario(loaded).deployments["api"]
    assert result.cloud is not None
    return result


def test_the_whole_window_is_answered() -> None:
    assert MINI.context_tokens == 128_000 and MINI.max_output_tokens == 16_384
    result = _api(prompt=128_000 - 16_384, output=16_384)
    assert result.requests.too_long == 0
    assert result.requests.completed == result.requests.total


def test_a_prompt_past_the_context_window_is_refused_and_not_billed() -> None:
    result = _api(prompt=128_000 - 99, output=100)
    assert result.requests.too_long == result.requests.total > 0
    assert result.cloud.served == 0 and result.cloud.input_tokens == 0
    assert result.cloud.unserved is None      # never priced as if it could be served
    assert not result.slo.met


def test_an_answer_past_the_maximum_output_is_refused() -> None:
    result = _api(prompt=1_000, output=16_385)
    assert result.requests.too_long == result.requests.total > 0


def test_the_clients_max_tokens_is_what_the_provider_checks() -> None:
    # asking for more than the model writes is refused even for short answers
    assert _api(prompt=1_000, output=100, max_tokens=20_000).requests.too_long > 0
    # and it counts against the window with the prompt
    assert _api(prompt=120_000, output=100, max_tokens=10_000).requests.too_long > 0
    assert _api(prompt=100_000, output=100, max_tokens=10_000).requests.too_long == 0


HYBRID = """
    seed: 3
    duration: 60
    traffic: {{kind: poisson, rate_per_s: 0.2}}
    tasks:
      - {{name: t, prompt_tokens: {{kind: fixed, tokens: 130000}},
         output_tokens: {{kind: fixed, tokens: 100}}}}
    deployments:
      gpus: {{gpu: H200, model: Llama-3.1-8B}}
      api: {{kind: cloud, model: gpt-4o-mini,
             limits: {{requests_per_min: 100000, tokens_per_min: 1000000000}}}}
      both: {{kind: hybrid, local: gpus, cloud: api, routes: [{{tasks: [t], to: cloud}}],
              fallback_to_local: {fallback}}}
"""


def test_a_hybrid_sends_what_its_api_cannot_take_to_its_fleet_when_allowed() -> None:
    """130,000-token prompts: past gpt-4o-mini's window, within Llama-3.1-8B's 131,072."""
    served = simulate_scenario(scenario_from(HYBRID.format(fallback="true"))) \
        .deployments["both"]
    assert served.hybrid is not None
    assert served.requests.total > 0
    assert served.requests.too_long == 0
    assert served.hybrid.moved_between_paths == served.requests.total
    assert served.hybrid.served_cloud == 0 and served.hybrid.served_local > 0
    refused = simulate_scenario(scenario_from(HYBRID.format(fallback="false"))) \
        .deployments["both"]
    assert refused.requests.too_long == refused.requests.total


def test_what_the_model_refuses_never_reaches_the_limits() -> None:
    """Half the stream is refused (prompts past the window): the rate at which the other
    half reaches a tokens-per-minute limit is twice the rate those alone would sustain,
    counted over the whole stream."""
    spec = CloudDeployment.model_validate(
        {"kind": "cloud", "model": "gpt-4o-mini",
         "limits": {"requests_per_min": 1_000_000, "tokens_per_min": 600_000}})
    n = 10
    prompts = np.array([1_000, 200_000] * (n // 2), dtype=np.int64)
    outputs = np.full(n, 200, dtype=np.int64)
    stream = RequestStream(arrival_s=np.arange(n, dtype=float),
                           task_index=np.zeros(n, dtype=np.int64), prompt_tokens=prompts,
                           output_tokens=outputs, task_names=("t",))
    assert fits_model(spec, MINI, prompts, outputs).tolist() == [True, False] * (n // 2)
    sustained = sustained_limit(spec, MINI, stream)
    assert sustained is not None and "tokens/min" in sustained.limit
    # 600,000 tokens a minute over 1,200-token calls: 500 a minute of those that fit
    assert sustained.requests_per_s * 60 == pytest.approx(2 * 500)


@pytest.mark.parametrize(("prompt", "too_long"), [(922_000, False), (922_001, True)])
def test_a_prompt_past_the_maximum_input_is_refused_inside_the_window(prompt: int,
                                                                     too_long: bool) -> None:
    # gpt-6-sol: 1,050,000 tokens of context, but prompts of at most 922,000 (the window
    # less its 128,000 of output), whatever the answer asks
    sol = builtin_catalog().cloud_models["gpt-6-sol"]
    assert (sol.context_tokens, sol.max_input_tokens) == (1_050_000, 922_000)
    spec = CloudDeployment(kind="cloud", model="gpt-6-sol")
    assert fits_model(spec, sol, [prompt], [100]).tolist() == [not too_long]


def test_a_long_prompt_waits_for_the_provider_to_read_it() -> None:
    # the provider's time to first token, every draw the same (p95 = median), plus the
    # prompt at the default 50,000 tokens/s: 100,000 tokens wait 2 s more than 1,000
    def ttft_ms(prompt: int) -> float:
        text = SCENARIO.format(prompt=prompt, output=10, max_tokens="") + \
            "        latency: {ttft_ms: {median: 300, p95: 300}, network_rtt_ms: 40}\n"
        text = text.replace("        latency: {output_tokens_per_s: {median: 2000, p5: 1800}}\n",
                            "")
        result = simulate_scenario(scenario_from(text)).deployments["api"]
        return result.latency.ttft_ms.p50
    assert ttft_ms(1_000) == pytest.approx(40 + 300 + 1_000 / 50, rel=1e-6)
    assert ttft_ms(100_000) - ttft_ms(1_000) == pytest.approx(99_000 / 50, rel=1e-6)
