"""What a target is sent: the output cap under the name its API reads, and a key only when
its variable holds one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmplan.loadtests.clients import OpenAIStream
from llmplan.loadtests.plan import PlanItem
from llmplan.loadtests.targets import Target


def _sent(**target: Any) -> dict[str, Any]:
    """The JSON body of one request to `target` (built, never sent)."""
    item = PlanItem(index=0, send_s=0.0, task="t", prompt="hello", planned_prompt_tokens=1,
                    max_tokens=37, fixed_length=True, check=None)
    body: dict[str, Any] = json.loads(OpenAIStream(Target(**target)).body(item))
    return body


@pytest.mark.parametrize("base_url", ["https://api.openai.com", "https://API.OpenAI.com/"])
def test_openais_chat_api_gets_max_completion_tokens(base_url: str) -> None:
    """OpenAI's reasoning models (o-series, GPT-5) answer HTTP 400 to `max_tokens`; its chat
    reference names `max_completion_tokens` for every model."""
    body = _sent(kind="openai", base_url=base_url, model="o4-mini", allow_remote=True,
                 fixed_output_length=False)
    assert body["max_completion_tokens"] == 37 and "max_tokens" not in body


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
    if kind == "vllm":
        assert body["min_tokens"] == 37
