"""The request stream of a scenario: arrival times, task and token counts per request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from llmplan.traffic.arrivals import TraceTraffic, TrafficSpec
from llmplan.traffic.lengths import LengthSpec

# Independent random streams derived from the scenario seed; fixed ids keep them stable when
# other parts of the scenario change (common random numbers across deployments and runs).
ARRIVALS_STREAM, TASKS_STREAM, LENGTHS_STREAM, REASONING_STREAM, PREFIX_STREAM = 1, 2, 3, 4, 5
SESSION_STREAM = 6
#: the most requests one simulated window may draw: every request takes a few hundred bytes
#: in the request table and the simulator's queues (a month is scaled from the window); a
#: scenario's traffic and an imported usage trace are both held to it
MAX_SIMULATED_REQUESTS = 20_000_000
#: prefix groups of conversations: SESSION_GROUP_BASE + session (above any shared prefix's)
SESSION_GROUP_BASE = 1 << 40
#: the prefix group of what a chat template puts in front of every first message (a default
#: system prompt, the message's opening): the same text for every chat request of a model
TEMPLATE_GROUP = SESSION_GROUP_BASE - 1


class ChatTemplate(Protocol):
    """What the stream needs of a model's chat template (the catalog's ChatTemplate)."""

    def prompt_tokens(self, turn: np.ndarray) -> np.ndarray: ...
    def shared_tokens(self, turn: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class RequestStream:
    """Column arrays, one row per request, sorted by arrival."""

    arrival_s: np.ndarray       # float64
    task_index: np.ndarray      # int64, into task_names
    prompt_tokens: np.ndarray   # int64
    output_tokens: np.ndarray   # int64: every token generated, hidden reasoning included
    task_names: tuple[str, ...]
    #: int64, the first tokens of each output that are hidden reasoning (None: no reasoning)
    reasoning_tokens: np.ndarray | None = None
    #: int64, the shared prefix each prompt starts with (-1: none) and its length, which
    #: prompt_tokens includes (None: no task has shared prefixes)
    prefix_group: np.ndarray | None = None
    prefix_tokens: np.ndarray | None = None
    #: int64, the conversation (or agent loop) each request is a turn of (-1: none), the
    #: turn's number from 0, and float64, the pause before it after the previous turn ends
    #: (None: no task has sessions). A later turn's arrival_s is only its place in the
    #: stream (first turn + pauses): a run sends it when the previous turn has ended.
    session: np.ndarray | None = None
    turn: np.ndarray | None = None
    think_s: np.ndarray | None = None
    #: per task, whether its requests are chat messages (a local model's chat template is
    #: added to their prompts when simulated); empty: none are
    chat_tasks: tuple[bool, ...] = ()
    #: per task, whether a session's later turns carry the earlier turns' hidden reasoning
    #: in their history (an agent loop's tool-call chain: SessionSpec.kind); empty: none do
    reasoning_kept_tasks: tuple[bool, ...] = ()

    def __len__(self) -> int:
        return len(self.arrival_s)

    def scaled(self, time_factor: float) -> RequestStream:
        """The same requests with every arrival time multiplied by `time_factor`."""
        return replace(self, arrival_s=self.arrival_s * time_factor)

    def with_hidden_reasoning(self, requests: np.ndarray, tokens: int) -> RequestStream:
        """The same requests with `tokens` hidden reasoning tokens before the answer of each
        one `requests` flags (a bool per request): what a model that cannot answer without
        reasoning generates for a task that asks for none. Generated, timed and billed
        like the task's own reasoning_tokens; a chat's next turn sends the answer alone back,
        an agent loop's the reasoning too (`reasoning_kept_tasks`), as for a task's own."""
        added = np.where(requests, tokens, 0).astype(np.int64)
        if tokens <= 0 or not added.any():
            return self
        reasoning = added if self.reasoning_tokens is None else self.reasoning_tokens + added
        out = replace(self, output_tokens=self.output_tokens + added, reasoning_tokens=reasoning)
        history = self._earlier_turns_sum(added)
        if history is None:
            return out
        prefix = None if self.prefix_tokens is None else self.prefix_tokens + history
        return replace(out, prompt_tokens=self.prompt_tokens + history, prefix_tokens=prefix)

    def served_two_ways(self, other: RequestStream, rows: np.ndarray) -> RequestStream:
        """These requests with `other`'s tokens (prompt, output, hidden reasoning, shared
        prefix) in the `rows` it flags (a bool per request): the same requests as served
        by two paths that send or generate different tokens (a hybrid's fleet and API)."""
        if other is self or not rows.any():
            return self

        def pick(mine: np.ndarray | None, theirs: np.ndarray | None) -> np.ndarray | None:
            if mine is None and theirs is None:
                return None
            a = np.zeros(len(self), dtype=np.int64) if mine is None else mine
            b = np.zeros(len(self), dtype=np.int64) if theirs is None else theirs
            return np.where(rows, b, a)

        prompt, output = pick(self.prompt_tokens, other.prompt_tokens), \
            pick(self.output_tokens, other.output_tokens)
        assert prompt is not None and output is not None
        prefix = None if self.prefix_tokens is None else \
            pick(self.prefix_tokens, other.prefix_tokens)
        return replace(self, prompt_tokens=prompt, output_tokens=output,
                       reasoning_tokens=pick(self.reasoning_tokens, other.reasoning_tokens),
                       prefix_tokens=prefix)

    def _earlier_turns_sum(self, added: np.ndarray) -> np.ndarray | None:
        """Per request of an agent loop (`reasoning_kept_tasks`), the sum of `added` over
        the requests of its session's earlier turns (every call of a fanned-out turn), which
        its history carries; 0 elsewhere (None: no agent loop here)."""
        if self.session is None or self.turn is None or not any(self.reasoning_kept_tasks):
            return None
        kept = np.asarray(self.reasoning_kept_tasks, dtype=bool)[self.task_index]
        rows = np.flatnonzero(kept & (self.session >= 0))
        if not len(rows):
            return None
        order = rows[np.lexsort((self.turn[rows], self.session[rows]))]
        session, turn = self.session[order], self.turn[order]
        before = np.concatenate([[0], np.cumsum(added[order])])    # exclusive running sums
        index = np.arange(len(order))
        new_session = np.r_[True, session[1:] != session[:-1]]
        new_turn = new_session | np.r_[True, turn[1:] != turn[:-1]]
        session_start = np.maximum.accumulate(np.where(new_session, index, 0))
        turn_start = np.maximum.accumulate(np.where(new_turn, index, 0))
        out = np.zeros(len(self), dtype=np.int64)
        out[order] = before[turn_start] - before[session_start]
        return out

    def stretched(self, time_factor: float) -> RequestStream:
        """The same workload run slower (or faster): arrivals and the pauses between a
        session's turns both multiplied by `time_factor`."""
        think = None if self.think_s is None else self.think_s * time_factor
        return replace(self.scaled(time_factor), think_s=think)

    def repeated(self, copies: int, period_s: float) -> RequestStream:
        """`copies` of these requests back to back, each `period_s` after the one before,
        in arrival order: each copy's conversations (and their prefix groups) numbered
        apart, the shared prefixes shared by all."""
        if copies <= 1:
            return self
        n = len(self)

        def tile(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else np.tile(column, copies)

        copy = np.repeat(np.arange(copies), n)
        session, group = tile(self.session), tile(self.prefix_group)
        if session is not None and self.session is not None:
            span = int(self.session.max()) + 1
            session = np.where(session >= 0, session + copy * span, session)
            if group is not None:
                group = np.where(group >= SESSION_GROUP_BASE, SESSION_GROUP_BASE + session,
                                 group)
        arrival = np.tile(self.arrival_s, copies) + copy * period_s
        order = np.argsort(arrival, kind="stable")

        def ordered(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else column[order]

        return RequestStream(arrival[order], np.tile(self.task_index, copies)[order],
                             np.tile(self.prompt_tokens, copies)[order],
                             np.tile(self.output_tokens, copies)[order], self.task_names,
                             ordered(tile(self.reasoning_tokens)), ordered(group),
                             ordered(tile(self.prefix_tokens)), ordered(session),
                             ordered(tile(self.turn)), ordered(tile(self.think_s)),
                             self.chat_tasks, self.reasoning_kept_tasks)

    def head(self, n: int) -> RequestStream:
        return self.rows(slice(0, n))

    def rows(self, index: slice | np.ndarray) -> RequestStream:
        """The requests of `index`, times as they are."""
        def cut(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else column[index]

        return RequestStream(self.arrival_s[index], self.task_index[index],
                             self.prompt_tokens[index], self.output_tokens[index],
                             self.task_names, cut(self.reasoning_tokens),
                             cut(self.prefix_group), cut(self.prefix_tokens),
                             cut(self.session), cut(self.turn), cut(self.think_s),
                             self.chat_tasks, self.reasoning_kept_tasks)

    def with_chat_template(self, template: ChatTemplate) -> RequestStream:
        """The requests as a model with this chat template computes them: the template's
        tokens added to the prompts of chat tasks, and to the prefix they share with earlier
        requests (a first turn's inserted system prompt and message opening, a later turn's
        whole previous prompt). A first message with no shared prefix of its own shares
        that opening with every other chat request (`TEMPLATE_GROUP`)."""
        if not any(self.chat_tasks):
            return self
        chat = np.asarray(self.chat_tasks, dtype=bool)[self.task_index]
        turn = self.turn if self.turn is not None else np.zeros(len(self), dtype=np.int64)
        added, shared = template.prompt_tokens(turn), template.shared_tokens(turn)
        n = len(self)
        group = self.prefix_group if self.prefix_group is not None \
            else np.full(n, -1, dtype=np.int64)
        prefix = self.prefix_tokens if self.prefix_tokens is not None \
            else np.zeros(n, dtype=np.int64)
        prefix = prefix + np.where(chat & (group >= 0), shared, 0)
        # a first message without a shared prefix still starts with the template's own
        # text, the same for every chat request: engines cache it like a system prompt
        alone = chat & (group < 0) & (turn == 0) & (shared > 0)
        return replace(self, prompt_tokens=self.prompt_tokens + np.where(chat, added, 0),
                       prefix_group=np.where(alone, TEMPLATE_GROUP, group),
                       prefix_tokens=np.where(alone, shared, prefix))

    def template_head(self, template: ChatTemplate) -> tuple[int, frozenset[int]]:
        """(tokens, groups): the opening a chat template writes in front of every chat
        prompt of a stream it was applied to (with_chat_template), and the prefix groups of
        the chat requests, which all begin with it whatever their group."""
        head = int(template.shared_tokens(np.zeros(1, dtype=np.int64))[0])
        if self.prefix_group is None or not any(self.chat_tasks):
            return head, frozenset()
        chat = np.asarray(self.chat_tasks, dtype=bool)[self.task_index]
        groups = set(self.prefix_group[chat].tolist())
        writes = self.cache_write_groups()
        if writes is not None:
            groups |= set(writes[chat].tolist())
        groups.discard(-1)
        return head, frozenset(groups)

    def conversation_bases(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per request, the prefix group and length its conversation's first turn read (its
        system prompt; -1 and 0 for other requests and first turns), None without sessions
        or prefixes. A turn's history begins with it."""
        if self.session is None or self.turn is None or self.prefix_group is None or \
                self.prefix_tokens is None:
            return None
        n = len(self)
        group = np.full(n, -1, dtype=np.int64)
        tokens = np.zeros(n, dtype=np.int64)
        firsts = np.flatnonzero((self.session >= 0) & (self.turn == 0))
        if len(firsts) == 0:
            return group, tokens
        by_session = np.full(int(self.session.max()) + 1, -1, dtype=np.int64)
        by_session[self.session[firsts]] = firsts
        later = np.flatnonzero((self.session >= 0) & (self.turn > 0))
        first = by_session[self.session[later]]
        found = first >= 0
        rows, first = later[found], first[found]
        group[rows] = self.prefix_group[first]
        tokens[rows] = np.where(self.prefix_group[first] >= 0, self.prefix_tokens[first], 0)
        return group, tokens

    def engine_shared_tokens(self) -> np.ndarray | None:
        """Per request, the prompt tokens it shares with what an engine computed for its
        group's earlier requests: prefix_tokens (a later turn: its history), except where
        the turn before generated hidden reasoning that the history drops (a chat: chat
        templates drop the reasoning of earlier user turns). The engine's sequence holds
        that reasoning between the turn's prompt and its answer, while the history goes on
        with the answer, so the two part after the turn's prompt. An agent loop's history
        keeps the reasoning (`reasoning_kept_tasks`), so it goes on as the engine's sequence
        did. (A fanned-out turn's calls part from each other at their own messages: the
        history of the turn after goes on from its first call's, `side_calls`.)"""
        shared = self.prefix_tokens
        if shared is None or self.session is None or self.turn is None \
                or self.reasoning_tokens is None:
            return shared
        rows = np.flatnonzero(self.session >= 0)
        later = rows[self.turn[rows] > 0]
        if not len(later):
            return shared
        stride = int(self.turn.max()) + 1
        keys = self.session[rows] * stride + self.turn[rows]
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        wanted = self.session[later] * stride + self.turn[later] - 1
        at = np.searchsorted(sorted_keys, wanted)
        found = (at < len(sorted_keys)) & (sorted_keys[np.minimum(at, len(rows) - 1)] == wanted)
        previous = rows[order[at[found]]]           # the turn before (its first call)
        later = later[found]
        hidden = self.reasoning_tokens[previous] > 0
        if any(self.reasoning_kept_tasks):
            kept = np.asarray(self.reasoning_kept_tasks, dtype=bool)[self.task_index[later]]
            hidden &= ~kept
        out = shared.copy()
        out[later[hidden]] = np.minimum(shared[later[hidden]],
                                        self.prompt_tokens[previous[hidden]])
        return out

    def side_calls(self) -> np.ndarray | None:
        """Per request, whether it is a fanned-out turn's call after its first (None: no
        turn fans out). The turn after appends the calls' messages and answers to its
        history in their order, so its prompt goes on from the first call's answer; a
        later call's own message and answer follow there only after the first call's, and
        a cache keyed on the whole prefix before a token (vLLM's chained block hashes, a
        provider's prompt prefix, a llama.cpp slot's common prefix) finds none of what
        such a call computed past its history."""
        if self.session is None or self.turn is None:
            return None
        rows = np.flatnonzero((self.session >= 0) & (self.turn > 0))
        if not len(rows):
            return None
        keys = self.session[rows] * (int(self.turn.max()) + 1) + self.turn[rows]
        _, first = np.unique(keys, return_index=True)     # each turn's first row
        side = np.zeros(len(self), dtype=bool)
        side[rows] = True
        side[rows[first]] = False
        return side if side.any() else None

    def cache_write_groups(self) -> np.ndarray | None:
        """Per request, the prefix group its computed tokens extend for later requests: its
        conversation's (numbered after the shared prefixes) for a turn, else the group it
        reads (None: nothing is shared)."""
        if self.prefix_group is None:
            return None
        if self.session is None:
            return self.prefix_group
        groups: np.ndarray = np.where(self.session >= 0, SESSION_GROUP_BASE + self.session,
                                      self.prefix_group)
        return groups


def _rng(seed: int, stream: int, sub: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stream, sub])


class SharedPrefix(Protocol):
    """What the stream needs of a task's shared prefixes (the scenario's SharedPrefixSpec)."""

    @property
    def groups(self) -> int: ...
    @property
    def tokens(self) -> LengthSpec: ...
    @property
    def popularity(self) -> str: ...
    @property
    def zipf_s(self) -> float: ...


def group_weights(prefix: SharedPrefix) -> np.ndarray:
    """How often each group is picked: evenly, or Zipf (1 / k^s for the k-th group)."""
    if prefix.popularity == "zipf":
        weights = 1.0 / np.arange(1, prefix.groups + 1, dtype=float) ** prefix.zipf_s
    else:
        weights = np.ones(prefix.groups)
    normalised: np.ndarray = weights / weights.sum()
    return normalised


class Session(Protocol):
    """What the stream needs of a task's sessions (the scenario's SessionSpec)."""

    @property
    def turns_min(self) -> int: ...
    @property
    def turns_max(self) -> int: ...
    @property
    def think_time_s(self) -> float: ...
    @property
    def fan_out(self) -> int: ...
    @property
    def kind(self) -> str: ...


class TaskMix(Protocol):
    """What the stream needs of a task (the scenario's TaskSpec)."""

    @property
    def name(self) -> str: ...
    @property
    def weight(self) -> float: ...
    @property
    def prompt_tokens(self) -> LengthSpec: ...
    @property
    def output_tokens(self) -> LengthSpec: ...
    @property
    def reasoning_tokens(self) -> LengthSpec | None: ...
    @property
    def shared_prefix(self) -> SharedPrefix | None: ...
    @property
    def session(self) -> Session | None: ...
    @property
    def api(self) -> str | None: ...


class Workload(Protocol):
    """What the stream needs of a scenario: its seed, duration, traffic and tasks."""

    @property
    def seed(self) -> int: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def traffic(self) -> TrafficSpec: ...
    @property
    def tasks(self) -> Sequence[TaskMix]: ...


def build_request_stream(scenario: Workload, seed: int | None = None) -> RequestStream:
    """Generate (or replay) the scenario's requests. Same scenario and seed, same stream."""
    seed = scenario.seed if seed is None else seed
    names = tuple(task.name for task in scenario.tasks)
    traffic = scenario.traffic
    arrivals = traffic.arrival_times_s(_rng(seed, ARRIVALS_STREAM), scenario.duration_s)
    n = len(arrivals)
    if isinstance(traffic, TraceTraffic):
        columns = traffic.columns()
        keep = columns["timestamp"] * traffic.time_scale < scenario.duration_s
        lookup = {name: i for i, name in enumerate(names)}
        task_index = np.array([lookup.get(str(t), 0) for t in columns["task"][keep]],
                              dtype=np.int64)
        return _trace_stream(arrivals, task_index, {k: v[keep] for k, v in columns.items()},
                             names, traffic.time_scale)
    weights = np.array([task.weight for task in scenario.tasks], dtype=float)
    task_index = _rng(seed, TASKS_STREAM).choice(len(names), size=n, p=weights / weights.sum())
    prompt = np.empty(n, dtype=np.int64)
    output = np.empty(n, dtype=np.int64)
    reasoning = None
    for i, task in enumerate(scenario.tasks):
        mask = task_index == i
        count = int(mask.sum())
        prompt[mask] = task.prompt_tokens.sample(_rng(seed, LENGTHS_STREAM, 2 * i), count)
        output[mask] = task.output_tokens.sample(_rng(seed, LENGTHS_STREAM, 2 * i + 1), count)
        if task.reasoning_tokens is not None:
            # hidden thinking before the visible answer: generated (and billed) like it
            reasoning = np.zeros(n, dtype=np.int64) if reasoning is None else reasoning
            reasoning[mask] = task.reasoning_tokens.sample(_rng(seed, REASONING_STREAM, i),
                                                           count)
    if reasoning is not None:
        output = output + reasoning
    group, prefix_len = _prefixes(scenario.tasks, task_index, seed)
    if prefix_len is not None:
        prompt = prompt + prefix_len
    stream = RequestStream(arrivals, task_index.astype(np.int64), prompt, output, names,
                           reasoning, group, prefix_len,
                           chat_tasks=tuple(task.api == "chat" for task in scenario.tasks))
    return _with_sessions(stream, scenario.tasks, seed, scenario.duration_s)


def _later_turns(stream: RequestStream, visible: np.ndarray, i: int, task: TaskMix, *,
                 spec: Session, seed: int) -> tuple[np.ndarray, ...]:
    """Task i's later turns, `fan_out` requests each: (first turn's row, turn number, new
    message, output, hidden reasoning, history, place in the stream, pause before its
    turn) per request."""
    rows = np.flatnonzero(stream.task_index == i)
    rng = _rng(seed, SESSION_STREAM, i)
    turns = rng.integers(spec.turns_min, spec.turns_max + 1, size=len(rows))
    extra = int((turns - 1).sum())
    fan = spec.fan_out
    parent = np.repeat(rows, turns - 1)
    turn = (np.concatenate([np.arange(1, t) for t in turns]) if extra
            else np.zeros(0, dtype=np.int64))
    # the turns of one session in order: parent rows ascend, turns ascend within each
    message = task.prompt_tokens.sample(_rng(seed, SESSION_STREAM, 100 + 3 * i),
                                        extra * fan).reshape(extra, fan)
    answer = task.output_tokens.sample(_rng(seed, SESSION_STREAM, 101 + 3 * i),
                                       extra * fan).reshape(extra, fan)
    hidden = (task.reasoning_tokens.sample(_rng(seed, SESSION_STREAM, 102 + 3 * i), extra * fan)
              if task.reasoning_tokens is not None
              else np.zeros(extra * fan, dtype=np.int64)).reshape(extra, fan)
    pause = (rng.exponential(spec.think_time_s, size=extra) if spec.think_time_s > 0
             else np.zeros(extra))
    if extra == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, empty, empty, np.zeros(0), np.zeros(0)
    first_of = np.r_[True, parent[1:] != parent[:-1]]

    def within(values: np.ndarray) -> np.ndarray:
        """Cumulative sum restarting at each session's first later turn."""
        total = np.cumsum(values)
        starts = np.flatnonzero(first_of)
        offset = np.repeat(total[starts] - values[starts], np.diff(np.r_[starts, len(values)]))
        result: np.ndarray = total - offset
        return result

    # history before turn k (k >= 1) = the first prompt and its answer, then every earlier
    # later turn's messages and answers (all its branches); an agent loop's answers keep
    # their hidden reasoning (one user request's tool-call chain), a chat's do not
    kept = spec.kind == "agent"
    added = message.sum(axis=1) + answer.sum(axis=1) + (hidden.sum(axis=1) if kept else 0)
    first = stream.output_tokens[parent] if kept else visible[parent]
    history = stream.prompt_tokens[parent] + first + within(added) - added
    arrival = stream.arrival_s[parent] + within(pause)
    return (np.repeat(parent, fan), np.repeat(turn, fan), message.ravel(),
            (answer + hidden).ravel(), hidden.ravel(), np.repeat(history, fan),
            np.repeat(arrival, fan), np.repeat(pause, fan))


def _trace_stream(arrivals: np.ndarray, task_index: np.ndarray,
                  columns: dict[str, np.ndarray], names: tuple[str, ...],
                  time_scale: float) -> RequestStream:
    """A replayed trace, with its shared prefixes and conversations when it has them."""
    group = columns.get("prefix_group")
    prefix = columns.get("prefix_tokens")
    session = columns.get("session")
    turn, think = columns.get("turn"), columns.get("think_s")
    if session is not None and (session >= 0).any():
        turn = turn if turn is not None else np.zeros(len(arrivals), dtype=np.int64)
        think = (think if think is not None else np.zeros(len(arrivals))) * time_scale
        prefix = prefix if prefix is not None else np.zeros(len(arrivals), dtype=np.int64)
        group = group if group is not None else np.full(len(arrivals), -1, dtype=np.int64)
        # a later turn reads its conversation's history
        group = np.where((session >= 0) & (turn > 0), SESSION_GROUP_BASE + session, group)
    else:
        session = turn = think = None
    if group is not None and not (group >= 0).any():
        group = prefix = None
    return RequestStream(arrivals, task_index, columns["prompt_tokens"],
                         columns["output_tokens"], names, None,
                         group if prefix is not None else None,
                         prefix if group is not None else None, session, turn, think)


def _with_sessions(stream: RequestStream, tasks: Sequence[TaskMix], seed: int,
                   duration_s: float) -> RequestStream:
    """Each request of a session task becomes the first turn of a conversation.

    Turn k > 0 sends the history (turn k-1's prompt and its answer) plus a new message
    drawn from the task's prompt_tokens, and generates a new answer. A chat's history holds
    the visible answers only (chat templates drop the reasoning of earlier user turns); an
    agent loop's keeps each answer's hidden reasoning too: its turns are one user request's
    tool calls, and the engines and APIs keep the reasoning of a tool-call chain in the
    next call's context (harmony's analysis channel until a final answer, Qwen3's template
    after the last user message, Anthropic's thinking blocks returned with tool results,
    OpenAI's Responses API reasoning items). An agent's turn may fan out into `fan_out`
    such requests at once (parallel tool calls), all of which the next turn waits for and
    adds to its history, in their order; it reads the history from the prefix cache
    (the conversation is its prefix group). It follows the previous turn's end after a
    pause drawn from an exponential with mean think_time_s.
    """
    if all(task.session is None for task in tasks):
        return stream
    n = len(stream)
    reasoning = stream.reasoning_tokens
    visible = stream.output_tokens - (reasoning if reasoning is not None else 0)
    parts: list[tuple[np.ndarray, ...]] = []
    for i, task in enumerate(tasks):
        spec = task.session
        if spec is None:
            continue
        parts.append(_later_turns(stream, visible, i, task, spec=spec, seed=seed))
    parent, turn, new_message, new_output, new_hidden, history, arrival, pause = (
        np.concatenate(column) for column in zip(*parts, strict=True))
    session_of_row = np.full(n, -1, dtype=np.int64)
    starters = np.flatnonzero(np.isin(stream.task_index, [
        i for i, task in enumerate(tasks) if task.session is not None]))
    session_of_row[starters] = np.arange(len(starters))
    columns = {
        "arrival_s": (stream.arrival_s, arrival),
        "task_index": (stream.task_index, stream.task_index[parent]),
        "prompt_tokens": (stream.prompt_tokens, history + new_message),
        "output_tokens": (stream.output_tokens, new_output),
        "session": (session_of_row, session_of_row[parent]),
        "turn": (np.zeros(n, dtype=np.int64), turn),
        "think_s": (np.zeros(n), pause),
        # a later turn reads its conversation's group
        "prefix_group": (stream.prefix_group if stream.prefix_group is not None
                         else np.full(n, -1, dtype=np.int64),
                         SESSION_GROUP_BASE + session_of_row[parent]),
        "prefix_tokens": (stream.prefix_tokens if stream.prefix_tokens is not None
                          else np.zeros(n, dtype=np.int64), history),
    }
    if reasoning is not None or new_hidden.any():
        columns["reasoning_tokens"] = (reasoning if reasoning is not None
                                       else np.zeros(n, dtype=np.int64), new_hidden)
    merged = {k: np.concatenate(v) for k, v in columns.items()}
    # turns due after the scenario's end are not sent (as arrivals stop at its duration)
    inside = merged["arrival_s"] < duration_s
    rank = np.flatnonzero(inside)[np.argsort(merged["arrival_s"][inside], kind="stable")]
    out = {k: v[rank] for k, v in merged.items()}
    return RequestStream(out["arrival_s"], out["task_index"], out["prompt_tokens"],
                         out["output_tokens"], stream.task_names, out.get("reasoning_tokens"),
                         out["prefix_group"], out["prefix_tokens"], out["session"],
                         out["turn"], out["think_s"], stream.chat_tasks,
                         tuple(task.session is not None and task.session.kind == "agent"
                               for task in tasks))


def _prefixes(tasks: Sequence[TaskMix], task_index: np.ndarray,
              seed: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per request, its shared prefix group (numbered across tasks; -1: none) and length."""
    if all(task.shared_prefix is None for task in tasks):
        return None, None
    n = len(task_index)
    group = np.full(n, -1, dtype=np.int64)
    length = np.zeros(n, dtype=np.int64)
    first = 0
    for i, task in enumerate(tasks):
        prefix = task.shared_prefix
        if prefix is None:
            continue
        mask = task_index == i
        lengths = prefix.tokens.sample(_rng(seed, PREFIX_STREAM, 2 * i), prefix.groups)
        picked = _rng(seed, PREFIX_STREAM, 2 * i + 1).choice(
            prefix.groups, size=int(mask.sum()), p=group_weights(prefix))
        group[mask] = first + picked
        length[mask] = lengths[picked]
        first += prefix.groups
    return group, length
