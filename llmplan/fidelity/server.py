"""What the server under test said about itself, per load-test run, and whether runs agree.

llama.cpp: `server_props.json` (slots, context per slot, model file, build). vLLM: the
`vllm:cache_config_info` labels of its /metrics (block size, GPU blocks, cache dtype...)
and the model_name its series carry, from the scrapes the load test saved. The load test's
config.json names the target's kind, model and address. Runs fitted together must come
from one server with one configuration: `same_server` refuses runs of different engines or
models, and runs whose saved settings differ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from llmplan.errors import InputError, Problem
from llmplan.fidelity.promtext import Snapshot, read_snapshots
from llmplan.loadtests.server_props import read_props

#: Files a load test leaves with the server's /metrics (first found is used for settings).
METRICS_FILES = ("server_metrics.prom", "server_metrics_start.txt")


@dataclass(frozen=True)
class ServerInfo:
    slots: int | None = None
    n_ctx_per_slot: int | None = None
    kv_cache_tokens: int | None = None
    max_batched_tokens: int | None = None
    build: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    source: str = ""
    #: the engine the run measured: "llama.cpp" (its /props), "vllm" (its /metrics), else
    #: the load test's target kind ("ollama"; "openai": an OpenAI-compatible server of an
    #: engine not known); None: not recorded
    engine: str | None = None
    #: the model the server said it serves: llama.cpp's model file (its name, not its
    #: folder), vLLM's model_name label; None: it did not say
    model: str | None = None
    #: the model the load test asked for (config.json's target.model) and where it sent
    requested_model: str | None = None
    address: str | None = None

    def filled_from(self, other: ServerInfo) -> ServerInfo:
        """Self, with what it lacks taken from `other`."""
        return replace(self, slots=self.slots or other.slots,
                       n_ctx_per_slot=self.n_ctx_per_slot or other.n_ctx_per_slot,
                       kv_cache_tokens=self.kv_cache_tokens or other.kv_cache_tokens,
                       max_batched_tokens=self.max_batched_tokens or other.max_batched_tokens,
                       build=self.build or other.build,
                       engine=self.engine or other.engine,
                       model=self.model or other.model,
                       requested_model=self.requested_model or other.requested_model,
                       address=self.address or other.address,
                       settings={**other.settings, **self.settings},
                       source=self.source or other.source)


def _folder(run: Path) -> Path:
    return run if run.is_dir() else run.parent


def metrics_snapshots(run: Path) -> tuple[Path, list[Snapshot]] | None:
    for name in METRICS_FILES:
        path = _folder(run) / name
        if path.exists():
            return path, read_snapshots(path)
    return None


def vllm_models(snapshot: Snapshot) -> str | None:
    """The model_name label vLLM's series carry (several: joined; None: none)."""
    names = sorted({labels["model_name"] for name, rows in snapshot.samples.items()
                    if name.startswith("vllm:") for labels, _ in rows if "model_name" in labels})
    return ", ".join(names) or None


def vllm_settings(snapshot: Snapshot) -> dict[str, str]:
    """vLLM's cache configuration as it exported it (engine index left out)."""
    labels = snapshot.labels_of("vllm:cache_config_info")
    return {f"vllm.{k}": v for k, v in sorted(labels.items()) if k != "engine"}


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value not in (None, "", "None") else None
    except ValueError:
        return None


def server_info(run: Path) -> ServerInfo:
    """What one run saved about its server (nothing: an empty ServerInfo)."""
    info = ServerInfo()
    props = read_props(run)
    if props is not None:
        info = ServerInfo(slots=props.total_slots, n_ctx_per_slot=props.n_ctx_per_slot,
                          build=props.build_info, settings=props.settings(),
                          source=str(_folder(run) / "server_props.json"), engine="llama.cpp",
                          model=Path(props.model_path).name if props.model_path else None)
    scraped = metrics_snapshots(run)
    if scraped is not None and scraped[1]:
        path, snapshots = scraped
        # the last scrape that exports them: after a restart, the server the fit uses
        settings = next((found for found in map(vllm_settings, reversed(snapshots))
                         if found), {})
        if settings:
            blocks = _int(settings.get("vllm.num_gpu_blocks"))
            size = _int(settings.get("vllm.block_size"))
            info = info.filled_from(ServerInfo(
                kv_cache_tokens=blocks * size if blocks and size else None,
                settings=settings, source=str(path), engine="vllm",
                model=vllm_models(snapshots[-1])))
    kind, requested, address = target_of(run)
    return info.filled_from(ServerInfo(engine=kind, requested_model=requested,
                                       address=address))


#: the load test's target kinds as the engine they name (llmplan/loadtests/targets.py)
TARGET_ENGINES = {"llamacpp": "llama.cpp", "vllm": "vllm", "ollama": "ollama",
                  "openai": "openai"}


def target_kind(run: Path) -> str | None:
    """The engine the run's load test named its target as (config.json; None: none)."""
    return target_of(run)[0]


def target_of(run: Path) -> tuple[str | None, str | None, str | None]:
    """(engine, model, address) the run's load test named its target with (config.json;
    None where it did not)."""
    path = _folder(run) / "config.json"
    try:
        target = json.loads(path.read_text(encoding="utf-8"))["target"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, None, None
    if not isinstance(target, dict):
        return None, None, None

    def text(key: str) -> str | None:
        value = target.get(key)
        return value if isinstance(value, str) and value else None

    kind = text("kind")
    return (TARGET_ENGINES.get(kind) if kind else None), text("model"), text("base_url")


def model_file(info: ServerInfo) -> str | None:
    """The name of the model file the server loaded (llama.cpp's model_path), if it said:
    the name, not the path, so one model moved to another folder is the same model."""
    path = info.settings.get("model_path")
    return Path(path).name if path else None


def identity(info: ServerInfo) -> str:
    """What a run says its server is: engine, model, address."""
    parts = [f"engine {info.engine or 'not recorded'}",
             f"model {info.model or info.requested_model or 'not recorded'}"]
    if info.address:
        parts.append(f"at {info.address}")
    return ", ".join(parts)


def _differ(values: list[str | None]) -> bool:
    return len({v for v in values if v is not None}) > 1


def same_server(runs: list[Path], infos: list[ServerInfo]) -> None:
    """Refuse to fit runs of different engines or models, or whose saved server settings
    differ (InputError naming each run's). Models are compared as the servers named them
    (llama.cpp's model file, vLLM's model_name) where they did, else as the load tests asked
    for them (a llama.cpp server answers to any model name)."""
    problems = []
    named = [info for info in infos if info.model]
    unnamed = [info for info in infos if not info.model]
    if _differ([info.engine for info in infos]) or _differ([i.model for i in named]) \
            or _differ([i.requested_model for i in unnamed]):
        each = "; ".join(f"{run}: {identity(info)}" for run, info in zip(runs, infos,
                                                                          strict=True))
        problems.append(Problem(", ".join(map(str, runs)), None, "server",
                                f"the runs come from different servers ({each}); fit runs "
                                f"of one server together, or each on its own"))
    keys = sorted({k for info in infos for k in info.settings})
    for key in keys:
        seen = {(info.settings[key]): run for run, info in zip(runs, infos, strict=True)
                if key in info.settings}
        if len(seen) > 1:
            values = "; ".join(f"{run}: {value}" for value, run in seen.items())
            problems.append(Problem(", ".join(map(str, runs)), None, key,
                                    f"the runs come from different server settings ({values}); "
                                    f"fit runs of one server configuration together, or each "
                                    f"on its own"))
    if problems:
        raise InputError(problems, title="runs cannot be fitted together")
