"""The Python API, used only through `import llmplan`, and the README's example running."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from helpers import ROOT

import llmplan

SCENARIO = {"duration": "10m", "seed": 3, "traffic": {"kind": "poisson", "rate_per_s": 4},
            "tasks": [{"name": "chat", "prompt_tokens": {"kind": "fixed", "tokens": 500},
                       "output_tokens": {"kind": "fixed", "tokens": 100}}],
            "deployments": {"h100": {"gpu": "H100-SXM", "model": "Llama-3.1-8B"},
                            "api": {"kind": "cloud", "model": "gpt-4o-mini"}}}


def test_simulate_a_mapping_and_decide_it() -> None:
    result = llmplan.simulate(SCENARIO)
    assert result.scenario.requests > 1000 and set(result.deployments) == {"h100", "api"}
    h100 = result.deployments["h100"]
    assert h100.local is not None and h100.local.engine.kv_cache_tokens > 100_000
    assert h100.slo.goodput_fraction == 1.0      # no SLO given: every finished request
    assert result.recommendation.deployment in {"h100", "api"}
    simulation = llmplan.simulate_only(SCENARIO)
    decided = llmplan.recommend(simulation, SCENARIO)
    assert decided.model_dump_json() == result.model_dump_json()   # same seed, same answer
    other = llmplan.simulate(SCENARIO, seed=4)
    assert other.scenario.seed == 4 and other.deployments["h100"] != h100


def test_bad_input_is_an_input_error_naming_the_field() -> None:
    bad = {**SCENARIO, "deployments": {"x": {"gpu": "H100-SXM", "model": "Llama-9B"}}}
    with pytest.raises(llmplan.errors.InputError, match=r"deployments\.x\.model"):
        llmplan.load_scenario(bad)
    with pytest.raises(AttributeError):
        _ = llmplan.no_such_function   # type: ignore[attr-defined]


def test_the_readme_example_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    done = subprocess.run([sys.executable, "-c", code.group(1)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split()[0] == "hybrid"   # the example's answer
