"""The per-layer latency of MoE and MLA layers, from published low-concurrency decode times.

    python benchmarks/layer_overhead.py

At 4 to 16 users a DeepSeek-R1 decode step reads few experts and little KV cache, yet the
published median time per output token (InferenceMAX, benchmarks/layer_overhead_record.csv:
B200, B300, H200, MI300X, MI325X, MI355X; SGLang, TensorRT-LLM, ATOM; TP 4 and 8, with and
without expert parallelism) lies a near-constant few milliseconds above the roofline, the
same at 4, 8 and 16 users: a latency per layer, not a bandwidth. This script computes, for
every row with 1,024-token prompts (longer ones add prefill time to every output token) not
already in the throughput record (benchmarks/published_record.yaml), that gap
per layer with the MoE and MLA terms off, and prints the median and its split into
`moe_layer_us` and `mla_layer_us` (the roofline defaults, llmplan/perf/steptime_spec.py) in
proportion to the short kernels each adds to a dense layer. Last lines:
layer_gap_median_us=, moe_layer_us=, mla_layer_us=, residual_median_pct= (the rows' TPOT
error with the defaults on).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from record import ThroughputCase, load_cases

from llmplan.catalog import builtin_catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.steptime import build_step_time
from llmplan.perf.steptime_spec import RooflineStepTime
from llmplan.scenario.models import LocalDeployment
from llmplan.sim.stepmodel import StepModel

HERE = Path(__file__).parent
GPUS = {"b200": "B200", "h200": "H200", "mi300x": "MI300X", "mi325x": "MI325X",
        "mi355x": "MI355X"}
# short kernels each layer kind adds to a dense GQA layer in the engines' DeepSeek-V2/V3
# model code (approximate counts): MoE: router GEMM, grouped top-k, token sort/align, two
# activation quantisations, two grouped GEMMs, activation, weighted sum, shared-expert path
# over the dense MLP's; MLA: q_a/q_b split, two extra norms, two absorbed BMMs, the split-KV
# combine, the latent cache write
MOE_KERNELS, MLA_KERNELS = 11, 8


def _rows() -> list[dict[str, str]]:
    lines = (HERE / "layer_overhead_record.csv").read_text(encoding="utf-8").splitlines()
    return list(csv.DictReader(line for line in lines if not line.startswith("#")))


def _in_record() -> set[tuple[str, ...]]:
    keys = set()
    for c in load_cases(ThroughputCase, "published_record.yaml"):
        if c.id.startswith("ix-") and c.concurrency is not None:
            keys.add((c.gpu, "ep" if c.expert_parallel else "", str(c.tp), str(c.input_tokens),
                      str(c.output_tokens), str(c.concurrency)))
    return keys


def _decode_steps_ms(row: dict[str, str], gpu: str,
                     specs: tuple[RooflineStepTime, ...]) -> list[float]:
    """The row's decode step (its users at their mean context) under each spec."""
    catalog = builtin_catalog()
    vendor = catalog.gpus[gpu].vendor
    weights = row["precision"] if row["precision"] == "fp8" else (
        "nvfp4" if vendor == "nvidia" else "mxfp4")
    engine = EngineSpec(weights_dtype=weights, kv_dtype="fp8",
                        expert_parallel=int(row["decode_ep"]) > 1)
    setup = LocalDeployment(gpu=gpu, model="DeepSeek-R1", tp=int(row["decode_tp"]),
                            engine=engine).setup(catalog)
    users = int(row["conc"])
    context = int(row["isl"]) + int(row["osl"]) // 2   # mean over the answer
    return [1e3 * StepModel(**build_step_time(setup, spec).coefficients())
            .step_s(0, users, users * context) for spec in specs]


def main() -> None:
    record = _in_record()
    layers = builtin_catalog().models["DeepSeek-R1"].layers
    specs = (RooflineStepTime(moe_layer_us=0.0, mla_layer_us=0.0), RooflineStepTime())
    gaps, errors, used = [], [], 0
    print(f"{'hardware':8} {'engine':7} {'w':4} {'tp':>2} {'ep':>2} {'in/out':>9} {'users':>5} "
          f"{'TPOT ms':>8} {'roofline':>8} {'gap/layer us':>12}")
    for row in _rows():
        gpu = GPUS.get(row["hardware"])
        key = (gpu, "ep" if int(row["decode_ep"]) > 1 else "", row["decode_tp"], row["isl"],
               row["osl"], row["conc"])
        if gpu is None or key in record or int(row["isl"]) > 1024:
            continue   # 8k prompts: their prefill steps add to the time per output token
        base, with_terms = _decode_steps_ms(row, gpu, specs)
        used += 1
        tpot = float(row["median_tpot_ms"])
        gap_us = 1e3 * (tpot - base) / layers
        gaps.append(gap_us)
        errors.append(100.0 * (with_terms - tpot) / tpot)
        print(f"{row['hardware']:8} {row['framework']:7} {row['precision']:4} "
              f"{row['decode_tp']:>2} {row['decode_ep']:>2} {row['isl'] + '/' + row['osl']:>9} "
              f"{row['conc']:>5} {tpot:8.1f} {base:8.2f} {gap_us:12.0f}")
    median = float(np.median(gaps))
    # a DeepSeek-R1 step has 58 MoE and 61 MLA layers; the gap is per layer of 61
    model = builtin_catalog().models["DeepSeek-R1"]
    total_us = median * layers
    per_kernel = total_us / (MOE_KERNELS * model.moe_layer_count + MLA_KERNELS * layers)
    print(f"\nrows used: {used} (rows of the throughput record left out)")
    print(f"layer_gap_median_us={median:.0f}")
    print(f"moe_layer_us={per_kernel * MOE_KERNELS:.0f}")
    print(f"mla_layer_us={per_kernel * MLA_KERNELS:.0f}")
    print(f"residual_median_pct={float(np.median(errors)):+.1f}")


if __name__ == "__main__":
    main()
