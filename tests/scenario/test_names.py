"""Catalog entries named the way their vendor or provider spells them point at the entry."""

from __future__ import annotations

import pytest

from llmplan.catalog import builtin_catalog
from llmplan.scenario.names import unknown_cloud_model, unknown_gpu

CATALOG = builtin_catalog()


def _suggested(message: str) -> list[str]:
    """The ids a message's "(did you mean 'A' or 'B'?)" offers."""
    if "(did you mean " not in message:
        return []
    inside = message.split("(did you mean ", 1)[1].split("?)", 1)[0]
    return [part.strip("' ") for part in inside.replace(" or ", ", ").split(", ")]


@pytest.mark.parametrize("key", sorted(CATALOG.gpus))
def test_a_gpus_product_name_is_answered_with_its_id(key: str) -> None:
    name = CATALOG.gpus[key].name
    assert f"that is the catalog's product name of '{key}'; expected its id, '{key}'" \
        in unknown_gpu(name, CATALOG)


@pytest.mark.parametrize(("written", "meant"), [
    # nvidia-smi's names: the H100 SXM says no form factor, so both H100s are offered
    ("NVIDIA H100 80GB HBM3", {"H100-SXM", "H100-PCIe"}),
    ("NVIDIA A100-SXM4-80GB", {"A100-80GB"}),        # its memory picks the 80 GB one
    ("H100 SXM5 80GB", {"H100-SXM"}),                # the form factor picks the SXM
    ("AMD Instinct MI300X", {"MI300X"}),
    ("RTX 4090", {"RTX-4090"}),
    ("NVIDIA L4", {"L4"}),                           # not the L40S, which only starts alike
])
def test_a_vendors_spelling_suggests_the_gpus_with_its_model_number(written: str,
                                                                     meant: set[str]) -> None:
    assert set(_suggested(unknown_gpu(written, CATALOG))) == meant


def test_a_gpu_the_catalog_lacks_is_offered_nothing_wrong() -> None:
    message = unknown_gpu("Tesla T4", CATALOG)
    assert _suggested(message) == [] and "expected one of: " in message


PROVIDER_IDS = sorted((spec.model_id, key) for key, spec in CATALOG.cloud_models.items()
                      if spec.model_id not in CATALOG.cloud_models)


@pytest.mark.parametrize(("model_id", "key"), PROVIDER_IDS)
def test_a_providers_model_id_is_answered_with_the_catalog_id(model_id: str, key: str) -> None:
    message = unknown_cloud_model(model_id, CATALOG)
    assert "that is the provider's model id of the catalog's" in message
    assert f"'{key}' ({CATALOG.cloud_models[key].provider})" in message


@pytest.mark.parametrize(("written", "key"), [
    ("claude-sonnet-4-5", "claude-sonnet-4.5"),     # the alias of a dated snapshot
    ("gpt-4o-2024-08-06", "gpt-4o"),                # a dated snapshot of an alias
    # a Bedrock id in another geography than the catalog's, or without one
    ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4.5-bedrock"),
    ("anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4.5-bedrock"),
])
def test_a_providers_id_as_applications_send_it_is_recognised(written: str, key: str) -> None:
    assert f"the catalog's '{key}'" in unknown_cloud_model(written, CATALOG)


def test_the_bedrock_entries_are_not_offered_for_the_providers_own_api() -> None:
    message = unknown_cloud_model("claude-sonnet-4-5-20250929", CATALOG)
    assert "'claude-sonnet-4.5' (anthropic)" in message and "bedrock" not in message
