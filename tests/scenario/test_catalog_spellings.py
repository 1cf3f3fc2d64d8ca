"""A GPU or model written as users write it (another case, spaces or underscores for the
hyphens) is the catalog entry it spells: the scenario loads, and everything after the loader
names it by the catalog's id."""

from __future__ import annotations

import pytest

from llmplan.api import simulate_only
from llmplan.errors import ScenarioError
from llmplan.scenario import load_scenario_text
from llmplan.scenario.loader import _catalog_id

SCENARIO = """
name: spellings
seed: 2
duration: 30s
traffic: {{kind: poisson, rate_per_s: 0.5}}
tasks:
  - name: chat
    prompt_tokens: {{kind: fixed, tokens: 300}}
    output_tokens: {{kind: fixed, tokens: 30}}
deployments:
  a: {{gpu: {gpu}, model: {model}}}
"""


@pytest.mark.parametrize(("gpu", "model", "gpu_id", "model_id"), [
    ("RTX PRO 6000", "gpt-oss-120B", "RTX-PRO-6000", "gpt-oss-120b"),
    ("rtx_pro_6000", "qwen3-8b", "RTX-PRO-6000", "Qwen3-8B"),
    ("h200", "Gemma 3 27B", "H200", "Gemma-3-27B"),
    ("mi300x", "qwen3-30b-a3b", "MI300X", "Qwen3-30B-A3B"),
    ("b200", "llama_3.3_70b", "B200", "Llama-3.3-70B")])
def test_a_spelling_of_a_catalog_id_is_that_entry(gpu: str, model: str, gpu_id: str,
                                                  model_id: str) -> None:
    loaded = load_scenario_text(SCENARIO.format(gpu=gpu, model=model))
    dep = loaded.scenario.deployments["a"]
    assert (dep.gpu, dep.model) == (gpu_id, model_id)


def test_the_results_name_the_catalog_id() -> None:
    result = simulate_only(load_scenario_text(SCENARIO.format(gpu="h200", model="qwen3-8b")))
    local = result.deployments["a"].local
    assert local is not None and (local.gpu, local.model) == ("H200", "Qwen3-8B")


@pytest.mark.parametrize(("gpu", "expected"), [
    ("H100", "did you mean 'H100-SXM' or 'H100-PCIe'?"),   # a family, not one id
    ("H100-SMX", "did you mean 'H100-SXM'?")])                   # a typo, not a spelling
def test_what_spells_no_one_id_is_still_refused(gpu: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario_text(SCENARIO.format(gpu=gpu, model="Qwen3-8B"))
    assert f"deployments.a.gpu: unknown GPU '{gpu}'" in str(err.value)
    assert expected in str(err.value)


def test_an_id_is_taken_as_written_and_two_matching_spellings_as_neither() -> None:
    assert _catalog_id("H200", ["H200", "h-200"]) == "H200"
    assert _catalog_id("h200", ["H200", "h-200"]) == "h200"
    assert _catalog_id("Qwen3-0.6B", ["Qwen3-06B"]) == "Qwen3-0.6B"   # a dot is no separator
