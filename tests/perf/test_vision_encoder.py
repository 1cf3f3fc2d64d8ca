"""A multimodal checkpoint's vision encoder is loaded (its weights take memory) but runs only on
images: a step of text reads and multiplies the text model alone (catalog vision_params_b)."""

from __future__ import annotations

import pytest
from helpers import run_first, scenario_from

from llmplan.catalog import builtin_catalog
from llmplan.errors import ScenarioError
from llmplan.perf.engine import EngineSpec
from llmplan.perf.memory import weights_bytes_per_gpu
from llmplan.perf.setup import ReplicaSetup
from llmplan.perf.steptime import build_step_time
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.sim.table import request_table

CATALOG = builtin_catalog()
SPEC = RooflineStepTime()


def _setup(gpu: str, model: str, tp: int = 1) -> ReplicaSetup:
    return ReplicaSetup(gpu_name=gpu, model_name=model, gpu=CATALOG.gpus[gpu],
                        model=CATALOG.models[model], engine=EngineSpec(), tp=tp)


@pytest.mark.parametrize("model", ["Gemma-3-27B", "Gemma-3-12B", "Mistral-Small-3.2-24B",
                                   "Llama-4-Scout", "Llama-4-Maverick"])
def test_multimodal_models_give_their_vision_encoder(model: str) -> None:
    spec = CATALOG.models[model]
    assert 0.3 < spec.vision_params_b < 1.0
    assert spec.sources["vision_params_b"]


def test_a_decode_step_reads_the_text_model_of_a_dense_multimodal_model() -> None:
    # Gemma 3 ties its embedding to the output head: a step reads every text weight once,
    # in 16 bits, which is params_b less the vision tower
    setup = _setup("H200", "Gemma-3-27B")
    model = setup.model
    text_bytes = (model.params_b - model.vision_params_b) * 1e9 * 2
    step = build_step_time(setup, SPEC)
    bandwidth = setup.gpu.bandwidth_bytes_per_s * SPEC.memory_efficiency
    assert step.weights_s == pytest.approx(text_bytes / bandwidth, rel=1e-9)
    # ... while the GPU holds the tower too
    assert weights_bytes_per_gpu(setup) == pytest.approx(model.params_b * 1e9 * 2, rel=1e-9)


def test_llama4_scout_computes_what_its_text_layers_hold() -> None:
    # per token, from config.json's shapes: attention (q, k, v, o) and, in each of the 48
    # MoE layers, the shared expert and one routed expert (gate, up, down of 8,192 wide)
    setup = _setup("B200", "Llama-4-Scout", tp=2)
    m = setup.model
    attention = m.layers * m.hidden_size * m.head_dim * (2 * m.attention_heads + 2 * m.kv_heads)
    experts = m.layers * 2 * 3 * m.hidden_size * 8192
    step = build_step_time(setup, SPEC)
    flops = setup.gpu.flops_per_s("bf16") * setup.tp * SPEC.compute_efficiency \
        * setup.gpu.gemm_efficiency("bf16")
    slots = m.moe_layer_count * 1 * setup.tp * 3.0 * m.hidden_size \
        * SPEC.expert_slot_overhead_width
    layer_params = (step.compute_per_token_s - 2.0 * slots / flops) * flops / 2.0
    # norms and the 16 x 5,120 routers are the rest
    assert layer_params == pytest.approx(attention + experts, rel=0.002)


ONE_REQUEST = """
    seed: 1
    duration: 100
    traffic: {{kind: constant, rate_per_s: 0.001}}
    tasks:
      - name: only
        prompt_tokens: {{kind: fixed, tokens: 500}}
        output_tokens: {{kind: fixed, tokens: 50}}
    deployments:
      one: {{gpu: H200, model: Gemma-3-27B}}
{catalog}"""


def _tpot_s(catalog: str = "") -> float:
    loaded = scenario_from(ONE_REQUEST.format(catalog=catalog))
    run, stream = run_first(loaded)
    return float(request_table(run, stream).tpot_s[0])


def test_a_single_request_decodes_faster_by_the_towers_reads() -> None:
    without = _tpot_s("    catalog: {models: {Gemma-3-27B: {vision_params_b: 0}}}")
    with_tower = _tpot_s()
    gpu = CATALOG.gpus["H200"]
    tower_s = CATALOG.models["Gemma-3-27B"].vision_params_b * 1e9 * 2 / (
        gpu.bandwidth_bytes_per_s * SPEC.memory_efficiency)
    assert without - with_tower == pytest.approx(tower_s, rel=1e-6)


def test_a_tower_larger_than_the_dense_weights_is_refused() -> None:
    with pytest.raises(ScenarioError) as err:
        scenario_from(ONE_REQUEST.format(
            catalog="    catalog: {models: {Gemma-3-27B: {vision_params_b: 40}}}"))
    message = str(err.value)
    assert "catalog.models.Gemma-3-27B" in message and "vision_params_b (40)" in message
