"""A deployment simulated with calibrated step times is provisioned with its calibration
in the stack file (`pulumi up` runs where the calibration file is not), and one measured
on a llama.cpp server is refused: the stack serves vLLM, whose steps are not those."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmplan.errors import InputError
from llmplan.pipeline import evaluate
from llmplan.provision.stack import replay_scenario, write_stack
from llmplan.provision.stack_config import read_stack_file
from llmplan.scenario import load_scenario

SCENARIO = """
name: calibrated
seed: 3
duration: 60
traffic: {kind: poisson, rate_per_s: 0.3}
tasks:
  - {name: chat, prompt_tokens: {kind: fixed, tokens: 800},
     output_tokens: {kind: fixed, tokens: 150}}
slo: {ttft_ms: 10000, tpot_ms: 300, min_goodput_fraction: 0.8}
deployments:
  measured:
    gpu: L40S
    model: Llama-3.1-8B
    step_time: {kind: calibrated, file: calibration.yaml}
"""

CALIBRATION = """
source: SERVER on an L40S
server: SERVER_FIELDS
step_time: {kind: linear, fixed_ms: 12.0, per_prefill_token_us: 150.0,
            per_decode_seq_us: 900.0, per_kv_token_ns: 20.0}
engine: {max_num_seqs: 4, max_num_batched_tokens: 2048}
client_overhead_ms: 3.0
fit: {steps: 500, cold_starts: 2, r2: 0.97, rmse_ms: 1.5, median_abs_error_pct: 4.0,
      requests: 200}
"""


def _scenario(folder: Path, server: str, fields: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "calibration.yaml").write_text(
        CALIBRATION.replace("SERVER_FIELDS", fields).replace("SERVER", server),
        encoding="utf-8")
    path = folder / "scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


def test_the_stack_carries_the_calibration_it_was_simulated_with(tmp_path: Path) -> None:
    path = _scenario(tmp_path / "scenario", "vllm 0.27.1", "{slots: 4}")
    loaded = load_scenario(path)
    result = evaluate(loaded)
    stack = tmp_path / "project" / "Pulumi.cal.yaml"
    write_stack(stack, loaded, result, "measured", {})
    (tmp_path / "scenario" / "calibration.yaml").unlink()     # pulumi up runs elsewhere
    config, _ = read_stack_file(stack)
    step = config.plan.chosen.step_time      # type: ignore[union-attr]
    assert step.kind == "calibrated" and step.calibration is not None
    assert step.calibration.step_time.fixed_ms == 12.0      # type: ignore[union-attr]
    replayed = evaluate(replay_scenario(loaded, config.plan))
    assert replayed.deployments["measured"].model_dump_json() == \
        result.deployments["measured"].model_dump_json()


@pytest.mark.parametrize("fields", ["{slots: 4, n_ctx_per_slot: 8192, build: b5000}",
                                    "{slots: 4, model_file: llama-3.1-8b-q8_0.gguf}"])
def test_step_times_measured_on_llama_cpp_are_not_provisioned_as_vllm(
        tmp_path: Path, fields: str) -> None:
    path = _scenario(tmp_path, "llama.cpp b5000", fields)
    loaded = load_scenario(path)
    result = evaluate(loaded)
    with pytest.raises(InputError, match=r"measured on a llama\.cpp server.*serves vLLM"):
        write_stack(tmp_path / "Pulumi.cal.yaml", loaded, result, "measured", {})


@pytest.mark.parametrize(("engine", "words"), [
    ("ollama", "measured on ollama"),
    ("openai", "an OpenAI-compatible server of an engine not recorded")])
def test_step_times_measured_on_another_engine_are_not_provisioned_as_vllm(
        tmp_path: Path, engine: str, words: str) -> None:
    """SGLang, Ollama or an unnamed OpenAI-compatible server: the calibration records the
    engine it measured (`server.engine`), and only vLLM's steps are built as vLLM."""
    path = _scenario(tmp_path, "a server", f"{{slots: 4, engine: {engine}}}")
    loaded = load_scenario(path)
    result = evaluate(loaded)
    with pytest.raises(InputError, match=rf"{words}.*serves vLLM"):
        write_stack(tmp_path / "Pulumi.cal.yaml", loaded, result, "measured", {})
    vllm = _scenario(tmp_path / "vllm", "vllm 0.27.1", "{slots: 4, engine: vllm}")
    loaded = load_scenario(vllm)
    write_stack(tmp_path / "Pulumi.v.yaml", loaded, evaluate(loaded), "measured", {})
