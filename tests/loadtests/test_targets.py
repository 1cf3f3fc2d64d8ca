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
