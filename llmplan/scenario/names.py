"""Unknown catalog names, answered in the catalog's ids: a GPU, open model or cloud model named
the way its vendor or provider spells it ("NVIDIA H100 80GB HBM3" as nvidia-smi prints it, a
Hugging Face repository, the provider's model id an application sends) is pointed at the
entry it is, not only at the ids spelt most alike."""

from __future__ import annotations

import difflib
import re

from llmplan.catalog import Catalog
from llmplan.errors import did_you_mean, offered_names

#: words in a GPU's product name that say nothing about which GPU it is
_GPU_NOISE = frozenset({"nvidia", "amd", "instinct", "geforce", "tesla", "gpu"})
#: a token naming a GPU's model (H100, L40S, MI300X, 4090), not its memory (80GB, HBM3)
_GPU_MODEL = re.compile(r"^(?!hbm)(?!\d+gb$)[a-z]*\d+[a-z]*$")
#: Bedrock's cross-Region inference profiles prefix a model id with a geography
_GEO_PREFIX = re.compile(r"^(us|eu|apac|jp|au|ca|us-gov|global)\.")
#: a dated snapshot of a provider's model alias (claude-sonnet-4-5-20250929, gpt-4o-2024-08-06)
_SNAPSHOT = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")


def unknown(kind: str, name: str, known: list[str], suggested: str | None = None) -> str:
    """An unknown name, the likeliest meant (`suggested`, else the ids spelt most alike) and
    every id there is."""
    close = did_you_mean(name, known) if suggested is None else suggested
    return f"unknown {kind} '{name}'{close}; expected one of: {', '.join(sorted(known))}"


def unknown_gpu(name: str, catalog: Catalog) -> str:
    """An unknown GPU id: the catalog's product name of one, or a product name as a vendor or
    nvidia-smi writes it, suggests the GPUs with its model number, most words in common first."""
    for key, spec in catalog.gpus.items():
        if spec.name.lower() == name.lower():
            return (f"unknown GPU '{name}': that is the catalog's product name of '{key}'; "
                    f"expected its id, '{key}'")
    words = _words(name) - _GPU_NOISE
    models = {w for w in words if _GPU_MODEL.match(w)}
    alike: list[tuple[int, str]] = []
    for key, spec in catalog.gpus.items():
        theirs = _words(key) | _words(spec.name)
        if models & theirs or any(t.startswith(m) for m in models for t in theirs):
            alike.append((sum(_same_word(w, theirs) for w in words), key))
    best = max((score for score, _ in alike), default=0)
    meant = [key for score, key in alike if score == best]
    return unknown("GPU", name, list(catalog.gpus), offered_names(meant) if meant else None)


def unknown_model(name: str, catalog: Catalog) -> str:
    """An unknown model id, or a Hugging Face repository the catalog knows by its own id."""
    wanted = name.lower()
    for key, spec in sorted(catalog.models.items()):
        repos = [spec.hf_id, *(c.hf_id for c in spec.checkpoints.values())]
        if any(repo is not None and repo.lower() == wanted for repo in repos):
            return (f"unknown model '{name}': that is a Hugging Face repository of the "
                    f"catalog's model '{key}'; expected its catalog id, '{key}' (the weight "
                    f"format picks the repository: engine.weights_dtype)")
    return unknown("model", name, list(catalog.models))


def unknown_cloud_model(name: str, catalog: Catalog) -> str:
    """An unknown cloud model id, or the provider's own model id of catalog entries (as an
    application sends it: a dated snapshot or its alias, a Bedrock id with or without its
    geography prefix)."""
    wanted = _provider_id(name)
    same = [(key, spec.provider) for key, spec in sorted(catalog.cloud_models.items())
            if _provider_id(spec.model_id) == wanted]
    if not same:
        return unknown("cloud model", name, list(catalog.cloud_models))
    entries = " and ".join(f"'{key}' ({provider})" for key, provider in same)
    keys = " or ".join(f"'{key}'" for key, _ in same)
    return (f"unknown cloud model '{name}': that is the provider's model id of the catalog's "
            f"{entries}; expected its catalog id, {keys}")


def _provider_id(model_id: str) -> str:
    """A provider's model id without what varies for one model: case, a Bedrock geography
    prefix, a snapshot date."""
    return _SNAPSHOT.sub("", _GEO_PREFIX.sub("", model_id.lower().strip()))


def _same_word(word: str, words: set[str]) -> bool:
    """`word` is among `words`, or, with no digit in it, spelt nearly like one of them (SMX
    for SXM); numbers (80GB, 40GB) must match exactly."""
    if word in words:
        return True
    return not any(c.isdigit() for c in word) and bool(
        difflib.get_close_matches(word, [w for w in words if not any(c.isdigit() for c in w)],
                                  n=1))


def _words(text: str) -> set[str]:
    return {w for w in re.split(r"[^a-z0-9]+", text.lower()) if w}
