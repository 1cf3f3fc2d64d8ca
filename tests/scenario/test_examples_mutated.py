"""Every bundled example, mutated one field at a time from a fixed list (a number made huge,
zero, negative, given with a suffix or wrapped in a list; a text made a number or empty; a key
removed or misspelt): each either loads and draws a request stream a simulation can take,
or is a ScenarioError whose every problem names the file, a field and what is wrong.

Deterministic and quick (load and draw only); `tests/scenario/test_fuzz.py` mutates at
random, this walks the examples' own fields, where a real user's edit lands.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from llmplan.errors import ScenarioError
from llmplan.scenario import load_scenario_text
from llmplan.traffic import build_request_stream
from llmplan.traffic.stream import MAX_SIMULATED_REQUESTS

EXAMPLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "examples").glob("*.yaml")
                  if p.stem != "targets")     # targets.yaml is load-test endpoints, no scenario
#: what replaces each number: huge, zero, negative, with a suffix, as a list (other shapes
#: are test_fuzz.py's)
NUMBERS: tuple[Callable[[Any], Any], ...] = (
    lambda _: 10**12, lambda _: 0, lambda _: -1, lambda v: f"{v}k", lambda v: [v])
#: what replaces each text: a number, empty
TEXTS: tuple[Callable[[Any], Any], ...] = (lambda _: 1, lambda _: "")
Path_ = tuple[str | int, ...]
#: the sections a request stream is drawn from (a deployment's change cannot alter it)
STREAM_INPUTS = frozenset({"seed", "duration", "traffic", "tasks"})


def _leaves(node: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, (*path, i))
    else:
        yield path, node


def _keys(node: Any, path: Path_ = ()) -> Iterator[Path_]:
    """The paths of mapping keys, down to a task's or a deployment's own settings."""
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(key, str):
            yield (*path, key)
        if len(path) < 2:
            yield from _keys(value, (*path, key))


def _set(data: Any, path: Path_, value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def _rename(data: Any, path: Path_, new: str | None) -> None:
    for part in path[:-1]:
        data = data[part]
    value = data.pop(path[-1])
    if new is not None:
        data[new] = value


def mutations(data: dict[str, Any]) -> Iterator[tuple[Path_, str, dict[str, Any]]]:
    """(where, what was changed, the changed scenario), in a fixed order."""
    for path, value in _leaves(data):
        if isinstance(value, bool) or value is None:
            continue
        for change in NUMBERS if isinstance(value, int | float) else TEXTS:
            changed = copy.deepcopy(data)
            _set(changed, path, change(value))
            yield path, f"{path}={change(value)!r}", changed
    for path in _keys(data):
        for new in (None, f"{path[-1]}s"):       # removed; misspelt
            changed = copy.deepcopy(data)
            _rename(changed, path, new)
            yield path, f"{path}->{new}", changed


def _check_problems(error: ScenarioError, file: str) -> None:
    assert error.problems
    for problem in error.problems:
        assert problem.file == file
        assert problem.message and "\n" not in problem.message
        # a field, or the whole file when that is what is wrong
        assert problem.path or problem.line == 1 or problem.message.startswith("not valid")


def _check_stream(scenario: Any) -> None:
    stream = build_request_stream(scenario)
    # none at all is the simulation's own clear error (sim/run.py): "draws no request"
    assert len(stream) <= MAX_SIMULATED_REQUESTS
    assert np.all(np.isfinite(stream.arrival_s)) and np.all(stream.arrival_s >= 0)
    assert np.all(np.diff(stream.arrival_s) >= 0)
    assert np.all(stream.prompt_tokens > 0) and np.all(stream.output_tokens > 0)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_each_mutation_loads_and_draws_or_names_what_is_wrong(example: Path) -> None:
    base = yaml.safe_load(example.read_text(encoding="utf-8"))
    file = f"{example.stem}-mutated.yaml"
    for path, label, changed in mutations(base):
        text = yaml.safe_dump(changed, sort_keys=False)
        try:
            loaded = load_scenario_text(text, file=file, base_dir=example.parent)
        except ScenarioError as error:
            _check_problems(error, file)
            continue
        if path[0] not in STREAM_INPUTS:
            continue
        try:
            _check_stream(loaded.scenario)
        except Exception as error:      # which mutation, in the failure's message
            raise AssertionError(f"{example.stem} {label}: {error!r}") from error
