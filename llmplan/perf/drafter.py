"""What a speculative drafter puts on a replica's GPUs: its weights, its share of the KV
cache, and the work of one drafting pass (for the step time).

vLLM loads the drafter next to the model on the same GPUs, split by the same tensor
parallelism, and gives its attention layers pages in the model's own pool of KV blocks:
the drafter's layers are registered with the model's for the KV-cache config
(vllm/v1/spec_decode/eagle.py and draft_model.py load it in the model runner; vllm/v1/core/
kv_cache_utils.py pages every attention layer it finds), so every block of tokens holds a
page of each drafter layer too.

- mtp: the model's own MTP modules (catalog mtp_layers, mtp_params_b), stored like the
  model's weights and sharing its embedding and output head; each is one more decoder
  layer of the model's shape.
- eagle, eagle3: a head of one decoder layer shaped like the model's (the published EAGLE
  and EAGLE-3 heads), 16-bit, of `draft_params_b` parameters when the scenario gives them;
  for a dense model without them, counted from its shape (`eagle_head_params`): EAGLE's
  layer reads the hidden state and a 2h -> h fc joins it to the token's embedding (the
  model's embedding and output head are shared); EAGLE-3's layer attends over 2h inputs
  (embedding and fused features), an fc fuses three of the model's layers (3h -> h), and
  it has an output head of its own over a draft vocabulary of 32,000 tokens (the published
  EAGLE-3 configs: num_hidden_layers 1, draft_vocab_size 32000; Llama-3.1-8B's head counts
  0.42 B parameters, 0.85 GB in 16 bits). A mixture of experts' heads have a dense MLP of
  their own width, which the catalog lacks: those still need draft_params_b.
- draft_model: a smaller model of the same family; its size and architecture come from the
  catalog when `drafter` names a catalog model's repository (draft_params_b, when given,
  replaces its parameter count), else it is refused: its weights and KV cache are unknown.
- ngram: no drafter on the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplan.catalog import ModelSpec
from llmplan.perf.setup import ReplicaSetup


@dataclass(frozen=True)
class Drafter:
    """A drafter's footprint on the whole replica (bytes over all its GPUs), or why it is
    not known."""

    weights_bytes: float = 0.0       # every weight it loads
    pass_params: float = 0.0         # parameters one token goes through in one pass
    pass_bytes: float = 0.0          # weight bytes one pass reads
    kv_layers: int = 0               # attention layers paged in the model's blocks
    kv_layer_bytes: float = 0.0      # one token, one of those layers, one GPU
    same_shape: bool = True          # its layers page like the model's full-attention ones
    error: str | None = None
    dtype: str = "bf16"              # the format its GEMMs run in (EAGLE heads: 16-bit)


NO_DRAFTER = Drafter()

#: the draft vocabulary of the published EAGLE-3 heads (their configs' draft_vocab_size)
EAGLE3_DRAFT_VOCAB = 32_000


def eagle_head_params(model: ModelSpec, method: str) -> float | None:
    """Parameters of an EAGLE ("eagle") or EAGLE-3 ("eagle3") head of a dense model,
    counted from its shape (module docstring); None for a mixture of experts or MLA."""
    if model.is_moe or model.attention == "mla":
        return None
    h, i = model.hidden_size, model.intermediate_size
    q, kv = model.attention_heads * model.head_dim, model.kv_heads * model.head_dim
    inputs, fc, head = (2 * h, 3 * h * h, EAGLE3_DRAFT_VOCAB * h) if method == "eagle3" \
        else (h, 2 * h * h, 0)
    layer = inputs * (q + 2 * kv) + q * h + 3 * h * i
    return float(layer + fc + head)
#: Bytes a drafter's weights take per parameter when the scenario gives only a count:
#: EAGLE heads are published 16-bit.
HEAD_BYTES_PER_PARAM = 2.0


def drafter(setup: ReplicaSetup) -> Drafter:
    """The speculative drafter of `setup` (NO_DRAFTER without one; `error` set when its
    size or shape is not known)."""
    spec = setup.engine.speculative
    if spec is None or spec.method == "ngram":
        return NO_DRAFTER
    model, tp = setup.model, setup.tp
    own_layer = model.kv_bytes_per_token_per_layer(setup.kv_dtype, tp)
    if spec.method == "mtp":
        if not model.mtp_layers:
            return NO_DRAFTER      # refused elsewhere: the model ships no MTP modules
        if not model.mtp_params_b:
            return Drafter(error=f"engine.speculative.method mtp loads {setup.model_name}'s "
                                 f"MTP modules, whose size the catalog lacks; expected "
                                 f"catalog.models.{setup.model_name}.mtp_params_b (their "
                                 f"parameters, billions)")
        per_param = model.weight_bytes(setup.weights_dtype) / (model.params_b * 1e9)
        active = (model.mtp_active_params_b or model.mtp_params_b) * 1e9
        # the embedding is a lookup, shared with the model: no FLOPs, no reads
        active = max(0.0, active - model.vocab_size * model.hidden_size) \
            if model.mtp_active_params_b else active
        return Drafter(weights_bytes=model.mtp_params_b * 1e9 * per_param,
                       pass_params=active, pass_bytes=active * per_param,
                       kv_layers=model.mtp_layers, kv_layer_bytes=own_layer,
                       dtype=model.dense_dtype(setup.weights_dtype))
    named = setup.drafter
    if spec.method in ("eagle", "eagle3") or named is None:
        return _counted(setup, own_layer)
    draft = named.model
    if draft.vocab_size != model.vocab_size:
        # the drafter proposes token ids the target scores: vLLM's SpeculativeConfig checks
        # the two vocabularies' sizes are equal (vllm-project/vllm#24322; still strict in
        # 2026, vllm-project/vllm#42775)
        return Drafter(error=f"engine.speculative.drafter {spec.drafter} has a vocabulary of "
                             f"{draft.vocab_size} tokens and {setup.model_name} one of "
                             f"{model.vocab_size}: a draft model proposes the target's token "
                             f"ids, and vLLM refuses a pair whose vocabularies differ; expected "
                             f"a drafter of {setup.model_name}'s family with the same "
                             f"vocab_size")
    params = (spec.draft_params_b if spec.draft_params_b is not None else draft.params_b) * 1e9
    per_param = draft.weight_bytes(named.dtype) / (draft.params_b * 1e9)
    active = params * draft.active_params_b / draft.params_b
    layer = draft.kv_bytes_per_token_per_layer(setup.kv_dtype, tp)
    return Drafter(weights_bytes=params * per_param, pass_params=active,
                   pass_bytes=active * per_param, kv_layers=draft.layers, kv_layer_bytes=layer,
                   same_shape=False, dtype=named.dtype)


def _counted(setup: ReplicaSetup, own_layer: float) -> Drafter:
    """An EAGLE head, or a draft model the catalog does not know: sized by draft_params_b."""
    spec = setup.engine.speculative
    assert spec is not None
    which = spec.drafter or next((repo.hf_id for method, repo in setup.model.drafters.items()
                                  if method == spec.method), "none named")
    if spec.method == "draft_model":
        where = f"'{spec.drafter}' is no catalog model's repository" if spec.drafter \
            else "engine.speculative.drafter is not given"
        return Drafter(error=f"{where}, so the draft model's weights and KV cache on the GPU "
                             f"are unknown; expected engine.speculative.drafter to name a "
                             f"catalog model (its name or hf_id), or the model added under "
                             f"catalog.models")
    counted = eagle_head_params(setup.model, spec.method) if spec.draft_params_b is None \
        else spec.draft_params_b * 1e9
    if counted is None:
        return Drafter(error=f"engine.speculative.draft_params_b is not given, and the "
                             f"{spec.method} head ({which}) is no catalog model, so its "
                             f"weights on the GPU are unknown; expected draft_params_b: the "
                             f"head's parameters, billions (EAGLE heads ~0.2-1; a mixture "
                             f"of experts' head is not counted from the model's shape)")
    params = counted
    # one decoder layer shaped like the model's: one more page per block
    return Drafter(weights_bytes=params * HEAD_BYTES_PER_PARAM, pass_params=params,
                   pass_bytes=params * HEAD_BYTES_PER_PARAM, kv_layers=1,
                   kv_layer_bytes=own_layer)


__all__ = ["EAGLE3_DRAFT_VOCAB", "NO_DRAFTER", "Drafter", "drafter", "eagle_head_params"]
