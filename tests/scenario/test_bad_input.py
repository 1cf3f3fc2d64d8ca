"""Bad scenario files: every one is a ScenarioError naming file, line, field path and expectation.

Each case changes one thing in a scenario that is valid as given (see the control test), so the
error can only come from that change. Expected line numbers are not hard-coded: the offending
line carries a `# <-` marker and the test counts lines in the text itself.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.errors import Problem, ScenarioError
from llmplan.scenario import load_scenario, load_scenario_text
from llmplan.scenario.models import LocalDeployment

MARK = "# <-"

VALID = """\
name: bad-input
duration: 10m
traffic:
  kind: poisson
  rate_per_s: 2
tasks:
  - name: chat
    prompt_tokens: {kind: fixed, tokens: 100}
    output_tokens: {kind: fixed, tokens: 50}
deployments:
  a:
    gpu: H100-SXM
    model: Llama-3.1-8B
"""


def edit(old: str, new: str, base: str = VALID) -> str:
    """`base` with exactly one occurrence of `old` replaced (so each case is what it says)."""
    assert base.count(old) == 1, f"{old!r} must occur once in the base scenario"
    return base.replace(old, new)


def line_of(text: str, needle: str) -> int:
    """1-based number of the only line of `text` containing `needle`."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) == 1, f"{needle!r} must be on exactly one line, found on {hits}"
    return hits[0]


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    path: str                   # dotted field path; "" = top level
    fragments: tuple[str, ...]  # what the message must say; "{dir}" = the scenario's folder
    line: int | None = None     # None: the line carrying the `# <-` marker
    files: dict[str, str] = field(default_factory=dict)  # extra files next to the scenario


HYBRID = """\
  c: {kind: cloud, model: gpt-4o-mini}
  h:
    kind: hybrid
    local: a
    cloud: c
"""

CSV_HEADER = "timestamp,prompt_tokens,output_tokens,task\n"
TRACE_TRAFFIC = "kind: trace\n  path: {name}  " + MARK

# exp(z95^2 / 2): the largest p95/mean a lognormal can have (its p95/mean peaks at sigma = z95).
Z95 = statistics.NormalDist().inv_cdf(0.95)
MAX_SKEW = f"{math.exp(Z95 * Z95 / 2):.2f}"

CASES = [
    Case("yaml-syntax", edit("duration: 10m\n", f"duration: 10m: 5  {MARK}\n"), "",
         ("not valid YAML at column 14", "mapping values are not allowed",
          "a value holding ': ' (put that value in quotes)")),
    # a key one space out of line: where, in which block, and what to check, not only
    # PyYAML's "expected <block end>, but found '<block mapping start>'"
    Case("yaml-key-out-of-line",
         edit("    model: Llama-3.1-8B\n", f"    model: Llama-3.1-8B\n   tp: 2  {MARK}\n"), "",
         ("not valid YAML at column 4",
          f"block mapping begun on line {line_of(VALID, '  a:')}, column 3",
          "check the indentation")),
    Case("yaml-tab", edit("    model: Llama-3.1-8B\n", f"\tmodel: Llama-3.1-8B  {MARK}\n"), "",
         ("not valid YAML at column 1", "indents with spaces, not tabs")),
    Case("empty-file", "", "", ("expected a mapping", "empty file"), line=1),
    Case("only-comments", "# nothing here yet\n\n", "", ("expected a mapping", "empty file"),
         line=1),
    Case("top-level-list", "- name: a\n- name: b\n", "", ("expected a mapping", "list"), line=1),
    Case("empty-name", edit("name: bad-input\n", f"name: ''  {MARK}\n"), "name",
         ("expected a name for the workload", "got ''")),
    Case("blank-name", edit("name: bad-input\n", f"name: '  '  {MARK}\n"), "name",
         ("expected a name for the workload", "got '  '")),
    # a task's quality maps deployments to shares of right answers, as *_fraction fields hold
    Case("quality-as-a-percentage",
         edit("    output_tokens: {kind: fixed, tokens: 50}\n",
              f"    output_tokens: {{kind: fixed, tokens: 50}}\n    quality: {{a: 95%}}  {MARK}\n"),
         "tasks[0].quality.a",
         ("expected a number; quality holds a fraction of 1: write a: 0.95", "got '95%'")),
    # a share bounded at 1 whose name does not say "fraction" (vLLM's utilisation)
    Case("utilisation-as-a-percentage",
         VALID + f"    engine: {{gpu_memory_utilization: 90%}}  {MARK}\n",
         "deployments.a.engine.gpu_memory_utilization",
         ("expected a number; a fraction of 1 (at most 1): write gpu_memory_utilization: 0.9",
          "got '90%'")),
    Case("duplicate-key", VALID + f"seed: 1\nseed: 2  {MARK}\n", "seed",
         ("duplicate key", f"first given on line {line_of(VALID + 'seed: 1', 'seed: 1')}")),
    Case("unknown-top-level-key", VALID + f"slos: {{ttft_ms: 100}}  {MARK}\n", "slos",
         ("unknown key 'slos'", "did you mean 'slo'?", "expected one of:", "deployments")),
    Case("reference-mode-autoscaling",
         VALID + "    autoscaling: {min_replicas: 1, max_replicas: 2}  " + MARK
         + "\nsimulation: {mode: reference}\n",
         "deployments.a.autoscaling", ("reference simulates fixed fleets only", "mode fast")),
    Case("unknown-nested-key",
         VALID + f"    engine:\n      max_num_seq: 64  {MARK}\n",
         "deployments.a.engine.max_num_seq",
         ("unknown key 'max_num_seq'", "did you mean 'max_num_seqs'?", "max_num_batched_tokens")),
    # an optional section (failures: FailureSpec | None) names its keys too
    Case("unknown-key-in-an-optional-section",
         VALID + f"    failures: {{mtbf_hours: 500, mttr_minutes: 30}}  {MARK}\n",
         "deployments.a.failures.mttr_minutes",
         ("unknown key 'mttr_minutes'", "did you mean 'repair_minutes'?", "mtbf_hours")),
    Case("model-named-by-its-hub-repository",
         edit("    model: Llama-3.1-8B\n",
              f"    model: meta-llama/Llama-3.1-8B-Instruct  {MARK}\n"),
         "deployments.a.model",
         ("Hugging Face repository of the catalog's model 'Llama-3.1-8B'",
          "expected its catalog id")),
    Case("missing-tasks",
         edit("tasks:\n  - name: chat\n    prompt_tokens: {kind: fixed, tokens: 100}\n"
              "    output_tokens: {kind: fixed, tokens: 50}\n", ""),
         "tasks", ("required field is missing",), line=1),
    # a missing field says what it holds: a catalog id, a number within its bounds
    Case("missing-nested-field", edit("    gpu: H100-SXM\n", ""), "deployments.a.gpu",
         ("required field is missing; expected a GPU catalog id (llmplan catalog), e.g. "
          "H100-SXM",), line=line_of(VALID, "  a:")),
    Case("missing-bounded-number",
         edit("  kind: poisson\n  rate_per_s: 2\n", "  kind: diurnal\n  mean_rate_per_s: 2\n"),
         "traffic.peak_to_mean",
         ("required field is missing; expected a number above 1 and at most 50",),
         line=line_of(VALID, "traffic:")),
    Case("missing-token-lengths",
         edit("    prompt_tokens: {kind: fixed, tokens: 100}\n", ""), "tasks[0].prompt_tokens",
         ("required field is missing; expected a mapping such as {{kind: fixed, ...}}",),
         line=line_of(VALID, "- name: chat")),
    Case("replicas-is-a-string", VALID + f"    replicas: many  {MARK}\n", "deployments.a.replicas",
         ("valid integer", "'many'")),
    Case("negative-rate", edit("rate_per_s: 2\n", f"rate_per_s: -3  {MARK}\n"),
         "traffic.rate_per_s", ("greater than 0", "-3")),
    Case("too-many-requests", edit("rate_per_s: 2\n", "rate_per_s: 1e9\n"),
         "traffic", ("about 600,000,000,000 requests", "at most 20,000,000", "shorten duration"),
         line=line_of(VALID, "traffic:")),
    # 1,200 conversations of 1 + 4,999.5 x 64 requests on average: 384 million
    Case("too-many-session-requests",
         edit("    output_tokens: {kind: fixed, tokens: 50}\n",
              "    output_tokens: {kind: fixed, tokens: 50}\n"
              f"    session: {{kind: chat, turns_min: 1, turns_max: 10000, fan_out: 64}}"
              f"  {MARK}\n"),
         "tasks[0].session", ("about 319,969 requests each", "at most 20,000,000",
                             "lower turns_max or fan_out")),
    # gaps of CV 40 spread a window's count by about 40 x sqrt(N) (a renewal count's
    # variance is cv^2 N): 2/s for 600 s is N = 1,200, spread 1,386, more than N itself;
    # the most that leaves the spread below N is sqrt(1,200) = 34.6 (a CV of 1e12 had
    # asked numpy for a 50 TiB array of gaps and ended in a MemoryError traceback)
    Case("gaps-too-bursty-for-the-window",
         edit("  kind: poisson\n  rate_per_s: 2\n",
              f"  kind: gamma\n  rate_per_s: 2\n  cv: 40  {MARK}\n"),
         "traffic.cv", ("spread the window's request count by about 1.39e+03",
                        "around the 1,200 expected in 600 s", "expected cv at most 34.6")),
    Case("spike-after-the-run", edit("rate_per_s: 2\n", "rate_per_s: 2\n  spikes:\n"
                                     f"    - {{start_s: 900, duration_s: 60, multiplier: 3}}"
                                     f"  {MARK}\n"),
         "traffic.spikes[0].start_s", ("past the simulated window", "below 600")),
    Case("boolean-key", VALID + f"  off:  {MARK}\n    gpu: H100-SXM\n    model: Llama-3.1-8B\n",
         "deployments.off", ("reads as a YAML boolean", "quoted ('off')")),
    Case("boolean-as-number", VALID + f"    replicas: yes  {MARK}\n", "deployments.a.replicas",
         ("expected a number, got true", "yes/no")),
    Case("zero-replicas", VALID + f"    replicas: 0  {MARK}\n", "deployments.a.replicas",
         ("greater than 0", "got 0")),
    Case("infinite-rate", edit("rate_per_s: 2\n", f"rate_per_s: .inf  {MARK}\n"),
         "traffic.rate_per_s", ("finite number",)),
    # a share of right answers, said at the deployment it is given for
    Case("quality-above-one",
         edit("    output_tokens: {kind: fixed, tokens: 50}\n",
              f"    output_tokens: {{kind: fixed, tokens: 50}}\n    quality: {{a: 1.5}}  {MARK}\n"),
         "tasks[0].quality.a", ("less than or equal to 1", "1.5")),
    Case("memory-fraction-above-one",
         VALID + f"    engine:\n      gpu_memory_utilization: 1.5  {MARK}\n",
         "deployments.a.engine.gpu_memory_utilization", ("less than or equal to 1", "1.5")),
    Case("unknown-traffic-kind", edit("  kind: poisson\n", f"  kind: poison  {MARK}\n"),
         "traffic.kind",
         ("unknown kind 'poison'", "did you mean 'poisson'?", "constant", "diurnal")),
    # a deployment's kind (local when left out) is said as the traffic's is, at the kind
    Case("unknown-deployment-kind", edit("    gpu: H100-SXM\n", f"    kind: clod  {MARK}\n"),
         "deployments.a.kind",
         ("unknown kind 'clod'", "did you mean 'cloud'?", "expected one of: local, cloud, hybrid")),
    Case("traffic-without-kind", edit("  kind: poisson\n", ""), "traffic.kind",
         ("required field is missing", "poisson", "gamma"), line=line_of(VALID, "traffic:")),
    Case("unknown-length-kind",
         edit("prompt_tokens: {kind: fixed, tokens: 100}",
              f"prompt_tokens: {{kind: gaussian, mean: 100}}  {MARK}"),
         "tasks[0].prompt_tokens.kind",
         ("unknown kind 'gaussian'", "fixed", "uniform", "lognormal", "exponential", "empirical")),
    Case("lognormal-p95-below-mean",
         edit("output_tokens: {kind: fixed, tokens: 50}",
              f"output_tokens: {{kind: lognormal, mean: 200, p95: 150}}  {MARK}"),
         "tasks[0].output_tokens", ("p95 must be larger than mean",)),
    Case("lognormal-too-skewed",
         edit("prompt_tokens: {kind: fixed, tokens: 100}",
              f"prompt_tokens: {{kind: lognormal, mean: 100, p95: 5000}}  {MARK}"),
         "tasks[0].prompt_tokens", ("p95/mean = 50.00", f"at most {MAX_SKEW}", "empirical")),
    Case("uniform-max-below-min",
         edit("prompt_tokens: {kind: fixed, tokens: 100}",
              f"prompt_tokens: {{kind: uniform, min_tokens: 500, max_tokens: 100}}  {MARK}"),
         "tasks[0].prompt_tokens", ("max_tokens must be >= min_tokens",)),
    Case("bad-duration-string", edit("duration: 10m\n", f"duration: ten minutes  {MARK}\n"),
         "duration", ("expected a duration such as", "'ten minutes'")),
    Case("unknown-gpu", edit("    gpu: H100-SXM\n", f"    gpu: H100-SMX  {MARK}\n"),
         "deployments.a.gpu", ("unknown GPU 'H100-SMX'", "did you mean 'H100-SXM'?", "L40S")),
    # a family name: the GPUs of that model number, not the H200 (one letter off, another chip)
    Case("gpu-family-name", edit("    gpu: H100-SXM\n", f"    gpu: H100  {MARK}\n"),
         "deployments.a.gpu", ("unknown GPU 'H100'",
                               "did you mean 'H100-SXM' or 'H100-PCIe'?")),
    Case("unknown-model",
         edit("    model: Llama-3.1-8B\n", f"    model: Llama-3.1-9000B  {MARK}\n"),
         "deployments.a.model", ("unknown model 'Llama-3.1-9000B'", "expected one of:",
                                 "Llama-3.1-8B", "SmolLM2-135M")),
    # Llama-3.1-70B in bf16 is 70.55e9 x 2 B = 141.1 GB of weights; an L4 reports 22478 MiB
    # (23.57e9 B), x 0.9 = 21.2 GB usable. tp=4 still needs 35.3 GB of weights per GPU; tp=8
    # needs 17.6 GB + activations + reserve, which fits: so the smallest tp is 8.
    # LEAD: the message fragments after "Llama-3.1-70B" are the current llmplan.perf.memory
    # wording; they change with the vLLM memory-accounting rewrite (issue 10 part 1).
    Case("model-does-not-fit",
         edit("  a:\n    gpu: H100-SXM\n    model: Llama-3.1-8B\n",
              f"  big:  {MARK}\n    gpu: L4\n    model: Llama-3.1-70B\n"),
         "deployments.big", ("Llama-3.1-70B", "does not fit on L4", "20.2 GiB usable", "tp >= 8")),
    # vLLM: "Total number of attention heads (32) must be divisible by tensor parallel size
    # (3)" (vllm/config/model.py)
    Case("tp-does-not-divide-the-heads", VALID + f"    tp: 3  {MARK}\n", "deployments.a.tp",
         ("tp 3", "32 attention heads and 8 KV heads", "expected tp one of 1, 2, 4, 8")),
    # 28 heads split over 7 GPUs, 4 KV heads do not (vLLM's QKVParallelLinear)
    Case("tp-does-not-divide-the-kv-heads",
         edit("    model: Llama-3.1-8B\n", "    model: Qwen2.5-7B\n") + f"    tp: 7  {MARK}\n",
         "deployments.a.tp", ("tp 7", "28 attention heads and 4 KV heads",
                              "expected tp one of 1, 2, 4 for Qwen2.5-7B")),
    # an H100 server links 8 GPUs over NVLink; the simulator has no slower link between them
    Case("tp-beyond-one-server", VALID + f"    tp: 16  {MARK}\n", "deployments.a.tp",
         ("tp 16", "(8, catalog interconnect_domain_gpus)", "no model of the slower link",
          "expected tp one of 1, 2, 4, 8")),
    # 810 GB of bf16 weights: not within the 8 GPUs of an H100 server at any tp, so the
    # fewest servers that hold it, a stage per server (vLLM's advice)
    Case("model-does-not-fit-any-tp",
         edit("  a:\n    gpu: H100-SXM\n    model: Llama-3.1-8B\n",
              f"  huge:  {MARK}\n    gpu: H100-SXM\n    model: Llama-3.1-405B\n"),
         "deployments.huge", ("does not fit on H100-SXM",
                              "expected tp 8 x pp 2 (16 GPUs, 2 servers)")),
    # servers of one L4 each: 16 stages of 24 GB do not hold 810 GB
    Case("model-does-not-fit-any-layout",
         edit("  a:\n    gpu: H100-SXM\n    model: Llama-3.1-8B\n",
              f"  huge:  {MARK}\n    gpu: L4\n    model: Llama-3.1-405B\n"
              "    costs: {gpus_per_server: 1}\n"),
         "deployments.huge", ("does not fit on L4", "expected a bigger GPU")),
    # vLLM's --block-size choices are 1, 8, 16, 32, 64, 128, 256 (vllm/config/cache.py); its
    # GPU attention kernels take multiples of 16 (vllm-project/vllm#42510 for 1 and 8)
    Case("block-size-vllm-has-not",
         VALID + f"    engine:\n      block_size_tokens: 48  {MARK}\n",
         "deployments.a.engine.block_size_tokens",
         ("block size 48", "expected one of 16, 32, 64, 128, 256")),
    Case("block-size-below-the-gpu-kernels",
         VALID + f"    engine:\n      block_size_tokens: 8  {MARK}\n",
         "deployments.a.engine.block_size_tokens",
         ("block size 8", "multiples of 16", "expected one of 16, 32, 64, 128, 256")),
    # an H100 reports 81105.7 MiB = 79.20 GiB; the CUDA context takes 0.6 GiB; Llama-3.1-8B's
    # bf16 weights are 8.03e9 x 2 B = 14.96 GiB. vLLM 0.33 runs it on Model Runner V2: the
    # profiling peak is its sampler's warm-up, the 16-bit logits (1024 x 128256 x 2 B =
    # 0.245 GiB) and the fp32 pipeline's 1.55 copies (1.55 x 0.489 = 0.758) next to the
    # 0.0625 of hidden vectors, 1.066 in all (above the forward pass, 8192 tokens x
    # (2 x 4096 + 3 x 14336) x 2 B = 0.781); non-torch 0.13; CUDA graphs captured up to 512
    # tokens 0.05 + 512 x 1.43 MiB = 0.765; the sampler's penalty counts and the grammar
    # bitmask 1024 x (128256 + 2 x 4008) x 4 B = 0.520. Left for the KV cache: 79.20 - 0.6 -
    # 14.96 - 1.066 - 0.13 - 0.765 - 0.520 = 61.16 GiB, not 200.
    Case("kv-cache-memory-beyond-the-card",
         VALID + f"    engine:\n      kv_cache_memory_gib: 200  {MARK}\n",
         "deployments.a.engine.kv_cache_memory_gib",
         ("engine.kv_cache_memory_gib 200 is more than H100-SXM has left",
                           "61.2 of its 79.2 GiB", "run out of memory",
                           "expected kv_cache_memory_gib <= 61.16")),
    # kv_cache_tokens replaces the KV budget, not the card: 600,000 tokens of Llama-3.1-8B
    # are 600,000 x 128 KiB = 73.2 GiB next to 14.96 GiB of weights on a 79.2 GiB H100
    Case("kv-cache-tokens-beyond-the-card",
         edit("  a:\n", f"  a:  {MARK}\n") + "    engine:\n      kv_cache_tokens: 600000\n",
         "deployments.a", ("engine.kv_cache_tokens 600000 does not fit on H100-SXM",
                           "KV cache 73.2, CUDA graphs 0.77, Model Runner V2's buffers 0.52), "
                           "the card has 79.2",
                           "expected fewer kv_cache_tokens")),
    # the stack provisions autoscaling as an HPA: whole seconds up to 1800
    Case("autoscaling-cooldown-beyond-the-hpa",
         VALID + "    autoscaling:\n      max_replicas: 3\n"
         + f"      cooldown_s: 3000  {MARK}\n",
         "deployments.a.autoscaling.cooldown_s", ("less than or equal to 1800",)),
    Case("autoscaling-interval-in-fractions",
         VALID + f"    autoscaling:  {MARK}\n      max_replicas: 3\n      interval_s: 2.5\n",
         "deployments.a.autoscaling", ("interval_s 2.5 is not whole seconds",
                                       "HorizontalPodAutoscaler")),
    # the conflict is the engine setting's, reported where it is set
    Case("speculative-with-data-parallel-ranks",
         edit("    model: Llama-3.1-8B\n", "    model: Qwen3-30B-A3B\n    tp: 2\n")
         + "    engine:\n      expert_parallel: true\n"
         + f"      data_parallel_attention: true  {MARK}\n"
         + "      speculative: {method: ngram, mean_acceptance_length: 1.5}\n",
         "deployments.a.engine.data_parallel_attention",
         ("engine.speculative with engine.data_parallel_attention is not modelled",
          "expected engine.speculative left out, or data_parallel_attention: false")),
    # vLLM's SchedulerConfig: "max_num_batched_tokens (4096) is smaller than max_model_len
    # (131072)" without chunked prefill (a whole prompt must fit one step)
    Case("whole-prompts-beyond-the-token-budget",
         edit("  a:\n", f"  a:  {MARK}\n") + "    engine:\n      chunked_prefill: false\n"
         "      max_num_batched_tokens: 4096\n",
         "deployments.a", ("engine.max_num_batched_tokens 4096 is below max_model_len 131072",
                           "engine.chunked_prefill: false", "expected max_num_batched_tokens "
                           ">= 131072, max_model_len <= 4096 or chunked_prefill: true")),
    # 0.999 of 79.20 GiB leaves 0.08 GiB outside the budget, and the CUDA context vLLM starts
    # with takes 0.6 GiB of the device (vLLM >= 0.21 budgets its CUDA graphs): at most
    # 1 - 0.6 / 79.20 = 0.9924 -> 0.99
    Case("memory-utilisation-leaves-no-room-for-the-cuda-context",
         VALID + f"    engine:\n      gpu_memory_utilization: 0.999  {MARK}\n",
         "deployments.a.engine.gpu_memory_utilization",
         ("engine.gpu_memory_utilization 0.999 leaves 0.08 of H100-SXM's "
                           "79.2 GiB outside vLLM's budget", "CUDA context",
                           "about 0.6 GiB", "refuses to start",
                           "expected gpu_memory_utilization <= 0.99")),
    # before vLLM 0.21 the CUDA graphs are captured outside the budget too: 0.6 + 0.765 GiB,
    # at most 1 - 1.365 / 79.20 = 0.9828 -> 0.98
    Case("memory-utilisation-leaves-no-room-for-cuda-graphs",
         VALID + f"    engine:\n      gpu_memory_utilization: 0.99  {MARK}\n"
         "      vllm_version: '0.11.0'\n",
         "deployments.a.engine.gpu_memory_utilization",
         ("engine.gpu_memory_utilization 0.99 leaves 0.79 of H100-SXM's "
                           "79.2 GiB outside vLLM's budget", "CUDA graphs",
                           "about 0.77 GiB", "expected gpu_memory_utilization <= 0.98",
                           "enforce_eager")),
    # a fitted step time whose decoding steps would take no time (infinite throughput)
    Case("linear-step-time-of-nothing",
         VALID + f"    step_time:  {MARK}\n      kind: linear\n      fixed_ms: 0\n"
         "      per_prefill_token_us: 0\n      per_decode_seq_us: 0\n      per_kv_token_ns: 0\n",
         "deployments.a.step_time", ("a decoding step would take no time",
                                     "expected at least one of them > 0")),
    Case("tabulated-step-time-of-nothing",
         VALID + f"    step_time:  {MARK}\n      kind: tabulated\n"
         "      tokens_ms: [[1, 0], [512, 0]]\n      per_kv_token_ns: 0\n",
         "deployments.a.step_time", ("a step of one decode token would take no time",
                                     "expected the first point's milliseconds > 0")),
    Case("batch-budget-below-max-seqs",
         VALID + f"    engine:  {MARK}\n      max_num_seqs: 512\n"
         "      max_num_batched_tokens: 256\n",
         "deployments.a.engine", ("max_num_batched_tokens must be >= max_num_seqs",)),
    # vLLM's flags read 32k as 32,000 and 32K as 32,768 (human_readable_int); the scenario
    # takes plain numbers, and says which (as "2000ms" and "95%" are answered)
    Case("engine-count-with-a-suffix",
         VALID + f"    engine:\n      max_model_len: 32k  {MARK}\n",
         "deployments.a.engine.max_model_len",
         ("expected a number; write max_model_len: 32000", "K, M, G of 1,024", "got '32k'")),
    # PyYAML (YAML 1.1) reads 1e5 as text: its floats need a dot and a signed exponent
    Case("whole-number-in-exponent-notation",
         VALID + f"    engine:\n      max_model_len: 1e5  {MARK}\n",
         "deployments.a.engine.max_model_len",
         ("expected a whole number; YAML reads 1e5 as text, not a number: "
          "write max_model_len: 100000",)),
    Case("absurd-engine-number",
         VALID + f"    engine:\n      max_num_batched_tokens: {'9' * 40}  {MARK}\n",
         "deployments.a.engine.max_num_batched_tokens", ("less than or equal to",)),
    Case("duplicate-task-names",
         edit("deployments:\n", "  - name: chat\n    prompt_tokens: {kind: fixed, tokens: 1}\n"
              "    output_tokens: {kind: fixed, tokens: 1}\ndeployments:\n"),
         "tasks", ("task names must be unique", "'chat' (tasks[0] and tasks[1])"),
         line=line_of(VALID, "tasks:")),
    Case("missing-trace-file",
         edit("kind: poisson\n  rate_per_s: 2", TRACE_TRAFFIC.format(name="nowhere.csv")),
         "traffic.path", ("{dir}/nowhere.csv", "trace file not found")),
    Case("trace-with-bad-row",
         edit("kind: poisson\n  rate_per_s: 2", TRACE_TRAFFIC.format(name="t.csv")),
         "traffic.path", ("{dir}/t.csv:4: prompt_tokens: expected a whole number of tokens "
                          "up to 100,000,000, got 'many'",),
         files={"t.csv": CSV_HEADER + "0,10,5,chat\n1.5,12,6,chat\n3,many,6,chat\n4,1,1,chat\n"}),
    Case("trace-with-blank-lines-before-a-bad-row",   # named by the file's own line
         edit("kind: poisson\n  rate_per_s: 2", TRACE_TRAFFIC.format(name="t.csv")),
         "traffic.path", ("{dir}/t.csv:5: prompt_tokens:",),
         files={"t.csv": CSV_HEADER + "0,10,5,chat\n\n\n1,abc,6,chat\n"}),
    Case("trace-with-empty-cell",
         edit("kind: poisson\n  rate_per_s: 2", TRACE_TRAFFIC.format(name="t.csv")),
         "traffic.path", ("{dir}/t.csv:3: output_tokens: missing; expected a whole number",),
         files={"t.csv": CSV_HEADER + "0,10,5,chat\n1,100,,chat\n"}),
    Case("trace-with-short-row",
         edit("kind: poisson\n  rate_per_s: 2", TRACE_TRAFFIC.format(name="t.csv")),
         "traffic.path", ("{dir}/t.csv:3: output_tokens: missing",),
         files={"t.csv": CSV_HEADER + "0,10,5,chat\n1,100\n"}),
    Case("trace-with-a-value-past-the-header",
         edit("kind: poisson\n  rate_per_s: 2", TRACE_TRAFFIC.format(name="t.csv")),
         "traffic.path", ("{dir}/t.csv:2: 1 value(s) more than the header's columns",),
         files={"t.csv": CSV_HEADER + "0,10,5,chat,9\n"}),
    Case("trace-with-fractional-tokens-or-a-word-for-a-time",
         edit("kind: poisson\n  rate_per_s: 2", TRACE_TRAFFIC.format(name="t.csv")),
         "traffic.path", ("{dir}/t.csv:2: timestamp: expected a finite number of seconds or an "
                          "ISO date-time, got 'abc'",),
         files={"t.csv": CSV_HEADER + "abc,100.5,5,chat\n"}),
    Case("trace-with-non-finite-time",
         edit("kind: poisson\n  rate_per_s: 2", TRACE_TRAFFIC.format(name="t.csv")),
         "traffic.path", ("{dir}/t.csv:3:", "finite"),
         files={"t.csv": CSV_HEADER + "0,10,5,chat\ninf,12,6,chat\n"}),
    # a conversation's pause must stay a time the clock can hold (a year at most)
    Case("trace-with-infinite-pause",
         edit("kind: poisson\n  rate_per_s: 2", TRACE_TRAFFIC.format(name="t.csv")),
         "traffic.path", ("{dir}/t.csv:3:", "think_s", "expected between 0 and",
                          "31,536,000 seconds (a year), got 'inf'"),
         files={"t.csv": "timestamp,prompt_tokens,output_tokens,session,turn,think_s\n"
                         "0,100,10,1,0,0\n1,100,10,1,1,inf\n"}),
    Case("trace-with-infinite-token-count",
         edit("kind: poisson\n  rate_per_s: 2", TRACE_TRAFFIC.format(name="t.jsonl")),
         "traffic.path", ("{dir}/t.jsonl:3: prompt_tokens: expected a whole number of tokens "
                          "up to 100,000,000, got inf",),
         files={"t.jsonl": '{"timestamp": 0, "prompt_tokens": 9, "output_tokens": 5}\n\n'
                           '{"timestamp": 1, "prompt_tokens": 1e400, "output_tokens": 5}\n'}),
    Case("trace-with-huge-integer-time",
         edit("kind: poisson\n  rate_per_s: 2", TRACE_TRAFFIC.format(name="t.jsonl")),
         "traffic.path", ("{dir}/t.jsonl:1: timestamp: expected a finite number of seconds",),
         files={"t.jsonl": '{"timestamp": 1' + "0" * 400 + ', "prompt_tokens": 9, '
                           '"output_tokens": 5}\n'}),
    Case("trace-with-unknown-task",
         edit("kind: poisson\n  rate_per_s: 2", TRACE_TRAFFIC.format(name="t.csv")),
         "traffic.path", ("trace has task(s) triage not in tasks", "expected one of: chat"),
         files={"t.csv": CSV_HEADER + "0,10,5,chat\n1,12,6,triage\n"}),
    Case("empirical-length-missing-file",
         edit("output_tokens: {kind: fixed, tokens: 50}",
              "output_tokens:\n      kind: empirical\n      column: output_tokens\n"
              f"      path: gone.jsonl  {MARK}"),
         "tasks[0].output_tokens.path", ("{dir}/gone.jsonl", "trace file not found")),
    # typed lengths beside a file silently replaced the file's
    Case("empirical-length-values-typed",
         edit("output_tokens: {kind: fixed, tokens: 50}",
              "output_tokens:\n      kind: empirical\n      column: output_tokens\n"
              f"      path: t.csv\n      values: [7777]  {MARK}"),
         "tasks[0].output_tokens.values", ("the lengths come from `path`",),
         files={"t.csv": CSV_HEADER + "0,10,5,chat\n"}),
    Case("no-candidates",
         VALID[:VALID.index("deployments:")] + f"deployments: {{}}  {MARK}\n",
         "deployments", ("expected at least 1 entry, got none",)),
    # a value of the wrong shape is said in YAML's words, with what the file gave: never
    # pydantic's "valid dictionary or instance of SloSpec" or "object to extract fields from"
    Case("deployments-given-as-a-list",
         VALID[:VALID.index("deployments:")] + f"deployments:  {MARK}\n  - gpu: H100-SXM\n"
         "    model: Llama-3.1-8B\n",
         "deployments", ("expected a mapping: one 'name: value' line per entry", "(got a list)")),
    Case("slo-given-as-a-list", VALID + f"slo: [1500, 60]  {MARK}\n", "slo",
         ("expected a mapping of settings: ttft_ms, tpot_ms", "(got a list)")),
    Case("token-lengths-given-as-a-number",
         edit("    prompt_tokens: {kind: fixed, tokens: 100}\n",
              f"    prompt_tokens: 100  {MARK}\n"),
         "tasks[0].prompt_tokens",
         ("expected a mapping such as {{kind: fixed, ...}}", "kind is one of fixed, uniform",
          "(got 100)")),
    # a deployment written as its GPU: said at the deployment, with the kinds a deployment
    # has, never at the tag pydantic tried (deployments.a.local)
    Case("deployment-given-as-a-gpu",
         VALID[:VALID.index("deployments:")] + f"deployments:\n  a: H100-SXM  {MARK}\n",
         "deployments.a",
         ("expected a mapping such as {{kind: local, ...}}", "kind is one of local, cloud, "
          "hybrid", "(got 'H100-SXM')")),
    Case("tasks-given-as-a-mapping",
         edit("tasks:\n  - name: chat\n    prompt_tokens: {kind: fixed, tokens: 100}\n"
              "    output_tokens: {kind: fixed, tokens: 50}\n",
              f"tasks:  {MARK}\n  name: chat\n  prompt_tokens: {{kind: fixed, tokens: 100}}\n"
              "  output_tokens: {kind: fixed, tokens: 50}\n"),
         "tasks", ("expected a list: one '- ' line per item", "(got a mapping)")),
    # a number written with its unit, in a field whose name carries the unit: the number to
    # write, converted (2 s is 2,000 ms; 180 a minute is 3 a second)
    Case("unit-written-into-a-milliseconds-field",
         VALID + f"slo: {{ttft_ms: 2 s}}  {MARK}\n", "slo.ttft_ms",
         ("expected a number", "(milliseconds): write ttft_ms: 2000", "(got '2 s')")),
    Case("rate-written-per-minute",
         edit("rate_per_s: 2\n", f"rate_per_s: 180/min  {MARK}\n"), "traffic.rate_per_s",
         ("expected a number", "(per second): write rate_per_s: 3 ", "(got '180/min')")),
    # a GPU as nvidia-smi prints it, a cloud model by the provider's id: the catalog's entry
    Case("gpu-named-as-nvidia-smi-prints-it",
         edit("    gpu: H100-SXM\n", f"    gpu: NVIDIA H100 80GB HBM3  {MARK}\n"),
         "deployments.a.gpu", ("did you mean 'H100-SXM' or 'H100-PCIe'?",)),
    Case("cloud-model-by-the-providers-id",
         VALID + f"  c: {{kind: cloud, model: claude-sonnet-4-5-20250929}}  {MARK}\n",
         "deployments.c.model",
         ("provider's model id of the catalog's 'claude-sonnet-4.5' (anthropic)",
          "expected its catalog id, 'claude-sonnet-4.5'")),
    # a value in another case than the one the field takes: the one meant
    Case("weights-dtype-in-capitals",
         edit("    model: Llama-3.1-8B\n",
              f"    model: Llama-3.1-8B\n    engine: {{weights_dtype: FP8}}  {MARK}\n"),
         "deployments.a.engine.weights_dtype", ("(did you mean 'fp8'?)", "(got 'FP8')")),
    # a mapping given one number: what the mapping is of, from the field's description
    Case("quality-given-one-number",
         edit("    output_tokens: {kind: fixed, tokens: 50}\n",
              f"    output_tokens: {{kind: fixed, tokens: 50}}\n    quality: 0.9  {MARK}\n"),
         "tasks[0].quality", ("expected a mapping", "per deployment name", "(got 0.9)")),
    Case("catalog-override-wrong-type",
         VALID + f"catalog:\n  gpus:\n    L4:\n      memory_mib: lots  {MARK}\n",
         "catalog.gpus.L4.memory_mib", ("valid number",)),
    Case("catalog-override-misspelt-key",
         VALID + f"catalog:\n  gpus:\n    L4:\n      peer_to_peers: false  {MARK}\n",
         "catalog.gpus.L4.peer_to_peers",
         ("unknown key 'peer_to_peers'", "did you mean 'peer_to_peer'?",
          "expected one of: ", "host_allreduce_bus_gb_per_s")),
    Case("catalog-override-wrong-type-says-what-it-got",
         VALID + f"catalog:\n  gpus:\n    L4:\n      tdp_w: hot  {MARK}\n",
         "catalog.gpus.L4.tdp_w", ("valid number", "(got 'hot')")),
    Case("catalog-price-date-not-a-date",
         VALID + f"catalog:\n  gpus:\n    L4:\n      prices_as_of: last spring  {MARK}\n",
         "catalog.gpus.L4.prices_as_of", ("valid date",)),
    Case("catalog-sources-not-a-mapping",
         VALID + f"catalog:\n  gpus:\n    L4:\n      sources: 3  {MARK}\n",
         "catalog.gpus.L4.sources", ("expected a mapping", "(got 3)")),
    Case("catalog-infinite-memory",
         VALID + f"catalog:\n  gpus:\n    H100-SXM:\n      memory_mib: .inf  {MARK}\n",
         "catalog.gpus.H100-SXM.memory_mib", ("finite number",)),
    Case("catalog-experts-without-routing",
         VALID + f"catalog:\n  models:\n    Llama-3.1-8B:  {MARK}\n      experts: 8\n",
         "catalog.models.Llama-3.1-8B", ("experts_per_token", "moe_intermediate_size")),
    Case("catalog-absurd-number",
         VALID + f"catalog:\n  models:\n    Llama-3.1-8B:\n      layers: {'9' * 40}  {MARK}\n",
         "catalog.models.Llama-3.1-8B.layers", ("at most",)),
    Case("recursive-alias", VALID + f"description: &d [1, *d]  {MARK}\n", "description[1]",
         ("recursive alias",)),
    # a field that is a union (a list of routes, or 'seed'): one line naming both, no
    # pydantic member labels ("routes.list[Route]") in the path
    Case("routes-neither-list-nor-seed",
         VALID + HYBRID + f"    routes: everything  {MARK}\n", "deployments.h.routes",
         ("expected a list: one '- ' line per item, or [a, b]; or 'seed'", "got 'everything'")),
    # a mistyped key inside one listed route: said there, with what the key could be
    Case("route-key-mistyped",
         VALID + HYBRID + f"    routes: [{{task: [chat], to: cloud}}]  {MARK}\n",
         "deployments.h.routes[0].task", ("unknown key 'task'", "did you mean 'tasks'")),
    Case("kv-dtype-unknown",
         edit("    model: Llama-3.1-8B\n",
              f"    model: Llama-3.1-8B\n    engine: {{kv_dtype: int4}}  {MARK}\n"),
         "deployments.a.engine.kv_dtype", ("fp8_e4m3, fp8_e5m2, auto", "got 'int4'")),
    Case("tp-given-a-list", edit("    model: Llama-3.1-8B\n",
                                 f"    model: Llama-3.1-8B\n    tp: [2]  {MARK}\n"),
         "deployments.a.tp", ("valid integer", "got a list")),
    # a hybrid's own quality rate stands in only for a part without one: beside both
    # parts' rates it would be read nowhere, and the report would not show it
    Case("hybrid-quality-read-nowhere",
         edit("    output_tokens: {kind: fixed, tokens: 50}\n",
              "    output_tokens: {kind: fixed, tokens: 50}\n"
              f"    quality: {{a: 0.7, c: 0.9, h: 0.1}}  {MARK}\n", VALID + HYBRID),
         "tasks[0].quality.h", ("not used", "a and c", "(0.7 and 0.9)")),
]


def _write(tmp_path: Path, case: Case) -> Path:
    for name, content in case.files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    path = tmp_path / "bad.yaml"
    path.write_text(case.text, encoding="utf-8")
    return path


def _expected_line(case: Case) -> int:
    return case.line if case.line is not None else line_of(case.text, MARK)


def _the_problem(error: ScenarioError, path: str) -> Problem:
    matching = [p for p in error.problems if p.path == path]
    assert len(matching) == 1, f"expected one problem at {path!r}, got:\n{error}"
    return matching[0]


def test_the_base_scenario_is_valid() -> None:
    loaded = load_scenario_text(VALID, file="valid.yaml")
    assert [t.name for t in loaded.scenario.tasks] == ["chat"]
    assert loaded.scenario.duration_s == 600.0


def test_gaps_as_bursty_as_the_window_holds_are_accepted() -> None:
    """The bound on traffic.cv is the square root of the requests expected (2/s for 600 s:
    sqrt(1,200) = 34.64): just under it loads, just over it is refused."""
    gamma = "  kind: gamma\n  rate_per_s: 2\n  cv: {cv}\n"
    load_scenario_text(edit("  kind: poisson\n  rate_per_s: 2\n", gamma.format(cv=34.6)))
    with pytest.raises(ScenarioError, match=r"expected cv at most 34\.6"):
        load_scenario_text(edit("  kind: poisson\n  rate_per_s: 2\n", gamma.format(cv=34.7)))


def test_exponent_notation_yaml_reads_as_a_number_is_taken() -> None:
    """The other way to write 1e5 that the hint above implies: with a dot and a signed
    exponent PyYAML reads a float, and a whole one fills an integer field."""
    loaded = load_scenario_text(VALID + "    engine:\n      max_model_len: 1.0e+5\n")
    deployment = loaded.scenario.deployments["a"]
    assert isinstance(deployment, LocalDeployment)
    assert deployment.engine.max_model_len == 100_000


def test_case_ids_are_distinct() -> None:
    assert len(CASES) >= 18
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({(c.text, tuple(sorted(c.files.items()))) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_names_file_line_path_and_expectation(tmp_path: Path, case: Case) -> None:
    path = _write(tmp_path, case)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    problem = _the_problem(info.value, case.path)
    line = _expected_line(case)
    assert problem.file == str(path)
    assert problem.line == line, str(info.value)
    for fragment in case.fragments:
        assert fragment.format(dir=tmp_path.resolve()) in problem.message, str(info.value)
    # and the rendered error reads "file:line: dotted.path: message"
    field = f"{case.path}: " if case.path else ""
    assert f"{path}:{line}: {field}{problem.message}" in str(info.value)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_load_scenario_text_raises_nothing_but_scenario_error(tmp_path: Path, case: Case) -> None:
    _write(tmp_path, case)  # the trace files, for the cases that need them
    with pytest.raises(Exception) as info:  # the exact type is checked below
        load_scenario_text(case.text, file="given.yaml", base_dir=tmp_path)
    assert type(info.value) is ScenarioError, repr(info.value)
    assert info.value.problems
    for problem in info.value.problems:
        assert problem.file == "given.yaml" or problem.file.startswith(str(tmp_path.resolve()))


def test_missing_scenario_file_is_a_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    (problem,) = info.value.problems
    assert problem.file == str(path)
    assert "file not found" in problem.message


def test_yaml_nested_beyond_the_recursion_limit_is_a_scenario_error() -> None:
    text = "description: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, file="deep.yaml")
    assert any("nested too deeply" in p.message for p in info.value.problems)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = edit("rate_per_s: 2\n", "rate_per_s: 0\n") + "    replicas: many\n"
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, file="two.yaml")
    assert {p.path for p in info.value.problems} == {"traffic.rate_per_s",
                                                      "deployments.a.replicas"}
    assert "(2 problems)" in str(info.value)


def _cli(tmp_path: Path, case: Case) -> tuple[int, str, BaseException | None]:
    path = _write(tmp_path, case)
    result = CliRunner().invoke(app, ["simulate", str(path), "--out", str(tmp_path / "out")])
    return result.exit_code, result.output, result.exception


def _squash(text: str) -> str:
    return "".join(text.split())  # the console wraps long lines anywhere


@pytest.mark.parametrize("case_id", ["replicas-is-a-string", "unknown-gpu", "yaml-syntax",
                                     "trace-with-bad-row"])
def test_cli_simulate_exits_2_with_the_message_and_no_traceback(tmp_path: Path,
                                                                case_id: str) -> None:
    case = next(c for c in CASES if c.id == case_id)
    code, output, exception = _cli(tmp_path, case)
    assert code == 2, output
    assert isinstance(exception, SystemExit)
    assert "Traceback" not in output
    assert not (tmp_path / "out").exists()
    path = tmp_path / "bad.yaml"
    expected = f"{path}:{_expected_line(case)}: {case.path}:" if case.path \
        else f"{path}:{_expected_line(case)}: "
    assert _squash(expected) in _squash(output)
    for fragment in case.fragments:
        assert _squash(fragment.format(dir=tmp_path.resolve())) in _squash(output)


def test_cli_prints_keys_that_look_like_markup_verbatim(tmp_path: Path) -> None:
    case = Case("markup-key", VALID + f'"[/x]": 1  {MARK}\n', "[/x]", ("unknown key",))
    code, output, _ = _cli(tmp_path, case)
    assert code == 2
    assert "unknown key '[/x]'" in output


def test_a_union_field_gets_one_line_not_one_per_member() -> None:
    for routes in ("everything", "[{task: [chat], to: cloud}]"):
        with pytest.raises(ScenarioError) as caught:
            load_scenario_text(VALID + HYBRID + f"    routes: {routes}\n")
        assert len(caught.value.problems) == 1, caught.value.problems
        assert "[Route]" not in str(caught.value) and "literal[" not in str(caught.value)


def test_a_hybrids_quality_stands_in_for_a_part_without_one() -> None:
    text = (VALID + HYBRID).replace("    output_tokens: {kind: fixed, tokens: 50}\n",
                                    "    output_tokens: {kind: fixed, tokens: 50}\n"
                                    "    quality: {a: 0.7, h: 0.9}\n")
    assert load_scenario_text(text).scenario.tasks[0].quality == {"a": 0.7, "h": 0.9}
