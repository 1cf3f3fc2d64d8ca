"""`llmplan schema` describes what the loader accepts: the bundled examples validate against
it with a standard JSON Schema validator, and a duration in text is checked like the loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.errors import InputError
from llmplan.scenario import load_scenario_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCENARIOS = sorted(p for p in EXAMPLES.glob("*.yaml") if p.name != "targets.yaml")


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("example", SCENARIOS, ids=lambda p: p.name)
def test_every_example_scenario_validates_against_the_schema(
        validator: jsonschema.protocols.Validator, example: Path) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in validator.iter_errors(yaml.safe_load(example.read_text()))]
    assert not errors


def _with_duration(duration: Any) -> str:
    return (EXAMPLES / "support-assistant.yaml").read_text().replace(
        "duration: 1h", f"duration: {json.dumps(duration)}", 1)


@pytest.mark.parametrize("duration", [3600, 90.5, "90m", "24h", "1.5d", "500ms", "600"])
def test_a_duration_the_loader_reads_is_valid_in_the_schema(
        validator: jsonschema.protocols.Validator, duration: Any) -> None:
    text = _with_duration(duration)
    load_scenario_text(text)
    validator.validate(yaml.safe_load(text))


@pytest.mark.parametrize("duration", ["90 minutes", "1h30m", "-5m", 0, True])
def test_a_duration_the_loader_refuses_is_invalid_in_the_schema(
        validator: jsonschema.protocols.Validator, duration: Any) -> None:
    text = _with_duration(duration)
    with pytest.raises(InputError):
        load_scenario_text(text)
    assert not validator.is_valid(yaml.safe_load(text))


def _with_engine(setting: str) -> str:
    text = (EXAMPLES / "support-assistant.yaml").read_text()
    assert "engine: {weights_dtype: fp8}" in text
    return text.replace("engine: {weights_dtype: fp8}",
                        f"engine: {{weights_dtype: fp8, {setting}}}", 1)


@pytest.mark.parametrize("setting", [
    "vllm_version: 0.33", "vllm_version: '0.10.2'", "vllm_version: 0.9",
    "prefix_caching: off", "prefix_caching: on", "prefix_caching: per_slot",
    "kv_dtype: fp8_e4m3", "kv_dtype: fp8_e5m2", "kv_dtype: fp8", "kv_dtype: bf16",
    "kv_dtype: auto"])
def test_an_engine_setting_the_loader_reads_is_valid_in_the_schema(
        validator: jsonschema.protocols.Validator, setting: str) -> None:
    text = _with_engine(setting)
    load_scenario_text(text)
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in validator.iter_errors(yaml.safe_load(text))]
    assert not errors


@pytest.mark.parametrize("setting", [
    "vllm_version: latest", "vllm_version: -1.5", "prefix_caching: sometimes",
    "prefix_caching: 1", "kv_dtype: fp8_e3m4", "kv_dtype: int4"])
def test_an_engine_setting_the_loader_refuses_is_invalid_in_the_schema(
        validator: jsonschema.protocols.Validator, setting: str) -> None:
    text = _with_engine(setting)
    with pytest.raises(InputError):
        load_scenario_text(text)
    assert not validator.is_valid(yaml.safe_load(text))


def test_kv_dtype_auto_is_vllms_default_the_models_own_dtype() -> None:
    """`--kv-cache-dtype auto` is vLLM's default: a scenario that copies it gets the cache
    it would get leaving kv_dtype out."""
    auto = load_scenario_text(_with_engine("kv_dtype: auto")).scenario
    plain = load_scenario_text(_with_engine("max_num_seqs: 256")).scenario
    engine, default = auto.deployments["gpu-small"].engine, plain.deployments["gpu-small"].engine
    assert engine.kv_dtype is None and engine.kv_dtype == default.kv_dtype
    assert engine.kv_cache_dtype_flag is None
