"""What a target is sent: the output cap under the name its API reads, and a key only when
its variable holds one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lt_helpers import llmplan, targets_file

from llmplan.errors import InputError
from llmplan.loadtests.clients import OpenAIStream
from llmplan.loadtests.plan import PlanItem
from llmplan.loadtests.targets import Target, load_target


def _sent(**target: Any) -> dict[str, Any]:
    """The JSON body of one request to `target` (built, never sent)."""
    item = PlanItem(index=0, send_s=0.0, task="t", prompt="hello", planned_prompt_tokens=1,
                    max_tokens=37, fixed_length=True, check=None)
    body: dict[str, Any] = json.loads(OpenAIStream(Target(**target)).body(item))
    return body


@pytest.mark.parametrize("base_url", ["https://api.openai.com", "https://API.OpenAI.com/",
                                      "https://acme.openai.azure.com/openai/v1",
                                      "https://acme.cognitiveservices.azure.com/openai/v1"])
def test_openais_chat_api_gets_max_completion_tokens(base_url: str) -> None:
    """OpenAI's reasoning models (o-series, GPT-5) answer HTTP 400 to `max_tokens`; its chat
    reference names `max_completion_tokens` for every model. Azure OpenAI serves them with the
    same rules."""
    body = _sent(kind="openai", base_url=base_url, model="o4-mini", allow_remote=True,
                 fixed_output_length=False)
    assert body["max_completion_tokens"] == 37 and "max_tokens" not in body
    # and no temperature, which they refuse but at its default (1)
    assert "temperature" not in body


@pytest.mark.parametrize("base_url", ["https://openai.azure.com.example.net",
                                      "https://notopenai.azure.com", "https://myazure.com"])
def test_hosts_that_only_look_like_azure_openai_keep_max_tokens(base_url: str) -> None:
    body = _sent(kind="openai", base_url=base_url, model="m", allow_remote=True)
    assert body["max_tokens"] == 37 and "max_completion_tokens" not in body


def test_openais_legacy_completions_endpoint_keeps_max_tokens() -> None:
    body = _sent(kind="openai", base_url="https://api.openai.com", model="gpt-3.5-turbo-instruct",
                 api="completions", allow_remote=True)
    assert body["max_tokens"] == 37 and "max_completion_tokens" not in body


@pytest.mark.parametrize("effort", [None, "low"])
@pytest.mark.parametrize("api", ["chat", "completions"])
def test_a_chat_request_carries_messages_and_a_completion_a_prompt_never_both(
        api: str, effort: str | None) -> None:
    """OpenAI's API refuses an argument it does not know ('prompt' on its chat endpoint);
    a reasoning_effort setting must not change which of the two a request carries."""
    target: dict[str, Any] = {"kind": "openai", "base_url": "http://127.0.0.1:8080",
                              "model": "m", "api": api}
    if effort is not None and api == "chat":
        target["reasoning_effort"] = effort
    body = _sent(**target)
    assert ("messages" in body) == (api == "chat")
    assert ("prompt" in body) == (api == "completions")


@pytest.mark.parametrize("kind", ["openai", "llamacpp", "vllm", "ollama"])
@pytest.mark.parametrize("api", ["chat", "completions"])
def test_self_hosted_engines_keep_max_tokens(kind: str, api: str) -> None:
    """llama.cpp, Ollama and vLLM before its rename read `max_tokens`; an OpenAI-compatible
    server on this machine is no OpenAI API."""
    body = _sent(kind=kind, base_url="http://127.0.0.1:8080", model="m", api=api)
    assert body["max_tokens"] == 37 and "max_completion_tokens" not in body
    assert body["temperature"] == 0          # greedy, as the length checks expect
    if kind == "vllm":
        assert body["min_tokens"] == 37


@pytest.mark.parametrize("value, said", [(None, "is not set"), ("", "is set but empty"),
                                         ("  \t", "is set but empty")])
def test_a_key_variable_unset_or_empty_is_refused_by_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, said: str) -> None:
    """An empty key sent no Authorization header: every request was refused after the run
    began. Refused before it, like an unset one, naming the variable."""
    targets = targets_file(tmp_path, t={"kind": "vllm", "base_url": "http://127.0.0.1:9",
                                        "model": "m", "api_key_env": "LLMPLAN_EMPTY_KEY"})
    if value is None:
        monkeypatch.delenv("LLMPLAN_EMPTY_KEY", raising=False)
    else:
        monkeypatch.setenv("LLMPLAN_EMPTY_KEY", value)
    with pytest.raises(InputError) as raised:
        load_target(targets, "t")
    [problem] = raised.value.problems
    assert problem.path == "targets.t.api_key_env"
    assert f"environment variable LLMPLAN_EMPTY_KEY {said}" in problem.message
    monkeypatch.setenv("LLMPLAN_EMPTY_KEY", "k3y")
    assert load_target(targets, "t").auth_headers() == {"Authorization": "Bearer k3y"}


def test_an_empty_key_stops_the_load_test_before_any_request(tmp_path: Path) -> None:
    from fakes import FakeOpenAI

    with FakeOpenAI() as fake:
        targets = targets_file(tmp_path, fake={"kind": "openai", "base_url": fake.base_url,
                                               "model": "m", "api_key_env": "LLMPLAN_KEY"})
        result = llmplan("loadtest", "--targets", str(targets), "--target", "fake",
                         "--prompt-tokens", "8", "--output-tokens", "4", "--rate", "4",
                         "--requests", "2", "--out", str(tmp_path / "out"),
                         env={"LLMPLAN_KEY": ""})
        assert fake.requests == 0
    assert result.returncode == 2, result.stderr
    assert "LLMPLAN_KEY is set but empty" in " ".join(result.stderr.split())


TWO_TASKS = """
    seed: 2
    duration: 60
    traffic: {kind: poisson, rate_per_s: 1}
    tasks:
      - {name: chat, prompt_tokens: {kind: fixed, tokens: 20},
         output_tokens: {kind: fixed, tokens: 8}}
      - {name: think, prompt_tokens: {kind: fixed, tokens: 20},
         output_tokens: {kind: fixed, tokens: 8},
         reasoning_tokens: {kind: fixed, tokens: 300}}
    slo: {ttft_ms: 60000}
    deployments:
      api: {kind: cloud, model: gpt-5}
"""


@pytest.mark.parametrize("base_url", ["https://api.openai.com",
                                      "https://acme.openai.azure.com/openai/v1",
                                      "http://127.0.0.1:4000"])
def test_a_reasoning_task_s_requests_carry_the_target_s_effort(base_url: str) -> None:
    """OpenAI's chat API thinks at the model's default effort unless a request says
    otherwise (GPT-5: medium): the requests the plan gives hidden reasoning send the
    target's reasoning_effort; a plain task's send none; a target without one sends none."""
    from helpers import scenario_from

    from llmplan.loadtests.plan import build_plan

    plan = build_plan(scenario_from(TWO_TASKS), max_requests=20)
    assert {p.task for p in plan} == {"chat", "think"}
    target = {"kind": "openai", "base_url": base_url, "model": "gpt-5", "allow_remote": True,
              "fixed_output_length": False}
    with_effort = OpenAIStream(Target(**target, reasoning_effort="high"))
    without = OpenAIStream(Target(**target))
    for item in plan:
        body = json.loads(with_effort.body(item))
        assert body.get("reasoning_effort") == ("high" if item.task == "think" else None)
        assert item.task != "think" or item.reasoning_tokens == 300
        assert "reasoning_effort" not in json.loads(without.body(item))


@pytest.mark.parametrize(("model", "effort"), [("gpt-5", "minimal"), ("gpt-5.1", "none"),
                                             ("o4-mini", "low"), ("gpt-4o", None),
                                             ("claude-sonnet-4.5", None), ("no-such", None)])
@pytest.mark.parametrize("base_url", ["https://api.openai.com",
                                      "https://acme.openai.azure.com/openai/v1"])
def test_a_plain_task_on_a_model_that_must_reason_sends_the_lowest_effort_simulated(
        base_url: str, model: str, effort: str | None) -> None:
    """GPT-5 cannot answer without reasoning (minimal at least) and thinks at medium unless
    told: the simulation gives a plain task's answer the catalog's lowest effort's hidden
    tokens, and the stack's gateway sends that effort. A load test straight at the API sends
    it too, with the answer's cap (which OpenAI's reasoning counts against) raised by those
    tokens; a reasoning task keeps the target's own effort and its planned cap. A model the
    catalog does not know, or one that reasons only when asked, is left as it is."""
    from helpers import scenario_from

    from llmplan.catalog import builtin_catalog
    from llmplan.catalog.catalog import LEAST_EFFORT_REASONING_TOKENS
    from llmplan.loadtests.plan import build_plan
    from llmplan.loadtests.targets import with_catalog_reasoning

    catalog = builtin_catalog()
    target = with_catalog_reasoning(
        Target(kind="openai", base_url=base_url, model=model, allow_remote=True,
               fixed_output_length=False, reasoning_effort="high"), catalog)
    assert target.plain_reasoning_effort == effort
    extra = 0 if effort is None else LEAST_EFFORT_REASONING_TOKENS[effort]
    if effort is not None:
        assert catalog.cloud_models[model].plain_reasoning_tokens == extra
    stream = OpenAIStream(target)
    for item in build_plan(scenario_from(TWO_TASKS), max_requests=20):
        body = json.loads(stream.body(item))
        if item.task == "think":
            assert body["reasoning_effort"] == "high"
            assert body["max_completion_tokens"] == item.max_tokens
        else:
            assert body.get("reasoning_effort") == effort
            assert body["max_completion_tokens"] == item.max_tokens + extra
    # a server on this machine is no OpenAI API: nothing is added
    local = Target(kind="openai", base_url="http://127.0.0.1:4000", model=model)
    assert with_catalog_reasoning(local, catalog) is local


@pytest.mark.parametrize(("target", "said"), [
    ({"kind": "bedrock", "base_url": "http://127.0.0.1:9", "model": "m"}, "kind bedrock"),
    ({"kind": "llamacpp", "base_url": "http://127.0.0.1:9", "model": "m"}, "kind llamacpp"),
    ({"kind": "openai", "base_url": "http://127.0.0.1:9", "model": "m", "api": "completions"},
     "api completions"),
    ({"kind": "openai", "base_url": "http://127.0.0.1:9", "model": "m",
      "reasoning_effort": "max"}, "reasoning_effort")])
def test_an_effort_the_target_would_not_read_is_refused_at_load(
        tmp_path: Path, target: dict[str, Any], said: str) -> None:
    """Dropped silently, the load test would measure the model's default thinking, not the
    planned one: a target that cannot send reasoning_effort refuses it, naming the target,
    as does a value OpenAI's API does not know."""
    targets = targets_file(tmp_path, t={"reasoning_effort": "low", **target})
    with pytest.raises(InputError) as raised:
        load_target(targets, "t")
    [problem] = raised.value.problems
    assert problem.path.startswith("targets.t") and said in problem.path + problem.message


def test_a_plain_effort_is_one_the_simulation_counts(tmp_path: Path) -> None:
    """A plain task's answer cap is raised by the hidden tokens the simulation gives its
    effort, which it gives only the lowest ones: a higher one is refused at load, not left
    to fail every request of the run."""
    targets = targets_file(tmp_path, t={"kind": "openai", "base_url": "http://127.0.0.1:9",
                                        "model": "m", "plain_reasoning_effort": "medium"})
    with pytest.raises(InputError) as raised:
        load_target(targets, "t")
    [problem] = raised.value.problems
    assert problem.path == "targets.t.plain_reasoning_effort" and "'low'" in problem.message


@pytest.mark.parametrize(("max_tokens", "reasoning", "cap", "budget"), [
    (1506, 1500, 1506, 1500), (46, 40, 1030, 1024), (400, 400, 1025, 1024)])
def test_claudes_cap_on_bedrock_is_always_above_its_thinking_budget(
        max_tokens: int, reasoning: int, cap: int, budget: int) -> None:
    """Anthropic refuses a max_tokens at or under budget_tokens: with the planned answer cut
    to nothing (--max-output-tokens at or under the planned reasoning) the cap still holds
    one token past the budget."""
    from llmplan.loadtests.clients import BedrockStream

    stream = BedrockStream(Target(kind="bedrock", base_url="http://127.0.0.1:9", model="m",
                                  bedrock_thinking=True))
    item = PlanItem(index=0, send_s=0.0, task="t", prompt="hello", planned_prompt_tokens=1,
                    max_tokens=max_tokens, fixed_length=True, check=None,
                    reasoning_tokens=reasoning)
    request = stream.request(item, [])
    assert request["inferenceConfig"] == {"maxTokens": cap}
    assert request["additionalModelRequestFields"]["thinking"]["budget_tokens"] == budget


@pytest.mark.parametrize("item_cap", [8, None])
def test_a_reasoning_task_s_test_set_items_think_as_planned(item_cap: int | None) -> None:
    """A test set replaces a task's prompts, not its thinking: the simulation gives a
    reasoning task's every request its 300 hidden tokens, so a test-set item of that task
    sends the target's reasoning_effort with its own answer cap (8) raised by those 300
    (without one: the planned 8 + 300), and a Claude on Bedrock thinks with them as budget
    (Anthropic's minimum, 1,024); a plain task's items keep the lowest effort, their cap
    raised by its hidden tokens only."""
    from helpers import scenario_from

    from llmplan.catalog import builtin_catalog
    from llmplan.catalog.catalog import LEAST_EFFORT_REASONING_TOKENS
    from llmplan.loadtests.checks import TestItem
    from llmplan.loadtests.clients import BedrockStream
    from llmplan.loadtests.plan import build_plan
    from llmplan.loadtests.targets import with_catalog_reasoning

    test_set = [TestItem.model_validate({"task": task, "prompt": f"Say {task}.",
                                         "max_tokens": item_cap,
                                         "check": {"kind": "contains", "value": task}})
                for task in ("chat", "think")]
    plan = build_plan(scenario_from(TWO_TASKS), max_requests=20, test_set=test_set)
    assert {p.task for p in plan} == {"chat", "think"} and all(p.check for p in plan)
    target = with_catalog_reasoning(
        Target(kind="openai", base_url="https://api.openai.com", model="gpt-5",
               allow_remote=True, fixed_output_length=False, reasoning_effort="high"),
        builtin_catalog())
    plain = LEAST_EFFORT_REASONING_TOKENS["minimal"]
    bedrock = BedrockStream(Target(kind="bedrock", base_url="http://127.0.0.1:9",
                                   model="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                                   bedrock_thinking=True))
    for item in plan:
        body = json.loads(OpenAIStream(target).body(item))
        asked = bedrock.request(item, [])
        thinking = asked.get("additionalModelRequestFields", {}).get("thinking")
        if item.task == "think":
            assert (body["reasoning_effort"], body["max_completion_tokens"]) == ("high",
                                                                                 8 + 300)
            assert thinking == {"type": "enabled", "budget_tokens": 1024}
            assert asked["inferenceConfig"] == {"maxTokens": 1024 + 8}
        else:
            assert (body["reasoning_effort"], body["max_completion_tokens"]) == ("minimal",
                                                                                 8 + plain)
            assert thinking is None and asked["inferenceConfig"]["maxTokens"] == 8
