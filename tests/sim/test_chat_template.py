"""Chat tasks: a local model computes its chat template's tokens with the messages."""

from __future__ import annotations

import numpy as np
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


GROUPS = """
    seed: 3
    duration: 1000
    traffic: {{kind: {traffic}, rate_per_s: {rate}}}
    tasks:
      - name: ask
        api: {api}
        prompt_tokens: {{kind: fixed, tokens: 100}}
        output_tokens: {{kind: fixed, tokens: 10}}
        shared_prefix: {{groups: {groups}, tokens: {{kind: fixed, tokens: 80}},
                        popularity: uniform}}
    deployments:
      one:
        gpu: L4
        model: SmolLM2-135M
        engine: {{prefix_caching: per_slot, max_num_seqs: {slots},
                  host_prompt_cache_gib: {host_gib}}}
        step_time: {{kind: linear, fixed_ms: 2, per_prefill_token_us: 10,
                    per_decode_seq_us: 100, per_kv_token_ns: 50}}
"""
#: ten requests, 100 s apart, on one slot
APART = {"traffic": "constant", "rate": 0.01, "slots": 1, "groups": 4, "host_gib": 8}


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_chat_prompts_of_other_system_prompts_share_the_templates_opening(mode: str) -> None:
    """One llama.cpp slot, system prompts (80 tokens) of four groups in front of chat
    messages: a request of another group than the slot's still shares the template's
    opening with it (24 of 210 tokens, over the 10% similarity, so llama.cpp keeps the slot
    and saves its prompt to host memory); a group seen before comes back from host memory
    whole (80 + 24); completions share nothing across groups."""
    chat, stream = run_first(scenario_from(GROUPS.format(api="chat", **APART)),
                             SimulationMode(mode))
    plain, _ = run_first(scenario_from(GROUPS.format(api="completions", **APART)),
                         SimulationMode(mode))
    groups = stream.prefix_group.tolist()
    seen = [g in groups[:i] for i, g in enumerate(groups)]
    assert len(groups) == 10 and len(set(groups)) >= 3 and sum(seen) >= 3
    assert chat.records.cached_tokens == [0] + [104 if s else 24 for s in seen[1:]]
    assert plain.records.cached_tokens == [80 if s else 0 for s in seen]
    table = request_table(chat, stream)
    assert list(table.prompt_tokens) == [80 + 100 + 30] * 10    # prefix, message, template
    for k, cached in enumerate(chat.records.cached_tokens):
        assert table.ttft_s[k] == pytest.approx(
            0.002 + (210 - cached) * 1e-5 + cached * 50e-9, rel=1e-9)


def test_template_openings_under_load_fast_mode_matches_reference() -> None:
    """Four busy slots, eight system prompts, no host memory: which slot a request takes
    (by similarity now that every slot shares the opening), what it reuses and when it
    finishes agree step by step."""
    loaded = scenario_from(GROUPS.format(api="chat", traffic="poisson", rate=3, slots=4,
                                         groups=8, host_gib=0))
    fast, stream = run_first(loaded, SimulationMode.FAST)
    ref, _ = run_first(loaded, SimulationMode.REFERENCE, stream)
    assert len(stream) > 2_500
    assert fast.records.cached_tokens == ref.records.cached_tokens
    assert fast.records.cached_tokens.count(24) > 100     # the opening alone, often
    a, b = request_table(fast, stream), request_table(ref, stream)
    for column in ("ttft_s", "e2e_s"):
        np.testing.assert_allclose(getattr(a, column)[a.ok], getattr(b, column)[b.ok],
                                   rtol=1e-6)
