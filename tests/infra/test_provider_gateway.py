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
from llmplan.scenario.cloud import HybridDeployment

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


TWO_TASKS = """
name: efforts
seed: 3
duration: 20
traffic: {{kind: poisson, rate_per_s: 0.5}}
tasks:
  - {{name: chat, prompt_tokens: {{kind: fixed, tokens: 300}},
     output_tokens: {{kind: fixed, tokens: 20}}}}
  - {{name: think, prompt_tokens: {{kind: fixed, tokens: 300}},
     output_tokens: {{kind: fixed, tokens: 20}},
     reasoning_tokens: {{kind: fixed, tokens: 500}}}}
slo: {{ttft_ms: 60000, tpot_ms: 2000}}
deployments:
  api: {{kind: cloud, model: {model}}}
"""


@pytest.mark.parametrize(("model", "effort"), [
    ("gpt-5", "minimal"), ("gpt-6.1-sol", "low"), ("gpt-6-luna", "none"),
    ("gemini-3.8-flash", "low"), ("gemini-3.5-flash-lite", "minimal"),
    ("claude-haiku-4.5", None)])
def test_a_plain_task_s_group_sends_the_effort_it_was_simulated_at(
        tmp_path: Path, model: str, effort: str | None) -> None:
    """The plain task was simulated at the model's lowest reasoning_effort (the hidden
    tokens it leaves added: llmplan.sim.engine.unasked_reasoning): its group sends that
    effort with every call, so the API does not think at its own default (GPT-5: medium;
    Gemini 3: high). Claude thinks only when asked: nothing is sent.
    The reasoning task's clients send their own effort: its group sends none."""
    loaded = load_scenario_text(textwrap.dedent(TWO_TASKS.format(model=model)), base_dir=ROOT)
    assert loaded.catalog.cloud_models[model].least_reasoning_effort == effort
    written = write_stack(tmp_path / "Pulumi.api.yaml", loaded, evaluate(loaded), "api", {})
    config = router_config(written.config, gateway_endpoints(written.config))
    groups = {m["model_name"]: m["litellm_params"] for m in config["model_list"]}
    assert groups["chat"].get("reasoning_effort") == effort
    assert "reasoning_effort" not in groups["think"]


@pytest.mark.parametrize("model", ["gpt-5", "o4-mini", "gpt-5.1", "gemini-2.5-pro",
                                   "gemini-2.5-flash", "gemini-3.8-flash",
                                   "gemini-3.5-flash-lite", "gpt-oss-120b-bedrock"])
def test_litellm_takes_the_effort_the_gateway_sends(monkeypatch: pytest.MonkeyPatch,
                                                    model: str) -> None:
    """The pinned LiteLLM maps each model's least_reasoning_effort onto its provider's own
    setting without refusing it (Gemini 2.5: the thinking budget, 0 for "none"; Gemini 3:
    the thinking level)."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")   # no fetch at import
    from litellm import get_optional_params

    from llmplan.catalog import builtin_catalog
    from llmplan.provision.router_config import LITELLM_PROVIDER

    spec = builtin_catalog().cloud_models[model]
    assert spec.least_reasoning_effort is not None
    provider = LITELLM_PROVIDER[spec.provider]
    params = get_optional_params(model=spec.model_id, custom_llm_provider=provider,
                                 reasoning_effort=spec.least_reasoning_effort)
    if provider == "gemini":
        thinking = params["thinkingConfig"]
        if spec.least_reasoning_effort == "none" and "2.5" in model:
            assert thinking["thinkingBudget"] == 0
        else:
            assert thinking.get("thinkingBudget", 1) > 0
    else:   # OpenAI's own parameter, and Bedrock's gpt-oss takes it as is
        assert params["reasoning_effort"] == spec.least_reasoning_effort


@pytest.mark.parametrize("model", ["gemini-3.8-flash", "gemini-3.5-flash-lite", "gpt-5",
                                   "claude-haiku-4.5"])
def test_gemini_s_thoughts_stay_withheld_as_simulated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    """The catalog takes Gemini's API to withhold its thinking (the first token is the
    answer's, after it), as Google does unless asked (includeThoughts). The pinned LiteLLM
    asks whenever it translates a reasoning_effort, the plain group's or a client's, unless
    the proxy's litellm_settings turn its default off (the proxy sets each key on the
    module): with the rendered settings, neither asks for the summaries; a client still can,
    with reasoning_effort {"summary": ...}. Other providers' gateways get no such setting."""
    loaded = load_scenario_text(textwrap.dedent(TWO_TASKS.format(model=model)), base_dir=ROOT)
    spec = loaded.catalog.cloud_models[model]
    written = write_stack(tmp_path / "Pulumi.api.yaml", loaded, evaluate(loaded), "api", {})
    config = router_config(written.config, gateway_endpoints(written.config))
    settings = config["litellm_settings"]
    if spec.provider != "google":
        assert set(settings) == {"callbacks"}
        return
    assert not spec.streams_reasoning
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")   # no fetch at import
    import litellm
    from litellm import get_optional_params

    groups = {m["model_name"]: m["litellm_params"] for m in config["model_list"]}
    plain = groups["chat"]["reasoning_effort"]

    def thinking(effort: object) -> dict[str, object]:
        params = get_optional_params(model=spec.model_id, custom_llm_provider="gemini",
                                     reasoning_effort=effort)
        found: dict[str, object] = params["thinkingConfig"]
        return found

    # LiteLLM's own default: thought summaries asked for with any effort
    assert thinking(plain)["includeThoughts"] is True
    for key, value in settings.items():
        if key != "callbacks":
            monkeypatch.setattr(litellm, key, value)
    assert thinking(plain)["includeThoughts"] is False        # the plain group's effort
    assert thinking("high")["includeThoughts"] is False       # a reasoning task's client's
    assert thinking({"effort": "high", "summary": "auto"})["includeThoughts"] is True


SPILLING = """
name: spill-efforts
seed: 1
duration: 30
traffic: {{kind: poisson, rate_per_s: 0.5}}
tasks:
  - {{name: chat, weight: 0.6, prompt_tokens: {{kind: fixed, tokens: 40}},
     output_tokens: {{kind: fixed, tokens: 8}}}}
  - {{name: think, weight: 0.4, prompt_tokens: {{kind: fixed, tokens: 40}},
     output_tokens: {{kind: fixed, tokens: 8}}, reasoning_tokens: {{kind: fixed, tokens: 64}}}}
slo: {{ttft_ms: 5000}}
deployments:
  fleet: {{gpu: L4, model: SmolLM2-135M}}
  api: {{kind: cloud, model: {model}}}
  hybrid: {{kind: hybrid, local: fleet, cloud: api, spillover_wait_s: 0.5}}
"""


@pytest.mark.parametrize("model", ["gpt-5", "gpt-6.1-sol", "gpt-6-luna", "claude-haiku-4.5"])
def test_each_spilled_call_goes_at_the_effort_it_was_simulated_at(tmp_path: Path,
                                                                  model: str) -> None:
    """A hybrid whose plain and reasoning tasks both spill: the simulation gave the plain
    task's API calls the hidden tokens of the model's lowest effort and the reasoning task's
    none (`hybrid_api_requests`), so the plain task's spilled calls must carry that effort
    (GPT-5's default would be medium, not minimal) and the reasoning task's none (its clients
    send their own). Before, one spill group served both and sent no effort."""
    from llmplan.sim.engine import hybrid_api_requests
    from llmplan.traffic.stream import build_request_stream

    loaded = load_scenario_text(textwrap.dedent(SPILLING.format(model=model)), base_dir=ROOT)
    scenario = loaded.scenario
    stream = build_request_stream(scenario)
    hybrid = scenario.deployments["hybrid"]
    assert isinstance(hybrid, HybridDeployment)
    api = hybrid_api_requests(hybrid, loaded.catalog, stream,
                              plain_tasks=[t.reasoning_tokens is None for t in scenario.tasks],
                              deployments=scenario.deployments,
                              task_sensitivity=[t.sensitivity for t in scenario.tasks],
                              restricted_stays_local=True)
    added = api.output_tokens - stream.output_tokens
    hidden = {name: int(added[stream.task_index == i].max())
              for i, name in enumerate(stream.task_names)}

    written = write_stack(tmp_path / "Pulumi.hybrid.yaml", loaded, evaluate(loaded),
                          "hybrid", {})
    config = router_config(written.config, gateway_endpoints(written.config))
    groups = {m["model_name"]: m["litellm_params"] for m in config["model_list"]}
    fallbacks = {task: to for entry in config["router_settings"]["fallbacks"]
                 for task, to in entry.items()}
    assert set(fallbacks) == {"chat", "think"}
    spec = loaded.catalog.cloud_models[model]
    sent = {}
    for task in ("chat", "think"):
        [group] = fallbacks[task]
        assert str(groups[group]["model"]).endswith(f"/{spec.model_id}")   # the API
        sent[task] = groups[group].get("reasoning_effort")
    # the plain task's spilled calls carry the effort whose hidden tokens the simulation
    # added to them; the reasoning task's carry none (it was simulated with its own)
    assert sent == {"chat": spec.least_reasoning_effort, "think": None}
    assert hidden == {"chat": spec.plain_reasoning_tokens, "think": 0}
