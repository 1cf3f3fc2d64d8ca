"""Chat tasks: a local model computes its chat template's tokens with the messages."""

from __future__ import annotations

import pytest
from helpers import run_first, scenario_from

from llmplan.scenario.models import SimulationMode
from llmplan.sim.table import request_table

# SmolLM2's template (catalog, measured on llama.cpp): 5.5 tokens per message, 3 for the
# reply opening, 21.5 for the system prompt it inserts when a request has none
CHAT = """
    seed: 1
    duration: 100
    traffic: {{kind: constant, rate_per_s: 0.01}}   # one session, starting at 0 s
    tasks:
      - name: chat
        {api}
        prompt_tokens: {{kind: fixed, tokens: 100}}
        output_tokens: {{kind: fixed, tokens: 10}}
        session: {{turns_min: 3, turns_max: 3, think_time_s: 0}}
    deployments:
      one:
        gpu: L4
        model: SmolLM2-135M
        engine: {{max_num_seqs: 8}}
        step_time: {{kind: linear, fixed_ms: 2, per_prefill_token_us: 10,
                    per_decode_seq_us: 100, per_kv_token_ns: 50}}
"""


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_chat_turns_carry_the_template_and_reuse_it_from_the_cache(mode: str) -> None:
    run, stream = run_first(scenario_from(CHAT.format(api="api: chat")), SimulationMode(mode))
    table = request_table(run, stream)
    assert list(stream.prompt_tokens) == [100, 210, 320]      # the messages' own tokens
    # turn k adds 21.5 + 3 + 5.5 x (2k + 1): 30, 41, 52
    assert list(table.prompt_tokens) == [130, 251, 372]
    # turn 0 ended with 130 + 10 - 1 tokens in the KV cache: turn 1's history (its 110
    # tokens and turn 0's 30 template tokens) is reused in full 16-token blocks, 128;
    # turn 1 ended with 260: 256 of turn 2's 261-token history
    assert run.records.cached_tokens == [0, 128, 256]
    for k, cached in ((0, 0), (1, 128), (2, 256)):
        prefill = table.prompt_tokens[k] - cached
        assert table.ttft_s[k] == pytest.approx(0.002 + prefill * 1e-5 + cached * 50e-9,
                                                rel=1e-9)


@pytest.mark.parametrize("api", ["", "api: completions"])
def test_other_tasks_are_computed_as_given(api: str) -> None:
    run, stream = run_first(scenario_from(CHAT.format(api=api)))
    table = request_table(run, stream)
    assert list(table.prompt_tokens) == [100, 210, 320]
    assert run.records.cached_tokens == [0, 96, 208]


def test_a_cloud_deployment_sends_the_messages_as_they_are() -> None:
    text = CHAT.format(api="api: chat").split("    deployments:")[0] + \
        "    deployments:\n      api: {kind: cloud, model: gpt-4o-mini}\n"
    run, stream = run_first(scenario_from(text))
    assert list(request_table(run, stream).prompt_tokens) == [100, 210, 320]


SINGLES = """
    seed: 1
    duration: 300
    traffic: {{kind: constant, rate_per_s: 0.01}}   # three requests, 100 s apart
    tasks:
      - name: ask
        api: chat
        prompt_tokens: {{kind: fixed, tokens: 100}}
        output_tokens: {{kind: fixed, tokens: 10}}
    deployments:
      one:
        gpu: L4
        model: SmolLM2-135M
        engine: {{prefix_caching: {policy}}}
        step_time: {{kind: linear, fixed_ms: 2, per_prefill_token_us: 10,
                    per_decode_seq_us: 100, per_kv_token_ns: 50}}
"""


@pytest.mark.parametrize(("policy", "reused"), [("vllm", 16), ("per_slot", 24), ("off", 0)])
def test_every_chat_request_shares_the_templates_opening(policy: str, reused: int) -> None:
    """Unrelated chat requests all start with the system prompt SmolLM2's template inserts
    and the user message's opening (21.5 + 2.75 tokens): llama.cpp reuses all 24 (the
    server's own count, 24 of 130, on every chat request after the first), vLLM its one
    full 16-token block."""
    run, stream = run_first(scenario_from(SINGLES.format(policy=policy)))
    table = request_table(run, stream)
    assert list(table.prompt_tokens) == [130, 130, 130]
    assert run.records.cached_tokens == [0, reused, reused]
    assert table.ttft_s[1] == pytest.approx(0.002 + (130 - reused) * 1e-5 + reused * 50e-9,
                                            rel=1e-9)
