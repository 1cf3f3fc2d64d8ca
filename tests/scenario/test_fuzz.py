"""Property tests: whatever the input, loading a scenario succeeds or raises ScenarioError
(and reading a trace succeeds or raises InputError).

Any other exception (TypeError, RecursionError, OverflowError, a bare pydantic
ValidationError...) would reach the user as a traceback.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from llmplan.errors import InputError, ScenarioError
from llmplan.scenario import LoadedScenario, load_scenario_text
from llmplan.traffic.trace import read_trace

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

VALID: dict[str, Any] = {
    "name": "fuzz",
    "seed": 3,
    "duration": "30m",
    "traffic": {"kind": "diurnal", "mean_rate_per_s": 4, "peak_to_mean": 2.0,
                "spikes": [{"start_s": 60, "duration_s": 30, "multiplier": 3}]},
    "tasks": [
        {"name": "chat", "weight": 2,
         "prompt_tokens": {"kind": "lognormal", "mean": 800, "p95": 2000},
         "output_tokens": {"kind": "exponential", "mean": 200, "max_tokens": 2000},
         "slo": {"ttft_ms": 800}},
        {"name": "classify", "sensitivity": "restricted",
         "prompt_tokens": {"kind": "uniform", "min_tokens": 100, "max_tokens": 400},
         "output_tokens": {"kind": "fixed", "tokens": 4}},
    ],
    "slo": {"ttft_ms": 1500, "tpot_ms": 60, "min_goodput_fraction": 0.9},
    "deployments": {
        "h100": {"kind": "local", "gpu": "H100-SXM", "model": "Llama-3.1-8B", "replicas": 2,
                 "engine": {"max_num_seqs": 128, "max_num_batched_tokens": 4096,
                            "gpu_memory_utilization": 0.85},
                 "step_time": {"kind": "linear", "fixed_ms": 3, "per_prefill_token_us": 40,
                               "per_decode_seq_us": 200, "per_kv_token_ns": 5},
                 "admission": {"queue_limit": 50, "queue_timeout_s": 30}},
        "l4": {"gpu": "big-l4", "model": "Qwen2.5-7B", "tp": 2,
               "step_time": {"kind": "roofline", "compute_efficiency": 0.4}},
    },
    "constraints": {"restricted_stays_local": True, "max_monthly_usd": 20000},
    "simulation": {"mode": "fast", "drain_s": 120},
    "catalog": {"gpus": {
        "big-l4": {"name": "L4 with more memory", "memory_mib": 45000, "marketed_memory_gb": 48,
                   "compute_capability": "8.9", "bf16_dense_tflops": 121,
                   "memory_bandwidth_gb_per_s": 300,
                   "interconnect_gb_per_s": 32, "tdp_w": 72, "purchase_usd": 3000,
                   "rental_usd_per_gpu_hour": 0.8, "reserved_usd_per_gpu_hour": 0.5,
                   "prices_as_of": "2026-11-01"},
        "L4": {"purchase_usd": 2500},
    }},
}


def _line_count(text: str) -> int:
    """Lines as YAML counts them (PyYAML also breaks lines at CR, NEL, LS and PS)."""
    return len(re.split("\r\n|[\r\n\x85\u2028\u2029]", text))


def _load(text: str) -> LoadedScenario | None:
    try:
        return load_scenario_text(text, file="fuzz.yaml")
    except ScenarioError as error:
        assert error.problems, "a ScenarioError must say what is wrong"
        for problem in error.problems:
            assert problem.file == "fuzz.yaml"
            assert problem.line is None or 1 <= problem.line <= _line_count(text)
            assert problem.message
        return None


def _check_loaded(loaded: LoadedScenario) -> None:
    """What a successful load promises the simulator."""
    scenario = loaded.scenario
    assert math.isfinite(scenario.duration_s) and scenario.duration_s > 0
    names = [t.name for t in scenario.tasks]
    assert names and len(names) == len(set(names))
    for task in scenario.tasks:
        assert math.isfinite(task.weight) and task.weight > 0
    assert scenario.deployments
    for dep in scenario.deployments.values():
        assert dep.gpu in loaded.catalog.gpus
        assert dep.model in loaded.catalog.models
    # no infinity or NaN gets through to the simulator, anywhere
    for number in _numbers([scenario.model_dump(), loaded.catalog.model_dump()]):
        assert math.isfinite(number)


def _numbers(node: Any) -> list[float]:
    if isinstance(node, dict):
        return [x for value in node.values() for x in _numbers(value)]
    if isinstance(node, list | tuple):
        return [x for value in node for x in _numbers(value)]
    return [node] if isinstance(node, float) else []


def test_the_base_scenario_loads() -> None:
    loaded = _load(yaml.safe_dump(VALID, sort_keys=False))
    assert loaded is not None
    _check_loaded(loaded)
    assert loaded.catalog.gpus["big-l4"].memory_mib == 45000


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    loaded = _load(text)
    if loaded is not None:
        _check_loaded(loaded)


YAMLISH = st.lists(st.sampled_from([*"ab1.:- \n\t[]{}&*!|>'\"#?,%@`~", "kind", "tasks", "<<",
                                    "!!binary ", "&x ", "*x", "\n  ", "- "]),
                   max_size=60).map("".join)


@FUZZ
@given(YAMLISH)
def test_yaml_punctuation_soup(text: str) -> None:
    loaded = _load(text)
    if loaded is not None:
        _check_loaded(loaded)


SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(-10**30, 10**30)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["1h", "0", "-1", "poisson", "trace", "H100-SXM", "Llama-3.1-70B",
                              "chat", "kind", "", "1e309", ".nan", "[]"]))
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8) | st.sampled_from(["kind", "name", "sources"]),
                      inner, max_size=3),
    max_leaves=8)


# field names that exist somewhere in the schema, so additions also land on real fields
KEYS = st.text(min_size=1, max_size=10) | st.sampled_from(
    ["sources", "kind", "name", "spikes", "engine", "slo", "max_tokens", "tp", "weight",
     "path", "catalog", "gpus", "models", "cloud_models", "memory_mib", "prices_as_of",
     "experts", "sliding_layers", "rate_limit_tiers", "layers", "seed"])


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a nested dict/list, the root included."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def _mutate(data: dict[str, Any], draw: st.DataObject) -> Any:
    """Apply one random change somewhere in `data` (which it may also replace)."""
    path = draw.draw(st.sampled_from(_paths(data)))
    op = draw.draw(st.sampled_from(["delete", "replace", "add_key", "wrap_list", "wrap_dict",
                                    "duplicate_item"]))
    if not path:
        return draw.draw(JSONISH) if op == "replace" else data
    parent, last = _get(data, path[:-1]), path[-1]
    if op == "delete":
        del parent[last]
    elif op == "replace":
        parent[last] = draw.draw(JSONISH)
    elif op == "add_key":
        target = parent[last]
        if isinstance(target, dict):
            target[draw.draw(KEYS)] = draw.draw(JSONISH)
        else:
            parent[last] = {"value": target, draw.draw(st.text(max_size=6)): draw.draw(JSONISH)}
    elif op == "wrap_list":
        parent[last] = [parent[last]]
    elif op == "wrap_dict":
        parent[last] = {draw.draw(st.sampled_from(["kind", "x", str(last)])): parent[last]}
    elif isinstance(parent, list):  # duplicate_item: e.g. two tasks of the same name
        parent.append(copy.deepcopy(parent[last]))
    else:
        parent[f"{last}_copy"] = copy.deepcopy(parent[last])
    return data


@FUZZ
@given(st.data())
def test_mutated_valid_scenario(data: st.DataObject) -> None:
    scenario: Any = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        scenario = _mutate(scenario, data)
    text = yaml.safe_dump(scenario, sort_keys=False, allow_unicode=True)
    loaded = _load(text)
    event("loaded" if loaded is not None else "rejected")
    if loaded is not None:
        _check_loaded(loaded)


_counter = itertools.count()

CSV_CELLS = st.sampled_from(["0", "1", "2.5", "-1", "nan", "inf", "1e400", "", "x", "7",
                             "2024-05-01T12:00:00Z", "2024-13-01", '"', "1,2", " 3 "])
TIMES = st.floats(0, 1e9) | st.sampled_from(["2024-05-01T12:00:00Z", "2024-05-01 13:00:00.5"])
TOKENS = st.integers(1, 10**6)
GOOD_ROWS = st.tuples(TIMES, TOKENS, TOKENS, st.sampled_from(["chat", ""]))
TRACE_ROWS = st.lists(GOOD_ROWS.map(lambda r: ",".join(map(str, r)))
                      | st.lists(CSV_CELLS, min_size=0, max_size=5).map(",".join), max_size=6)
JSON_ROWS = st.lists(
    GOOD_ROWS.map(lambda r: json.dumps(dict(zip(["timestamp", "prompt_tokens", "output_tokens",
                                                 "task"], r, strict=True))))
    | st.dictionaries(st.sampled_from(["timestamp", "prompt_tokens", "output_tokens", "task",
                                       "other"]), JSONISH, max_size=5).map(json.dumps)
    | st.text(max_size=20), max_size=6)


@FUZZ
@given(st.one_of(TRACE_ROWS.map(lambda rows: ("csv", rows)),
                 JSON_ROWS.map(lambda rows: ("jsonl", rows))),
       st.booleans())
def test_any_trace_file_reads_or_raises_input_error(trace: tuple[str, list[str]],
                                                    header: bool) -> None:
    suffix, rows = trace
    if suffix == "csv" and header:
        rows = ["timestamp,prompt_tokens,output_tokens,task", *rows]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"trace{next(_counter)}.{suffix}"  # read_trace caches per path
        path.write_text("\n".join(rows), encoding="utf-8")
        try:
            columns = read_trace(path)
        except InputError as error:
            assert all(p.file == str(path.resolve()) for p in error.problems)
            event("rejected")
            return
    event("read")
    times = columns["timestamp"]
    assert len(times) >= 1 and times[0] == 0.0
    assert np.all(np.isfinite(times)) and np.all(np.diff(times) >= 0)
    assert columns["prompt_tokens"].min() >= 1 and columns["output_tokens"].min() >= 1
    assert len(columns["task"]) == len(times) == len(columns["prompt_tokens"])
