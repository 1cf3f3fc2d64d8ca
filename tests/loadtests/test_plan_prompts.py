"""Planned prompts are as long as planned, to the server's own tokenizer, and distinct.

The load test writes a prompt of N tokens as filler words of one token each. Its header
(the request number and the run's salt) used to be digits and a salt string ("Request 12
prefix-hits."), which SmolLM2 splits into 9 tokens where the plan counted 4, so every
prompt the server saw was 5-8 tokens longer than the simulation of the same plan.
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

from llmplan.catalog import builtin_catalog
from llmplan.loadtests.llamacpp_server import LlamaCppServer
from llmplan.loadtests.plan import shared_prefix_text, synthetic_prompt


def _count(server: LlamaCppServer, text: str) -> int:
    body = json.dumps({"content": text, "add_special": False}).encode()
    request = urllib.request.Request(f"{server.base_url}/tokenize", body,
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return len(json.load(response)["tokens"])


@pytest.mark.parametrize(("tokens", "index", "salt"), [
    (20, 12, "prefix-hits"), (150, 4711, "run-3f9a2c"), (300, 331_000, "a"), (9, 0, "")])
def test_a_prompt_has_the_planned_number_of_tokens(llamacpp: LlamaCppServer, tokens: int,
                                                   index: int, salt: str) -> None:
    assert _count(llamacpp, synthetic_prompt(tokens, index, salt)) == tokens


def test_a_shared_prefix_and_a_question_have_their_planned_lengths(
        llamacpp: LlamaCppServer) -> None:
    prefix = shared_prefix_text(5, 200, "prefix-hits")
    assert _count(llamacpp, prefix) == 200
    assert _count(llamacpp, prefix + " " + synthetic_prompt(15, 99, "prefix-hits")) == 215


def test_prompts_differ_by_request_and_by_run() -> None:
    run = [synthetic_prompt(50, i, "one") for i in range(2000)]
    assert len(set(run)) == 2000
    # requests far apart do not repeat each other (the number is written in four words)
    assert synthetic_prompt(50, 3, "one") != synthetic_prompt(50, 3 + 24 ** 3, "one")
    # another run's salt changes every prompt, from its first words on
    other = [synthetic_prompt(50, i, "two") for i in range(2000)]
    assert not set(run) & set(other)
    assert all(a.split()[:8] != b.split()[:8] for a, b in zip(run, other, strict=True))
    # consecutive requests differ from the first token: no shared prefix to cache
    assert all(run[i].split()[0] != run[i + 1].split()[0] for i in range(len(run) - 1))
    assert shared_prefix_text(1, 80, "one") != shared_prefix_text(1, 80, "two")


def _chat_prompt_tokens(server: LlamaCppServer, messages: list[dict[str, str]]) -> int:
    """The prompt tokens the server counts for a chat request (its usage)."""
    body = json.dumps({"messages": messages, "max_tokens": 1}).encode()
    request = urllib.request.Request(f"{server.base_url}/v1/chat/completions", body,
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return int(json.load(response)["usage"]["prompt_tokens"])


def test_the_catalog_chat_template_is_what_the_server_adds(llamacpp: LlamaCppServer) -> None:
    """A conversation as the load test sends it (no system message, the history as
    alternating messages): the server's prompt = the messages' tokens + the catalog
    template's tokens for that turn, which the simulator adds to `api: chat` tasks."""
    template = builtin_catalog().models["SmolLM2-135M"].chat_template
    assert template is not None
    texts = [synthetic_prompt(n, i, "template") for i, n in enumerate((40, 12, 25, 9, 31))]
    for turn in range(3):
        messages = [{"role": "user" if k % 2 == 0 else "assistant", "content": text}
                    for k, text in enumerate(texts[:2 * turn + 1])]
        content = sum(_count(llamacpp, text) for text in texts[:2 * turn + 1])
        added = _chat_prompt_tokens(llamacpp, messages) - content
        assert abs(added - int(template.prompt_tokens(np.array([turn]))[0])) <= 1, \
            (turn, added)
