"""What a load test sends, and when: the scenario's own request stream, made concrete.

The arrival times, tasks and token counts come from `llmplan.traffic.build_request_stream`,
exactly what the simulator sees for the same scenario and seed; `time_scale` compresses
time (0.1 = ten times faster) so an hour of traffic fits a short run. Prompts are synthetic
text of about the planned length, or come from a task's test set (then the answer is
checked and output length is the model's own).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmplan.loadtests.checks import TestItem
from llmplan.scenario import LoadedScenario
from llmplan.traffic import RequestStream, build_request_stream

# Common short English words: about one token each for BPE tokenizers.
_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while",
          "seven", "bright", "birds", "sing", "about", "river", "stone", "light", "and",
          "green", "fields", "under", "open", "sky")


def _tag(number: int, words: int) -> list[str]:
    """`number` written in `words` filler words (base len(_WORDS), least significant first):
    one token each, so a prompt's planned length is what the server counts (digits and
    salts like "run-3f9a2c" split into several tokens each: a header "Request 12
    prefix-hits." is 9 tokens to SmolLM2's tokenizer, not 4)."""
    base = len(_WORDS)
    return [_WORDS[(number // base ** k) % base] for k in range(words)]


def _salt_number(salt: str) -> int:
    return int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=4).digest(), "big")


HEADER_WORDS = 8   # 4 for the request number (331,776 values), 4 for the salt


def synthetic_prompt(tokens: int, index: int, salt: str = "") -> str:
    """About `tokens` tokens of filler text, different per request (no prefix-cache hits):
    it begins with the request number and the run's salt written in filler words.

    `salt` makes the prompts of one run differ from another's, so a server that caches
    prompts does not answer a repeated experiment from its cache.
    """
    words = [*_tag(index, 4), *_tag(_salt_number(salt), 4)]
    words += [_WORDS[(index + i) % len(_WORDS)] for i in range(max(0, tokens - HEADER_WORDS))]
    return " ".join(words)


def shared_prefix_text(group: int, tokens: int, salt: str = "") -> str:
    """About `tokens` tokens of text that every prompt of shared-prefix `group` starts with
    (salted per run, so only this run's requests share it)."""
    words = ["System", *_tag(group, 3), *_tag(_salt_number(salt), 4)]
    words += [_WORDS[(7 * group + i) % len(_WORDS)]
              for i in range(max(0, tokens - HEADER_WORDS))]
    return " ".join(words)


@dataclass(frozen=True)
class PlanItem:
    index: int
    send_s: float              # offset from the start of the run
    task: str
    prompt: str
    planned_prompt_tokens: int
    max_tokens: int
    fixed_length: bool         # ask the server to ignore EOS
    check: dict[str, Any] | None
    warmup: bool = False       # sent first, kept out of the statistics
    shared_prefix_tokens: int = 0   # of planned_prompt_tokens, the group's shared prefix
    #: a conversation's turn (-1: none): `prompt` is then only the turn's new message; the
    #: history (earlier prompts and the answers the server gave) goes in front when sent,
    #: `think_s` after the previous turn's answer ended
    session: int = -1
    turn: int = 0
    think_s: float = 0.0
    #: of max_tokens, the first ones the scenario has the model think (hidden reasoning):
    #: what a plain server writes as text in their place is kept out of the history a
    #: conversation's next turn sends (`Timing.answer`)
    reasoning_tokens: int = 0
    #: an agent loop's turn (SessionSpec.kind): the next turn's history keeps its hidden
    #: reasoning, so what a plain server writes in its place is sent back with the answer,
    #: and a reasoning server's streamed thinking on the answer's message (clients.sent_back)
    keeps_reasoning: bool = False


def build_plan(loaded: LoadedScenario, *, seed: int | None = None, time_scale: float = 1.0,
               duration_s: float | None = None, max_requests: int | None = None,
               max_output_tokens: int | None = None, max_prompt_tokens: int | None = None,
               test_set: list[TestItem] | None = None, salt: str = "",
               warmup: int = 0) -> list[PlanItem]:
    """The timed list of requests a load test sends; the first `warmup` are warm-up ones.

    `max_requests` counts measured requests (warm-up ones come on top)."""
    stream = build_request_stream(loaded.scenario, seed).stretched(time_scale)
    by_task: dict[str, list[TestItem]] = defaultdict(list)
    for item in test_set or []:
        by_task[item.task].append(item)
    used: dict[str, int] = defaultdict(int)
    plan: list[PlanItem] = []
    for i in range(len(stream)):
        send_s = float(stream.arrival_s[i])
        if duration_s is not None and send_s >= duration_s:
            break
        if max_requests is not None and len(plan) >= max_requests + warmup:
            break
        task = stream.task_names[int(stream.task_index[i])]
        prompt_tokens = int(stream.prompt_tokens[i])
        output_tokens = int(stream.output_tokens[i])
        if max_prompt_tokens is not None:
            prompt_tokens = min(prompt_tokens, max_prompt_tokens)
        if max_output_tokens is not None:
            output_tokens = min(output_tokens, max_output_tokens)
        # the first of output_tokens the scenario has the model think (hidden reasoning)
        hidden = 0 if stream.reasoning_tokens is None else \
            min(int(stream.reasoning_tokens[i]), output_tokens)
        items = by_task.get(task)
        if items:
            item = items[used[task] % len(items)]
            used[task] += 1
            # a reasoning task's item thinks as simulated: its own cap is the visible answer's
            cap = output_tokens if item.max_tokens is None else item.max_tokens + hidden
            plan.append(PlanItem(i, send_s, task, item.prompt, prompt_tokens, cap, False,
                                 item.check.model_dump(by_alias=True), i < warmup,
                                 reasoning_tokens=hidden))
        else:
            group = -1 if stream.prefix_group is None else int(stream.prefix_group[i])
            shared = 0 if group < 0 or stream.prefix_tokens is None else \
                min(int(stream.prefix_tokens[i]), prompt_tokens)
            session = -1 if stream.session is None else int(stream.session[i])
            turn = 0 if stream.turn is None else int(stream.turn[i])
            if turn > 0:   # the new message only; its history is the conversation so far
                shared = int(stream.prompt_tokens[i]) - own_tokens(stream, i)
                prompt_tokens = shared + own_tokens(stream, i, max_prompt_tokens)
            text = synthetic_prompt(prompt_tokens - shared, i, salt)
            if shared and turn == 0:
                # the same text for every request of the group: a server's prefix cache
                # sees what the simulation assumes (a later turn's shared part is its own
                # conversation, sent as messages)
                text = shared_prefix_text(group, shared, salt) + " " + text
            think = 0.0 if stream.think_s is None else float(stream.think_s[i])
            kept = stream.reasoning_kept_tasks
            keeps = bool(kept) and kept[int(stream.task_index[i])]
            plan.append(PlanItem(i, send_s, task, text, prompt_tokens, output_tokens, True,
                                 None, i < warmup, shared, session, turn, think, hidden,
                                 keeps))
    return plan


def own_tokens(stream: RequestStream, i: int, cap: int | None = None) -> int:
    """Request i's own prompt tokens (after its shared prefix or history), at most `cap`."""
    prefix = 0 if stream.prefix_tokens is None else int(stream.prefix_tokens[i])
    own = int(stream.prompt_tokens[i]) - prefix
    return own if cap is None else min(own, cap)


def write_plan(plan: list[PlanItem], path: Path) -> None:
    path.write_text(json.dumps([asdict(p) for p in plan]), encoding="utf-8")


def read_plan(path: str | Path) -> list[PlanItem]:
    return [PlanItem(**row) for row in json.loads(Path(path).read_text(encoding="utf-8"))]
