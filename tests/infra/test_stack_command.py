"""`llmplan stack`: the simulated deployment becomes stack config the program deploys as is."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml
from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.provision.config import from_config
from llmplan.provision.manifests import gateway_manifests, serving_manifests

SCENARIO = """
duration: 60
traffic: {kind: poisson, rate_per_s: 1}
tasks: [{name: t, prompt_tokens: {kind: fixed, tokens: 100},
         output_tokens: {kind: fixed, tokens: 10}}]
deployments:
  big:
    gpu: A100-80GB
    model: Llama-3.1-70B
    replicas: 2
    tp: 4
    engine: {max_num_seqs: 64, max_num_batched_tokens: 2048, gpu_memory_utilization: 0.85}
"""


def test_stack_file_round_trips_into_valid_manifests(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    result = CliRunner().invoke(app, ["stack", str(scenario), "--deployment", "big",
                                      "--stack", "prod", "--cloud-model", "openai/gpt-4o",
                                      "--cloud-key-env", "OPENAI_API_KEY",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "Pulumi.prod.yaml").read_text()
    assert "pulumi config set --secret cloudApiKey" in text
    config = yaml.safe_load(text)["config"]
    values = {k.split(":", 1)[1]: v for k, v in config.items()}
    settings = from_config(values)
    assert settings.kind == "hybrid" and settings.serving is not None
    serving = settings.serving
    assert (serving.replicas, serving.tp, serving.gpu) == (2, 4, "A100-80GB")
    assert serving.model_id == "meta-llama/Llama-3.1-70B-Instruct"
    assert (serving.max_num_seqs, serving.max_num_batched_tokens) == (64, 2048)
    assert serving.gpu_memory_utilization == 0.85
    assert settings.gateway is not None
    for manifest in serving_manifests(serving, "llm") + gateway_manifests(settings.gateway, "llm"):
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


def test_unknown_deployment_is_a_clear_error(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    result = CliRunner().invoke(app, ["stack", str(scenario), "--deployment", "nope"])
    assert result.exit_code == 2
    assert "--deployment must name a local deployment" in result.output and "big" in result.output
