"""The sensitivity's cases that set local fleets up otherwise: prefix caching switched, a
mixture of experts or PCIe cards laid out the other way; each the scenario changed, its
label and the deployments it changes."""

from __future__ import annotations

from dataclasses import replace

from llmplan.perf.memory import build_error
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import HybridDeployment
from llmplan.scenario.models import LocalDeployment
from llmplan.traffic import RequestStream


def prefix_caching_toggled(loaded: LoadedScenario, stream: RequestStream
                           ) -> tuple[str, LoadedScenario, set[str]] | None:
    """When prompts share prefixes: the scenario with every local engine's prefix caching
    switched (off when any has it on, else to vLLM's), the case's label, and the deployments
    it changes (local fleets and the hybrids that use them). None otherwise."""
    if stream.prefix_group is None:
        return None
    scenario = loaded.scenario
    local = {name: dep for name, dep in scenario.deployments.items()
             if isinstance(dep, LocalDeployment)}
    if not local:
        return None
    on = any(dep.engine.prefix_caching != "off" for dep in local.values())
    policy = "off" if on else "vllm"
    changed, affected = _with_fleets(loaded, {
        name: dep.model_copy(update={"engine": dep.engine.model_copy(
            update={"prefix_caching": policy})}) for name, dep in local.items()})
    return f"local prefix caching {'off' if on else 'on'}", changed, affected


def _with_fleets(loaded: LoadedScenario, fleets: dict[str, LocalDeployment]
                 ) -> tuple[LoadedScenario, set[str]]:
    """The scenario with these local fleets in place of its own, and the deployments that
    changes: the fleets and the hybrids that use them."""
    scenario = loaded.scenario
    affected = set(fleets) | {name for name, dep in scenario.deployments.items()
                              if isinstance(dep, HybridDeployment) and dep.local in fleets}
    deployments = {**scenario.deployments, **fleets}
    return replace(loaded, scenario=scenario.model_copy(
        update={"deployments": deployments})), affected


def _buildable(loaded: LoadedScenario, fleets: dict[str, LocalDeployment]
               ) -> tuple[LoadedScenario, set[str]] | None:
    """`_with_fleets` of those of `fleets` that can be built (None: none can)."""
    catalog = loaded.catalog
    kept = {name: dep for name, dep in fleets.items() if build_error(dep.setup(catalog)) is None}
    return _with_fleets(loaded, kept) if kept else None


def layout_flipped(loaded: LoadedScenario) -> tuple[str, LoadedScenario, set[str]] | None:
    """When a local fleet runs a mixture of experts over several GPUs with the roofline
    step model: the scenario with those fleets' replicas laid out the other way (data-parallel
    ranks with the experts spread, vLLM's --data-parallel-size with --enable-expert-parallel,
    when any runs one tensor-parallel engine; else every such fleet as one), the case's
    label, and the deployments it changes (the fleets and the hybrids that use them). Fleets
    the other layout cannot run (a drafter, a model that does not fit) keep theirs; None
    when none changes."""
    scenario, catalog = loaded.scenario, loaded.catalog
    moe = {name: dep for name, dep in scenario.deployments.items()
           if isinstance(dep, LocalDeployment) and dep.tp > 1 and dep.pp == 1
           and dep.model in catalog.models and catalog.models[dep.model].is_moe
           and isinstance(dep.step_time, RooflineStepTime)}
    if not moe:
        return None
    to_ranks = any(not dep.engine.data_parallel_attention for dep in moe.values())
    update: dict[str, object] = {"data_parallel_attention": to_ranks}
    if to_ranks:
        update["expert_parallel"] = True
    flipped = _buildable(loaded, {
        name: dep.model_copy(update={"engine": dep.engine.model_copy(update=update)})
        for name, dep in moe.items() if dep.engine.data_parallel_attention != to_ranks})
    if flipped is None:
        return None
    label = ("mixture-of-experts fleets as data-parallel ranks (experts spread)" if to_ranks
             else "mixture-of-experts fleets as one tensor-parallel engine per replica")
    return label, *flipped


def stages_flipped(loaded: LoadedScenario) -> tuple[str, LoadedScenario, set[str]] | None:
    """When a local fleet spreads each replica over several PCIe cards (no NVLink) with the
    roofline step model: the scenario with those replicas' GPUs as pipeline stages of one
    GPU each when any runs tensor-parallel (vLLM's advice for GPUs without NVLink: a stage
    hands one hidden state on where tensor parallelism all-reduces every layer's), else
    every such fleet as one tensor-parallel group; the case's label and the deployments it
    changes. Fleets the other layout cannot run keep theirs; None when none changes."""
    scenario, catalog = loaded.scenario, loaded.catalog
    pcie = {name: dep for name, dep in scenario.deployments.items()
            if isinstance(dep, LocalDeployment) and dep.gpus_per_replica > 1
            and dep.gpu in catalog.gpus and catalog.gpus[dep.gpu].interconnect == "pcie"
            and not dep.engine.data_parallel_attention
            and isinstance(dep.step_time, RooflineStepTime)}
    to_stages = any(dep.pp == 1 for dep in pcie.values())
    flipped = _buildable(loaded, {
        name: dep.model_copy(update={"tp": 1, "pp": dep.gpus_per_replica} if to_stages
                             else {"tp": dep.gpus_per_replica, "pp": 1})
        for name, dep in pcie.items() if (dep.pp == 1) == to_stages})
    if flipped is None:
        return None
    label = ("fleets on PCIe cards as pipeline stages (a GPU each)" if to_stages
             else "fleets on PCIe cards as one tensor-parallel group per replica")
    return label, *flipped
