"""From a simulated deployment to a stack file: what `llmplan stack` writes.

The engine knobs the simulator used (max_num_seqs, max_num_batched_tokens, memory
utilisation, block size, chunked prefill, tp, replicas, dtype) become vLLM flags, so what
was planned is what gets deployed. Secrets are never written: the file says which
`pulumi config set --secret` commands to run.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from llmplan.catalog import Catalog
from llmplan.provision.config import GatewaySettings, ServingSettings, StackKind
from llmplan.scenario.models import LocalDeployment

PROJECT = "llm-deploy-planner"


def serving_from_deployment(name: str, dep: LocalDeployment, catalog: Catalog) -> ServingSettings:
    model = catalog.models[dep.model]
    engine = dep.engine
    setup = dep.setup(catalog)   # engine defaults resolved as the simulation resolved them
    return ServingSettings(
        name=name, model_id=model.hf_id, served_name=dep.model, gpu=dep.gpu,
        replicas=dep.replicas, tp=dep.tp, max_num_seqs=setup.max_num_seqs,
        max_num_batched_tokens=setup.max_num_batched_tokens,
        gpu_memory_utilization=setup.gpu_memory_utilization,
        block_size_tokens=engine.block_size_tokens, chunked_prefill=engine.chunked_prefill,
        max_model_len=engine.max_model_len,
        weights_dtype=engine.weights_dtype or model.default_dtype,
        memory_gib=max(32, int(model.params_b * 2 * 1.5) // dep.tp + 16))


def stack_values(kind: StackKind, serving: ServingSettings | None,
                 gateway: GatewaySettings | None, namespace: str = "llm") -> dict[str, Any]:
    values: dict[str, Any] = {f"{PROJECT}:kind": kind, f"{PROJECT}:namespace": namespace}
    if serving is not None:
        values[f"{PROJECT}:serving"] = {k: v for k, v in asdict(serving).items()
                                        if v is not None}
    if gateway is not None:
        values[f"{PROJECT}:gateway"] = {k: v for k, v in asdict(gateway).items()
                                        if v is not None}
    return {"config": values}


def write_stack_file(path: Path, values: dict[str, Any], needs_secrets: list[str]) -> Path:
    header = ["# Written by `llmplan stack`: the deployment llmplan simulated, as stack config.",
              "# Then: pulumi stack select <stack> && pulumi up"]
    if needs_secrets:
        header.append("# Secrets are not written here; set them with:")
        header += [f"#   pulumi config set --secret {name} <value>" for name in needs_secrets]
    path.write_text("\n".join(header) + "\n" + yaml.safe_dump(values, sort_keys=False),
                    encoding="utf-8")
    return path
