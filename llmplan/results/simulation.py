"""What a simulation produces, per deployment and for the whole run (typed result.json).

Units are in the field names. A local deployment has a `local` section (its GPU fleet), a
cloud one a `cloud` section (the API's accounting), a hybrid one both plus `hybrid` (which
path served what). Latency statistics follow the one percentile rule of `llmplan.stats`.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field

from llmplan.results._base import ResultModel


class LatencyStats(ResultModel):
    """Mean and percentiles of one latency (ms); None when nothing was measured."""

    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None


class Latency(ResultModel):
    """TTFT = first token - arrival; E2E = finish - arrival; TPOT = (E2E - TTFT) / (n - 1);
    ITL = every gap between tokens (TTFT excluded); queue wait = start - arrival."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("ttft_visible_ms",)

    ttft_ms: LatencyStats
    tpot_ms: LatencyStats
    itl_ms: LatencyStats
    e2e_ms: LatencyStats
    queue_wait_ms: LatencyStats
    ttft_visible_ms: LatencyStats | None = Field(
        default=None, description="Reasoning tasks: arrival to the first visible token, after "
                                  "the hidden reasoning tokens (TTFT + reasoning tokens x the "
                                  "request's own TPOT).")


class RequestCounts(ResultModel):
    """How every request of the stream ended."""

    total: int
    completed: int
    rejected: int
    timed_out: int = Field(description="Gave up: waited in a local queue past "
                                       "admission.queue_timeout_s, or an API call ran past "
                                       "retry.request_timeout_s on its last attempt.")
    too_long: int = Field(description="Prompt + output longer than the engine's "
                                      "max_model_len (the model's context, or the tokens its "
                                      "KV cache holds when that is less); for an API, than "
                                      "the model's context window, or an answer beyond its "
                                      "maximum output (refused, HTTP 400), or beyond the "
                                      "client's max_tokens (cut off: billed, no answer).")
    failed: int
    throttled: int
    blocked: int
    unfinished: int
    preempted: int
    preemptions: int
    conversation_ended: int | None = Field(
        default=None, description="Conversations' later turns never sent: an earlier turn "
                                  "of theirs ended without an answer (None: the workload "
                                  "has no conversations).")

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("conversation_ended",)

    #: How a request can end without an answer, as a reader says it.
    NOT_ANSWERED: ClassVar[tuple[tuple[str, str], ...]] = (
        ("timed_out", "timed out (queue wait or API call)"), ("rejected", "refused (queue full)"),
        ("too_long", "too long (context window, KV cache, maximum output or max_tokens)"),
        ("failed", "failed"),
        ("throttled", "throttled (429) past the retries"),
        ("blocked", "blocked (restricted, local refused)"),
        ("unfinished", "unfinished at the end of the run"),
        ("conversation_ended", "not sent: an earlier turn of the conversation failed"))

    def not_answered(self) -> list[tuple[int, str]]:
        """(count, how they ended) of each way requests went unanswered, commonest first."""
        found = [(getattr(self, key), words) for key, words in self.NOT_ANSWERED
                 if getattr(self, key)]
        return sorted(found, key=lambda cw: -cw[0])


class Throughput(ResultModel):
    """What finished inside the simulated duration, per second of it (and the output
    tokens offered in all)."""

    requests_per_s: float
    output_tokens_per_s: float
    input_tokens_per_s: float
    offered_requests_per_s: float
    offered_output_tokens: int = Field(
        description="Output tokens (hidden reasoning included) the stream's requests ask "
                    "for, answered or not, those finishing after the duration too: what the "
                    "month's cost per million output tokens divides by, as its cost per 1k "
                    "requests divides by the requests offered.")


class SloOutcome(ResultModel):
    """Goodput: requests that finished inside every SLO bound of their task."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("tasks_short",)

    goodput_fraction: float | None
    goodput_requests_per_s: float
    min_goodput_fraction: float
    met: bool
    tasks_short: list[str] | None = Field(
        default=None, description="Tasks with an SLO of their own whose requests fell short "
                                  "of the share it asks (the SLO is not met then, whatever "
                                  "the whole run's goodput).")

    def required_shown(self) -> str:
        """The required share as a percentage: whole where it is one (95%), else to a
        tenth (95.5%)."""
        whole = round(self.min_goodput_fraction * 100)
        if abs(self.min_goodput_fraction * 100 - whole) < 1e-9:
            return f"{whole}%"
        return f"{self.min_goodput_fraction:.1%}"

    def goodput_shown(self) -> str:
        """The goodput as a percentage, with as many decimals (1 to 4) as it takes for a
        miss to read under the required share: 94.96%, never a missed "95.0%"."""
        share = self.goodput_fraction
        if share is None:
            return "-"
        for digits in (1, 2, 3, 4):
            shown = f"{share:.{digits}%}"
            # a share at or above the bar (a task's own may be what missed) needs none
            if self.met or share >= self.min_goodput_fraction \
                    or float(shown[:-1]) / 100 < self.min_goodput_fraction:
                return shown
        return f"{math.floor(share * 1e6) / 1e4:.4f}%"    # cut, not rounded up to the bar


class LatencyCdf(ResultModel):
    """Percentiles 1..99 (ms), for the report's distribution charts."""

    ttft_ms: list[float]
    e2e_ms: list[float]


class Useful(ResultModel):
    """Expected useful results: requests inside the SLO times their task's share of right
    answers on the path that served them."""

    expected_useful_requests: float
    useful_fraction: float | None
    quality_source: str


class TaskOutcome(ResultModel):
    requests: int
    completed: int
    too_long: int = Field(default=0, description="Refused or cut off as too long (see "
                                                 "RequestCounts.too_long).")
    goodput_fraction: float | None
    served_cloud: int
    ttft_p95_ms: float | None
    e2e_p95_ms: float | None


class TimeSeries(ResultModel):
    """Per simulated minute."""

    minute: list[int]
    arrivals_per_s: list[float]
    completed_per_s: list[float]
    output_tokens_per_s: list[float]
    ttft_p95_ms: list[float | None]


class ScaleEvent(ResultModel):
    t_s: float
    replicas: int


class FleetOutcome(ResultModel):
    """Replicas over the run: failures, retries, autoscaling."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("max_replicas",)

    mean_active_replicas: float
    #: replicas loading their model (autoscaling's spin-up): rented GPUs are paid for from
    #: their start, so the rented hours are mean_active_replicas + this
    mean_loading_replicas: float = 0.0
    max_replicas: int | None = None
    failures: int
    requests_retried_after_failure: int
    scale_events: list[ScaleEvent]


class Utilisation(ResultModel):
    """How much of the fleet the workload used (llmplan/sim/hardware_use.py)."""

    achieved_requests_per_s: float = Field(
        description="Requests the fleet finished per second of the run.")
    full_batch_requests_per_s: float = Field(
        description="Requests per second the fleet would finish with every batch full, for "
                    "this workload's mix and the step model in use (llmplan/sim/"
                    "hardware_use.py). An upper bound when the KV cache is full: preemptions "
                    "then recompute work.")
    full_batch_sequences: int = Field(description="Sequences per replica in that full batch.")
    full_batch_limited_by: Literal["max_num_seqs", "kv_cache", "token_budget"] = Field(
        description="What caps the full batch: the engine's max_num_seqs, the KV cache (at "
                    "this mix's mean context) or the token budget (decodes plus the prefill "
                    "chunks that replace finished requests).")
    full_batch_step_bound_by: Literal["api_server", "cpu", "gpu_compute", "gpu_memory",
                                      "gpu_serial"] = Field(
        description="What sets a full-batch decode step's time: the API server streaming "
                    "the tokens (more engine.api_server_count helps), the engine's CPU "
                    "(async scheduling helps), the GPUs' FLOPs, their memory reads, or what "
                    "overlaps nothing on them (all-reduces, per-layer latency).")
    load_fraction: float = Field(description="achieved / full batch.")
    mfu_fraction: float = Field(
        description="Model FLOPs utilisation: FLOPs of the tokens computed over the GPUs' "
                    "peak dense FLOP/s for the weight format, over the run.")
    mbu_fraction: float = Field(
        description="Model bandwidth utilisation: bytes the steps read (weights each step, "
                    "KV cache of decoding sequences) over peak memory bandwidth, over the run.")
    kv_cache_mean_fraction: float = Field(
        description="KV cache blocks held over the pool, averaged over the run: a shared "
                    "prefix's blocks count once (vLLM's kv_cache_usage_perc), so never above 1.")
    engine_busy_fraction: float = Field(
        description="Share of the time a step was running (any request in flight); not how "
                    "hard the GPUs work (see mbu_fraction, load_fraction).")
    queue_depth_mean: float
    queue_depth_max: float


class StepTimeCoefficients(ResultModel):
    """The step model in use (llmplan/sim/stepmodel.py): max(compute, memory) + serial,
    next to the CPU's part; P prefill tokens, D decoding sequences, K KV tokens read, pairs
    of prefill attention. A calibrated or linear model is all serial."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("launch_ms", "upproject_per_context_token_ns")

    serial_ms: float
    serial_per_token_us: float
    #: a tabulated (measured) model's [tokens in the step, ms] points; past the last,
    #: serial_per_token_us per token
    serial_tokens_ms: list[tuple[int, float]] | None = None
    serial_per_prefill_token_us: float
    serial_per_seq_us: float
    serial_per_kv_token_ns: float
    serial_per_pair_ns: float
    compute_per_token_us: float
    compute_per_pair_ns: float
    compute_per_prefill_pair_ns: float
    compute_per_window_seq_us: float
    #: the sliding window W: a decoding sequence's window layers cost min(context, W) / W
    #: of compute_per_window_seq_us and memory_per_seq_us (0: a whole one each)
    window_tokens: int = 0
    compute_per_sampled_us: float = 0.0     # the output head, per sampled token
    upproject_per_context_token_ns: float | None = Field(
        default=None, description="MLA: what a prefill chunk pays per token of the context "
                                  "before it, up-projected to keys and values in every "
                                  "layer (absent for other attention).")
    weights_ms: float
    experts_ms: float
    experts: int
    experts_per_token: int
    memory_per_kv_token_ns: float
    memory_per_seq_us: float
    cpu_ms: float
    cpu_per_seq_us: float
    async_cpu: bool
    frontend_per_seq_us: float
    verify_tokens: int
    accepted_per_step: float
    draft_per_token_us: float = 0.0     # the speculative drafter, per token of a pass
    draft_weights_ms: float = 0.0       # ... and its weight reads per pass
    launch_ms: float | None = Field(
        default=None, description="engine.enforce_eager: the CPU's kernel launches per "
                                  "step, a floor under max(compute, memory) (absent with "
                                  "CUDA graphs).")
    client_overhead_ms: float
    source: str


class MemoryOutcome(ResultModel):
    """One GPU's memory as vLLM budgets it (GiB): budget = total x utilisation; the KV
    cache gets what weights, the profiling run's activation peak, non-torch memory, Model
    Runner V2's buffers and, from vLLM 0.20 on, the CUDA graphs' estimate leave (before,
    and on Model Runner V2 before 0.29, the graphs are captured outside the budget)."""

    total_gib: float
    gpu_memory_utilization: float
    budget_gib: float
    weights_gib: float
    activation_gib: float
    non_torch_gib: float
    cuda_graph_gib: float
    cuda_graph_in_budget: bool = Field(
        description="vLLM >= 0.20 takes its CUDA-graph estimate out of the budget "
                    "(VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS; Model Runner V2 from "
                    "0.29); before, the graphs live outside it.")
    runner_buffers_gib: float = Field(
        default=0.0, description="Model Runner V2's buffers allocated before profiling: the "
                                 "sampler's penalty counts (int32 per sequence and "
                                 "vocabulary entry) and, from vLLM 0.32 with n-gram drafts, "
                                 "the requests' token ids; 0 on the V1 runner.")
    kv_cache_gib: float


class EngineOutcome(ResultModel):
    """The engine as simulated (every default resolved, as it is provisioned)."""

    vllm_version: str
    data_parallel_ranks: int = Field(
        description="Data-parallel attention ranks of a replica (engine."
                    "data_parallel_attention: one per GPU), 1 for one tensor-parallel "
                    "engine; max_num_seqs, max_num_batched_tokens, kv_cache_tokens, "
                    "kv_cache_blocks and max_concurrency_at_mean_request are the "
                    "replica's, every rank's together; vllm_logged_kv_cache_tokens, "
                    "max_model_len and max_concurrency_at_max_model_len are one rank's, as "
                    "each rank logs them; memory is one GPU's (with pipeline stages, of the "
                    "stage with the fewest KV blocks; max_num_batched_tokens is one batch's, "
                    "pp of them in flight).")
    max_num_seqs: int = Field(description="Sequences a replica runs at once (every "
                                          "data-parallel rank's together).")
    max_num_batched_tokens: int = Field(description="Tokens a replica's step takes (every "
                                                    "rank's together).")
    async_scheduling: bool
    kv_cache_tokens: int = Field(description="KV cache of a replica, in tokens of its "
                                             "full-attention layers (every rank's together). "
                                             "With sliding-window layers each running "
                                             "request also holds its window's pages of "
                                             "them, which max_concurrency_at_mean_request "
                                             "counts and this does not.")
    kv_cache_blocks: int = Field(description="The same in blocks (every rank's together).")
    vllm_logged_kv_cache_tokens: int = Field(
        description="vLLM's start-up 'GPU KV cache size: N tokens': one rank's, as it logs it.")
    max_model_len: int = Field(description="The longest request, one rank's (as it logs it).")
    max_concurrency_at_max_model_len: float = Field(
        description="vLLM's 'Maximum concurrency for max_model_len tokens': one rank's.")
    max_concurrency_at_mean_request: float | None = Field(
        description="Requests of the scenario's mean length the replica's KV cache holds at "
                    "once (every rank's together).")
    memory: MemoryOutcome
    step_time: StepTimeCoefficients


class LocalTimeSeries(ResultModel):
    """Per simulated minute, summed over replicas."""

    queue_depth_mean: list[float]
    mbu_fraction: list[float]
    kv_cache_fraction: list[float] = Field(
        description="KV cache blocks held over the pool, per minute (as kv_cache_mean_fraction).")


class PrefixCacheOutcome(ResultModel):
    """What the engines' prefix caches answered (scenarios with shared prefixes)."""

    policy: str = Field(description="vllm (KV-block hashing), per_slot (llama.cpp) or off.")
    requests: int = Field(description="Requests the fleet started (their first prefill).")
    prompt_tokens: int = Field(description="Their prompt tokens.")
    cached_prompt_tokens: int = Field(description="Of those, found in the cache: prefill "
                                                  "tokens saved.")
    hit_rate_tokens: float = Field(description="cached_prompt_tokens / prompt_tokens.")
    requests_with_hit: int
    ttft_p50_ms_hit: float | None = Field(default=None, description="Finished requests that "
                                                                    "found a cached prefix.")
    ttft_p50_ms_miss: float | None = None


class LocalOutcome(ResultModel):
    """The GPU fleet of a local (or hybrid's local) deployment."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("prefix_cache",)

    gpu: str
    model: str
    replicas: int
    tp: int
    #: pipeline stages per replica: a replica runs on tp x pp GPUs
    pp: int
    #: servers one replica spans (stages outgrowing one server: a pod per server)
    servers_per_replica: int = 1
    gpus: int
    fleet: FleetOutcome
    utilisation: Utilisation
    engine: EngineOutcome
    timeseries: LocalTimeSeries
    prefix_cache: PrefixCacheOutcome | None = None

    def full_batch_requests_per_s_with(self, replicas: int) -> float | None:
        """Requests/s `replicas` replicas finish with every batch full: each at the run's
        full-batch rate over the replicas it ran (an autoscaled fleet scaled out to its
        max_replicas; None: it ran none)."""
        ran = self.fleet.mean_active_replicas
        return self.utilisation.full_batch_requests_per_s * replicas / ran if ran > 0 \
            else None


class CloudOutcome(ResultModel):
    """The API side: calls, 429s, retries, outages and billed tokens."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("cached_input_tokens", "cache_write_tokens",
                                                 "unserved", "abandoned", "long_context",
                                                 "reasoning_streamed", "context_tokens",
                                                 "max_output_tokens", "client_max_tokens",
                                                 "limit", "limit_sustains_requests_per_s")

    model: str
    provider: str
    calls: int
    served: int
    requests_sent: int = Field(default=0, description="Requests that reached the API (at "
                                                      "least one attempt), answered or not.")
    throttle_events: int
    throttled_requests: int
    retried_requests: int
    tokens_charged_against_limit: float
    outage_s: float
    outages: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int | None = Field(
        default=None, description="Of the priced requests' input tokens (input_tokens and "
                                  "unserved.input_tokens), read from the provider's prompt "
                                  "cache (tasks with shared prefixes, the cache as the same "
                                  "traffic kept up leaves it; see sim/prompt_cache.py).")
    cache_write_tokens: int | None = Field(
        default=None, description="Of the priced requests' input tokens, written to the "
                                  "provider's prompt cache.")
    unserved: UnservedCalls | None = Field(
        default=None, description="Requests the API did not answer (refused past the "
                                  "retries, timed out, in an outage; a hybrid's: those it sent "
                                  "the API that no path answered): the cost is "
                                  "priced at the volume offered, as if they were served once "
                                  "the account's limits allow it, so a throttled API is not "
                                  "priced on the short requests that got through.")
    abandoned: AbandonedCalls | None = Field(
        default=None, description="Attempts the provider accepted that ran past the "
                                  "client's retry.request_timeout_s: the client gave up "
                                  "(and retried, or failed the request), and the provider "
                                  "bills what it did: the prompt, and the answer's tokens "
                                  "generated by then.")
    context_tokens: int | None = Field(
        default=None, description="The model's context window, given when some request was "
                                  "too long for it (the catalog's context_tokens).")
    max_output_tokens: int | None = Field(
        default=None, description="The longest answer the API writes, reasoning included, "
                                  "given when some request was too long (the catalog's).")
    limit: str | None = Field(
        default=None, description="A cloud API's binding rate limit at this traffic's token "
                                  "mix (the one that admits the fewest requests over a long "
                                  "run: the scenario's limits, else the catalog's default "
                                  "tier); none for a hybrid's API part or without limits.")
    limit_sustains_requests_per_s: float | None = Field(
        default=None, description="The request rate that limit admits for ever at this "
                                  "traffic's token mix (sim/ratelimit.py's accounting).")
    client_max_tokens: int | None = Field(
        default=None, description="The client's limits.max_tokens, given when some request "
                                  "was too long and one is set: an answer reaching it is cut "
                                  "off (hidden reasoning counts).")
    long_context: LongContextCalls | None = Field(
        default=None, description="Of the priced requests, those whose prompts are past the "
                                  "model's long-context threshold (the catalog's "
                                  "long_context): billed whole at its long-context prices.")
    reasoning_streamed: bool | None = Field(
        default=None, description="Workloads with hidden reasoning tokens: whether the API "
                                  "streams the reasoning (TTFT is the first reasoning token, "
                                  "as a local engine's reasoning parser streams it) or "
                                  "withholds it (TTFT is the answer's first token, after "
                                  "every reasoning token; the catalog's reasoning_streamed).")


class UnservedCalls(ResultModel):
    requests: int
    input_tokens: int
    output_tokens: int


class LongContextCalls(ResultModel):
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("cached_input_tokens", "cache_write_tokens")

    requests: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int | None = Field(
        default=None, description="Of input_tokens, read from the provider's prompt cache "
                                  "(None: no shared prefixes simulated).")
    cache_write_tokens: int | None = Field(
        default=None, description="Of input_tokens, written to the provider's prompt cache.")


class AbandonedCalls(ResultModel):
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("cut_off",)

    attempts: int
    input_tokens: int
    output_tokens: float
    cut_off: int | None = Field(
        default=None, description="Of the attempts, answers the provider cut at the "
                                  "client's limits.max_tokens (hidden reasoning counts): "
                                  "billed, and no answer (the request ends too long).")


class HybridOutcome(ResultModel):
    """Which path served what, and the restricted tasks' requests (with
    constraints.restricted_stays_local, the default, none may reach the cloud)."""

    local: str
    cloud: str
    served_local: int
    served_cloud: int
    moved_between_paths: int
    restricted_requests: int
    restricted_served_by_cloud: int
    restricted_blocked: int


class TurnStats(ResultModel):
    """The k-th turns of every session (k from 0): they carry longer and longer histories."""

    turn: int
    requests: int
    prompt_tokens_mean: float
    completed: int
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None


#: turns shown one by one (`SessionOutcome.by_turn`); later ones are counted together
TURNS_SHOWN = 10


class LaterTurns(TurnStats):
    """Every session's turns past the first TURNS_SHOWN, together: `turn` is the first of
    them (from 0), `last_turn` the last any session reached."""

    last_turn: int


class SessionOutcome(ResultModel):
    """Conversations and agent loops (tasks with `session`), sent closed loop."""

    sessions: int
    turns: int = Field(description="Turns the sessions have in the stream.")
    turns_sent: int = Field(description="Sent: the previous turn ended within the run.")
    completed_sessions: int = Field(description="Sessions whose every turn was answered.")
    session_duration_p50_s: float | None = Field(
        description="First turn sent to last answer, of completed sessions.")
    by_turn: list[TurnStats] = Field(description="The first 10 turn numbers.")
    later_turns: LaterTurns | None = Field(
        default=None, description="The turns past the 10th, together (None: no session "
                                  "runs longer): with by_turn, every turn is counted.")

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("later_turns",)


class DeploymentResult(ResultModel):
    """One candidate deployment, simulated."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("local", "cloud", "hybrid", "sessions")

    kind: Literal["local", "cloud", "hybrid"]
    requests: RequestCounts
    latency: Latency
    throughput: Throughput
    slo: SloOutcome
    latency_cdf: LatencyCdf
    useful: Useful
    per_task: dict[str, TaskOutcome]
    timeseries: TimeSeries
    local: LocalOutcome | None = None
    cloud: CloudOutcome | None = None
    hybrid: HybridOutcome | None = None
    sessions: SessionOutcome | None = None

    def serves_with(self) -> str:
        """What it runs on, as a tech lead reads it: "6 x H100-SXM (3 x tp 2)", an
        autoscaled fleet from its first replicas to its most (the most are bought), the
        cloud model, or both."""
        local, cloud = self.local, self.cloud
        parts = []
        if local is not None:
            most = max(local.fleet.max_replicas or 0, local.replicas)
            grows = most > local.replicas
            count = f"{local.gpus}-{most * local.tp * local.pp}" if grows else f"{local.gpus}"
            replicas = f"{local.replicas}-{most}" if grows else f"{local.replicas}"
            layout = _layout(local.tp, local.pp, replicas, local.engine.data_parallel_ranks,
                             local.servers_per_replica)
            parts.append(f"{count} x {local.gpu}{layout}")
        if cloud is not None:
            parts.append(cloud.model)
        return " + ".join(parts)


def _layout(tp: int, pp: int, replicas: str, ranks: int, servers: int = 1) -> str:
    """How a replica spreads over its GPUs, when over more than one: one tensor-parallel
    engine ("tp 8"), one data-parallel rank per GPU with the experts spread ("dp 8"), or
    pipeline stages ("tp 4 x pp 2", "pp 4", "tp 8 x pp 2 on 2 servers"), times the replicas
    ("2-6": an autoscaled fleet's first and most)."""
    if tp * pp == 1:
        return ""
    each = f"dp {ranks}" if ranks > 1 else f"tp {tp}"
    if pp > 1:
        each = f"{each} x pp {pp}" if tp > 1 else f"pp {pp}"
    if servers > 1:
        each = f"{each} on {servers} servers"
    return f" ({replicas} x {each})" if replicas != "1" else f" ({each})"


class RunInfo(ResultModel):
    """What was simulated."""

    name: str
    seed: int
    duration_s: float
    requests: int
    mode: Literal["fast", "reference"]
    tasks: list[str]
    long_run_requests_per_s: float | None = Field(
        default=None, description="The traffic's mean request rate over the long run, which "
                                  "monthly volume and costs are made of (None: the simulated "
                                  "window's own rate).")
    volume_basis: str | None = Field(
        default=None, description="Where long_run_requests_per_s comes from, in words.")
    slo: str | None = Field(
        default=None, description="The SLO the candidates are judged by, in words.")

    def sped_up(self, factor: float, *, requests: int | None = None,
                span_s: float | None = None) -> RunInfo:
        """This run's traffic at `factor` times the rate: `requests` of it (default: all)
        that took `span_s` (default: the run's duration) simulated in span_s / factor."""
        rate = self.long_run_requests_per_s
        return self.model_copy(update={
            "duration_s": (self.duration_s if span_s is None else span_s) / factor,
            "requests": self.requests if requests is None else requests,
            "long_run_requests_per_s": None if rate is None else rate * factor})


class SimulationResult(ResultModel):
    """Every deployment of a scenario against the same request stream."""

    scenario: RunInfo
    deployments: dict[str, DeploymentResult]
