"""A deployment that cannot be built as written (the model does not fit the GPU at its tp, or
vLLM refuses the tp) is an answer, not a typo: it is listed with why and what would fit, next
to the candidates that were simulated, instead of stopping the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.errors import ScenarioError
from llmplan.results import Result
from llmplan.scenario import load_scenario_text

SCENARIO = """
name: unbuildable
seed: 3
duration: 2m
traffic: {kind: poisson, rate_per_s: 2}
tasks:
  - name: chat
    prompt_tokens: {kind: fixed, tokens: 400}
    output_tokens: {kind: fixed, tokens: 100}
slo: {ttft_ms: 2000, tpot_ms: 100}
deployments:
  small: {gpu: L4, model: Llama-3.1-8B}
  # 70.55e9 parameters x 2 bytes = 131 GiB of weights: not on one L4 (20.2 GiB usable)
  big: {gpu: L4, model: Llama-3.1-70B}
  # 32 attention heads do not split over 3 GPUs
  odd: {gpu: L4, model: Llama-3.1-8B, tp: 3}
  api: {kind: cloud, model: gpt-4o-mini}
  mixed: {kind: hybrid, local: big, cloud: api}
"""


def test_the_scenario_loads_without_what_cannot_be_built() -> None:
    loaded = load_scenario_text(SCENARIO)
    assert set(loaded.scenario.deployments) == {"small", "api"}
    assert set(loaded.unbuildable) == {"big", "odd", "mixed"}
    big = loaded.unbuildable["big"]
    assert big.startswith("deployments.big: ")
    assert "does not fit on L4" in big and "tp >= 8" in big
    assert loaded.unbuildable["odd"].startswith("deployments.odd.tp: ")
    assert "expected tp one of 1, 2, 4, 8" in loaded.unbuildable["odd"]
    assert "its local part 'big' cannot be built" in loaded.unbuildable["mixed"]


def test_nothing_buildable_is_still_an_error() -> None:
    text = SCENARIO.replace("  small: {gpu: L4, model: Llama-3.1-8B}\n", "").replace(
        "  api: {kind: cloud, model: gpt-4o-mini}\n", "").replace(
        "  mixed: {kind: hybrid, local: big, cloud: api}\n", "")
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text)
    paths = sorted(p.path for p in info.value.problems)
    assert paths == ["deployments.big", "deployments.odd.tp"]


def test_simulate_lists_them_in_the_result_the_report_and_the_terminal(
        tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    run = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out), "--no-plan",
                                   "--quiet"])
    assert run.exit_code == 0, run.output
    result = Result.model_validate_json((out / "result.json").read_bytes())
    assert set(result.deployments) == {"small", "api"}
    assert result.unbuildable is not None and set(result.unbuildable) == {"big", "mixed", "odd"}
    assert result.recommendation.deployment in {"small", "api"}
    assert "big cannot be built" in result.recommendation.reason
    text = " ".join(run.output.split())
    assert "excluded big: cannot be built, not simulated: deployments.big:" in text
    assert "excluded odd: cannot be built" in text
    report = (out / "report.html").read_text()
    assert "no: cannot be built: deployments.big" in report
    assert "not simulated" in report
    # a scenario where everything builds writes no such section
    fine = tmp_path / "fine.yaml"
    fine.write_text(SCENARIO.split("  big:", maxsplit=1)[0]
                    + "  api: {kind: cloud, model: gpt-4o-mini}\n")
    run = CliRunner().invoke(app, ["simulate", str(fine), "--out", str(tmp_path / "f"),
                                   "--no-plan", "--quiet"])
    assert run.exit_code == 0, run.output
    assert "unbuildable" not in json.loads((tmp_path / "f" / "result.json").read_text())


def test_asking_to_provision_or_sweep_one_says_why_it_cannot(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    run = CliRunner().invoke(app, ["stack", str(scenario), "--deployment", "big",
                                   "--out", str(tmp_path)])
    assert run.exit_code != 0
    text = " ".join(run.output.split())
    assert "'big' cannot be built as written" in text and "tp >= 8" in text
    assert not list(tmp_path.glob("Pulumi.*.yaml"))
    run = CliRunner().invoke(app, ["sweep", str(scenario), "--base", "odd",
                                   "--out", str(tmp_path / "sw")])
    assert run.exit_code != 0
    assert "--base odd cannot be built as written" in " ".join(run.output.split())


def test_mtp_speculation_on_a_model_without_mtp_layers_is_not_simulated() -> None:
    # MTP drafts with the model's own prediction layers: Llama-3.1-8B has none, so the
    # speed-up it would simulate cannot be had; DeepSeek-style models (mtp_layers > 0) can
    scenario = SCENARIO.replace(
        "  odd: {gpu: L4, model: Llama-3.1-8B, tp: 3}\n",
        "  odd: {gpu: L4, model: Llama-3.1-8B, tp: 3}\n"
        "  mtp: {gpu: L4, model: Llama-3.1-8B, engine: {speculative: {method: mtp, "
        "num_speculative_tokens: 1, mean_acceptance_length: 1.8}}}\n"
        "  eagle: {gpu: L4, model: Llama-3.1-8B, engine: {speculative: {method: ngram, "
        "num_speculative_tokens: 2, mean_acceptance_length: 1.5}}}\n")
    loaded = load_scenario_text(scenario)
    assert "mtp" not in loaded.scenario.deployments and "eagle" in loaded.scenario.deployments
    why = loaded.unbuildable["mtp"]
    assert why.startswith("deployments.mtp.engine.speculative.method: ")
    assert "ships none (catalog mtp_layers: 0)" in why


PROVISIONABLE = """
name: cheapest-cannot-be-built
seed: 1
duration: 30m
traffic: {kind: constant, rate_per_s: 0.02}
tasks:
  - name: qa
    prompt_tokens: {kind: fixed, tokens: 2000}
    output_tokens: {kind: fixed, tokens: 256}
slo: {ttft_ms: 2000, tpot_ms: 50}
catalog:
  models:
    qwen14:
      hf_id: Qwen/Qwen2.5-14B-Instruct
      layers: 48
      hidden_size: 5120
      attention_heads: 40
      kv_heads: 8
      head_dim: 128
      intermediate_size: 13824
      vocab_size: 152064
      params_b: 14.77
      active_params_b: 14.77
      max_context_tokens: 32768
deployments:
  h100-fp8: {gpu: H100-SXM, model: qwen14, engine: {weights_dtype: fp8}}
  # cheaper, but no int4 checkpoint of this model is known: vLLM would serve bf16
  l40s-int4: {gpu: L40S, model: qwen14, engine: {weights_dtype: int4}}
"""


def test_the_recommendation_is_a_candidate_the_stack_can_build() -> None:
    from llmplan.pipeline import evaluate

    result = evaluate(load_scenario_text(PROVISIONABLE))
    int4, fp8 = result.deployments["l40s-int4"], result.deployments["h100-fp8"]
    assert int4.feasible and fp8.feasible
    assert (int4.cost.usd_per_useful_result or 0) < (fp8.cost.usd_per_useful_result or 0)
    rec = result.recommendation
    assert rec.deployment == "h100-fp8" and rec.ranking[:2] == ["h100-fp8", "l40s-int4"]
    assert "l40s-int4 would cost $" in rec.reason and "no published int4 checkpoint" in rec.reason
    # with nothing buildable left, the cheapest is still named (and the note says why)
    only = evaluate(load_scenario_text(PROVISIONABLE.replace(
        "  h100-fp8: {gpu: H100-SXM, model: qwen14, engine: {weights_dtype: fp8}}\n", "")))
    assert only.recommendation.deployment == "l40s-int4"
    # ... and the recommendation itself says it cannot be built as simulated, and why
    assert "but deployment 'l40s-int4' cannot be provisioned as simulated" in \
        only.recommendation.reason and "no feasible candidate can be" in only.recommendation.reason
    assert "no published int4 checkpoint" in only.recommendation.reason
    assert "cannot be provisioned" not in rec.reason.split("; l40s-int4 would cost")[0]


def test_mxfp4_weights_on_a_dense_model_cannot_be_built_on_nvidia() -> None:
    # vLLM's mxfp4 method quantises a mixture of experts' experts; its linear layers fall
    # back to unquantized ones, so a dense model in MXFP4 is not what vLLM would serve
    text = SCENARIO.replace("  odd: {gpu: L4, model: Llama-3.1-8B, tp: 3}\n",
                            "  odd: {gpu: L4, model: Llama-3.1-8B, engine: "
                            "{weights_dtype: mxfp4}}\n"
                            "  moe: {gpu: H100-SXM, model: gpt-oss-20b, engine: "
                            "{weights_dtype: mxfp4}}\n")
    loaded = load_scenario_text(text)
    assert loaded.unbuildable["odd"].startswith("deployments.odd.engine.weights_dtype: ")
    assert "Llama-3.1-8B is dense" in loaded.unbuildable["odd"]
    assert "nvfp4 or int4" in loaded.unbuildable["odd"]
    assert "moe" in loaded.scenario.deployments        # gpt-oss ships its experts in MXFP4
