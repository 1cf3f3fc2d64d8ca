"""A deployment the KV cache cannot serve is refused at the field its message names."""

from __future__ import annotations

import pytest
from helpers import chat_scenario

from llmplan.errors import ScenarioError
from llmplan.scenario import load_scenario_text


@pytest.mark.parametrize(("engine", "field"), [
    ("{max_model_len: 50000}", "deployments.d.engine.max_model_len"),
    ("{kv_dtype: fp8_e5m2, vllm_version: '0.21.0'}", "deployments.d.engine.kv_dtype"),
    # past a cache set by hand (one request of 8,000 tokens in 4,000 tokens' pages)
    ("{kv_cache_tokens: 4000, max_model_len: 8000}", "deployments.d.engine.max_model_len"),
])
def test_a_kv_cache_refusal_points_at_the_setting_it_names(engine: str, field: str) -> None:
    text = chat_scenario("field", f"  d: {{gpu: H100-SXM, model: Qwen3-8B, engine: {engine}}}")
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(text)
    [problem] = caught.value.problems
    assert problem.path == field and problem.line == text.splitlines().index(
        next(line for line in text.splitlines() if line.startswith("  d:"))) + 1
