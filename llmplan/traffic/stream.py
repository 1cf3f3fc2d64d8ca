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

    def __len__(self) -> int:
        return len(self.arrival_s)

    def scaled(self, time_factor: float) -> RequestStream:
        """The same requests with every arrival time multiplied by `time_factor`."""
        return replace(self, arrival_s=self.arrival_s * time_factor)

    def head(self, n: int) -> RequestStream:
        return self.rows(slice(0, n))

    def rows(self, index: slice) -> RequestStream:
        """The requests of `index`, times as they are."""
        def cut(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else column[index]

        return RequestStream(self.arrival_s[index], self.task_index[index],
                             self.prompt_tokens[index], self.output_tokens[index],
                             self.task_names, cut(self.reasoning_tokens),
                             cut(self.prefix_group), cut(self.prefix_tokens))


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
        return RequestStream(arrivals, task_index, columns["prompt_tokens"][keep],
                             columns["output_tokens"][keep], names)
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
    return RequestStream(arrivals, task_index.astype(np.int64), prompt, output, names,
                         reasoning, group, prefix_len)


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
