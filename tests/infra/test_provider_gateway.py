"""Every catalog provider's plan gives a gateway LiteLLM can start: the provider prefix
LiteLLM knows (Gemini's API is `gemini/`, never `google/`), and Azure OpenAI's endpoint
and deployment name from the stack settings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from llmplan.pipeline import evaluate
from llmplan.provision.gateway_manifests import gateway_endpoints, gateway_manifests
from llmplan.provision.router_config import LITELLM_PROVIDER, router_config
from llmplan.provision.stack import WrittenStack, write_stack
from llmplan.scenario import load_scenario_text

SCENARIO = """
name: providers
seed: 3
duration: 20
traffic: {{kind: poisson, rate_per_s: 0.5}}
tasks:
  - {{name: chat, prompt_tokens: {{kind: fixed, tokens: 300}},
     output_tokens: {{kind: fixed, tokens: 20}}}}
slo: {{ttft_ms: 60000, tpot_ms: 2000}}
deployments:
  api: {{kind: cloud, model: {model}}}
"""


def _stack(folder: Path, model: str, settings: dict[str, object] | None = None
           ) -> WrittenStack:
    loaded = load_scenario_text(textwrap.dedent(SCENARIO.format(model=model)), base_dir=ROOT)
    return write_stack(folder / "Pulumi.api.yaml", loaded, evaluate(loaded), "api",
                       settings or {})


def _cloud_params(stack: WrittenStack) -> dict[str, object]:
    config = router_config(stack.config, gateway_endpoints(stack.config))
    return config["model_list"][0]["litellm_params"]


def _gateway_env(stack: WrittenStack) -> dict[str, object]:
    deployment = next(m for m in gateway_manifests(stack.config) if m["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize(("model", "prefix"), [
    ("gemini-3.8-flash", "gemini/"), ("claude-haiku-4.5", "anthropic/"),
    ("gpt-6-luna", "openai/")])
def test_each_provider_gets_the_prefix_litellm_knows(tmp_path: Path, model: str,
                                                     prefix: str) -> None:
    params = _cloud_params(_stack(tmp_path, model))
    assert str(params["model"]).startswith(prefix)
    assert params["api_key"] == "os.environ/CLOUD_API_KEY"


def test_litellm_routes_every_prefix_the_gateway_writes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM's own provider parser takes each prefix (the pinned version's: a provider it
    does not know raises "LLM Provider NOT provided")."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")   # no fetch at import
    from litellm import get_llm_provider

    for prefix in LITELLM_PROVIDER.values():
        model, provider, _, _ = get_llm_provider(f"{prefix}/some-model")
        assert provider == prefix and model == "some-model"


def test_azure_gets_its_endpoint_and_deployment_name(tmp_path: Path) -> None:
    bare = _stack(tmp_path, "gpt-5.1-azure")
    # no endpoint yet: the stack says what to set rather than deploying a gateway that
    # calls nowhere
    assert any("azureApiBase" in note for note in bare.notes)
    written = _stack(tmp_path, "gpt-5.1-azure",
                     {"azure_api_base": "https://contoso.openai.azure.com",
                      "azure_deployment": "gpt51-prod"})
    assert not any("azureApiBase" in note for note in written.notes)
    params = _cloud_params(written)
    assert params["model"] == "azure/gpt51-prod"
    assert params["api_base"] == "os.environ/AZURE_API_BASE"
    assert _gateway_env(written)["AZURE_API_BASE"] == "https://contoso.openai.azure.com"
    # the settings are kept in the stack file, under Pulumi's camelCase names
    values = yaml.safe_load(written.path.read_text(encoding="utf-8"))["config"]
    assert values["llm-deploy-planner:azureApiBase"] == "https://contoso.openai.azure.com"
    assert values["llm-deploy-planner:azureDeployment"] == "gpt51-prod"
