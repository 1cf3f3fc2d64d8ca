"""Cloud API and hybrid deployments of a scenario (`kind: cloud`, `kind: hybrid`).

Latency defaults here are assumptions, not catalog facts. A catalog model with a measured
latency (`latency:` of its cloud_models entry, sourced) has its figures used for those the
scenario leaves at the default; better still, measure your provider with `llmplan loadtest`
and put the figures in the scenario, which win.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmplan.catalog import CloudModelSpec, MeasuredLatency


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Quantiles(_Strict):
    """A lognormal quantity given by its median and its 95th percentile."""

    median: float = Field(gt=0)
    p95: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Quantiles:
        if self.p95 < self.median:
            raise ValueError("p95 must be >= median")
        return self


class RateQuantiles(_Strict):
    """A lognormal rate given by its median and its 5th percentile (the slow tail)."""

    median: float = Field(gt=0)
    p5: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> RateQuantiles:
        if self.p5 > self.median:
            raise ValueError("p5 must be <= median")
        return self


#: What the two figures a catalog measurement may stand in for are called in the labels.
MEASURED_FIGURES: dict[str, str] = {"ttft_ms": "first-token time",
                                    "output_tokens_per_s": "output speed"}


class CloudLatency(_Strict):
    """What one API call takes when it is admitted. A figure left at its default (or set to
    exactly the default: a stored deployment writes every default out) is taken from the
    catalog model's measured latency where it has one (`CloudDeployment.latency_with`)."""

    network_rtt_ms: float = Field(default=40.0, ge=0, description="Client to provider and back.")
    ttft_ms: Quantiles = Field(default=Quantiles(median=350.0, p95=1200.0),
                               description="Provider-side time to first token of a short "
                                           "prompt. Unset: the catalog model's measured "
                                           "median less the round trip and the prompt "
                                           "reading its client saw (MeasuredLatency."
                                           "provider_ttft_ms; its p95 where measured, else "
                                           "the median x 1200/350, this default's spread), "
                                           "or this default where none was measured.")
    prefill_tokens_per_s: float = Field(
        default=50_000.0, gt=0,
        description="The pace at which the provider reads a prompt's tokens its cache does "
                    "not hold, added to the time to first token: a 150,000-token prompt waits "
                    "3 s more at the default. Measured first-token latency of small API models "
                    "grew by 1-2.5 s from tiny prompts to about 150,000 tokens (blog.0xmmo.co, "
                    "2026: gpt-5.4-mini, claude-haiku-4-5, gemini-2.5-flash, 65-115k tokens/s); "
                    "larger models read slower: an assumption, measure yours.")
    output_tokens_per_s: RateQuantiles = Field(
        default=RateQuantiles(median=90.0, p5=35.0),
        description="Streaming speed per request. Unset: the catalog model's measured "
                    "median (its p5 where measured, else the median x 35/90, this default's "
                    "spread), or this default where none was measured.")

    def given(self) -> list[str]:
        """The fields set to something other than llmplan's default, in field order."""
        default = CloudLatency()
        return [name for name in type(self).model_fields
                if getattr(self, name) != getattr(default, name)]

    def over(self, measured: MeasuredLatency | None) -> CloudLatency:
        """These figures, with a catalog measurement's in place of the first-token time and
        output speed left at the default (the rest as they are)."""
        if measured is None:
            return self
        given = self.given()
        update: dict[str, Quantiles | RateQuantiles] = {}
        ttft = measured.provider_ttft_ms(self.prefill_tokens_per_s, self.network_rtt_ms)
        rate_p5 = measured.output_tokens_per_s_p5_used
        if "ttft_ms" not in given and ttft is not None:
            update["ttft_ms"] = Quantiles(median=ttft[0], p95=ttft[1])
        if "output_tokens_per_s" not in given and measured.output_tokens_per_s is not None \
                and rate_p5 is not None:
            update["output_tokens_per_s"] = RateQuantiles(
                median=measured.output_tokens_per_s, p5=rate_p5)
        return self.model_copy(update=update) if update else self


class RateLimitSpec(_Strict):
    """The provider's limits and how it counts (defaults: the catalog's typical tier)."""

    requests_per_min: float | None = Field(default=None, gt=0)
    tokens_per_min: float | None = Field(default=None, gt=0)
    requests_per_day: float | None = Field(default=None, gt=0)
    tokens_per_day: float | None = Field(default=None, gt=0)
    output_tokens_per_min: float | None = Field(
        default=None, gt=0, description="input_output accounting (Anthropic): the output "
                                        "tokens/min limit (default: the catalog tier's).")
    accounting: Literal["rolling_minute", "azure_slices", "bedrock_reserve", "input_output",
                        "input_only"] | None = Field(
        default=None, description="Default: the provider's own rule (input_output: "
                                  "Anthropic, tokens_per_min counting input tokens; "
                                  "input_only: Gemini).")
    slice_s: Literal[1, 10] = Field(default=10, description="Azure's window.")
    max_tokens: int | None = Field(
        default=None, gt=0, description="max_tokens each call sends (reserved against the "
                                        "token limit); default: the request's output length.")
    shared_pool_throttle_probability: float = Field(
        default=0.0, ge=0, lt=1, description="Chance of a 429 below quota (provider busy).")


class RetrySpec(_Strict):
    """The client's retry policy on 429s and errors."""

    max_retries: int = Field(default=3, ge=0, le=100)
    initial_backoff_s: float = Field(default=1.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_backoff_s: float = Field(default=30.0, ge=0)
    jitter: Literal["none", "full", "equal"] = "full"
    honor_retry_after: bool = True
    max_retry_after_s: float = Field(
        default=120.0, gt=0,
        description="A 429 whose retry-after is longer than this is not retried: the client "
                    "gives up on it at once (a hybrid falls back). openai-python 3.63's "
                    "MAX_RETRY_AFTER_DELAY: 2 minutes.")
    request_timeout_s: float = Field(default=120.0, gt=0,
                                     description="Give up on one attempt after this long.")

    @property
    def hung_s(self) -> float:
        """How long the client spends on a call whose every attempt hangs to its timeout
        (the back-offs between them left out)."""
        return (self.max_retries + 1) * self.request_timeout_s


class OutageWindow(_Strict):
    start_s: float = Field(ge=0)
    duration_s: float = Field(gt=0)


class OutageSpec(_Strict):
    """When the provider is down: explicit windows and/or random MTBF/MTTR outages."""

    windows: list[OutageWindow] = Field(default_factory=list)
    mtbf_hours: float | None = Field(default=None, gt=0, description="Mean time between.")
    mttr_minutes: float | None = Field(default=None, gt=0, description="Mean time to repair.")
    mode: Literal["errors", "timeouts"] = Field(
        default="errors", description="errors: 5xx at once; timeouts: hang until the client "
                                      "timeout.")

    @model_validator(mode="after")
    def _both_or_neither(self) -> OutageSpec:
        if (self.mtbf_hours is None) != (self.mttr_minutes is None):
            raise ValueError("give both mtbf_hours and mttr_minutes, or neither")
        return self


class CloudCosts(_Strict):
    """Everything a cloud path costs besides the listed token prices (the seed's list)."""

    cached_input_fraction: float = Field(default=0.0, ge=0, le=1,
                                         description="Share of input tokens billed as cached.")
    per_request_usd: float = Field(default=0.0, ge=0)
    tool_calls_per_request: float = Field(default=0.0, ge=0)
    usd_per_tool_call: float = Field(default=0.0, ge=0)
    storage_retrieval_usd_per_month: float = Field(default=0.0, ge=0)
    egress_kb_per_request: float | None = Field(
        default=None, ge=0,
        description="Data each request sends out of your network to the provider; default: "
                    "its prompt at 4 bytes a token (OpenAI's rule of thumb: a token is about "
                    "4 characters of English), the answer coming back as ingress.")
    egress_usd_per_gb: float = Field(default=0.09, ge=0)
    observability_usd_per_month: float = Field(default=0.0, ge=0)
    vendor_review_usd_one_off: float = Field(default=0.0, ge=0,
                                             description="Security/legal review, amortised.")
    rate_limit_planning_usd_per_month: float = Field(
        default=0.0, ge=0, description="Higher tier, provisioned throughput, extra accounts.")


class CloudDeployment(_Strict):
    """A hosted API model (see `llmplan catalog` for ids, prices and default limits)."""

    kind: Literal["cloud"] = "cloud"
    model: str = Field(description="A cloud_models catalog id, e.g. gpt-4o-mini.")
    region: str = Field(default="us", description="Where the provider processes the data, "
                                                  "checked against constraints.data_residency.")
    limits: RateLimitSpec = RateLimitSpec()
    retry: RetrySpec = RetrySpec()
    latency: CloudLatency = Field(
        default=CloudLatency(),
        description="What a call takes. Figures left out are the catalog model's measured "
                    "ones where it has them (`llmplan catalog --sources`), else llmplan's "
                    "defaults; figures given here win.")
    outages: OutageSpec = OutageSpec()
    costs: CloudCosts = CloudCosts()

    def latency_with(self, model: CloudModelSpec | None) -> CloudLatency:
        """The latency simulated: the scenario's figures over the catalog model's measured
        ones over llmplan's defaults."""
        return self.latency.over(model.latency if model is not None else None)

    def latency_from(self, model: CloudModelSpec | None) -> str:
        """Where the simulated latency comes from: "given: ..." (the scenario set figures),
        "catalog: measured (<source>, <as of>)" (the catalog model's measured figures),
        "assumed: ..." (llmplan's defaults), the parts joined when several contribute."""
        measured = model.latency if model is not None else None
        given = self.latency.given()
        used = self.latency_with(model)
        from_catalog = [label for name, label in MEASURED_FIGURES.items()
                        if name not in given and getattr(used, name) != getattr(self.latency,
                                                                                 name)]
        defaulted = [name for name in MEASURED_FIGURES
                     if name not in given and getattr(used, name) == getattr(self.latency,
                                                                             name)]
        if measured is None or not from_catalog:
            return "given: provider latency in the scenario" if given \
                else "assumed: llmplan's default provider latency"
        catalog = f"catalog: measured ({measured.basis})"
        figures = " and ".join(from_catalog)
        if given:
            return f"given: provider latency in the scenario; {catalog} for its {figures}"
        if defaulted:
            return (f"{catalog} for its {figures}; assumed: llmplan's default provider "
                    f"latency for the rest")
        return catalog


#: What a task does, in the seed guide's hybrid pattern (its "Practical Hybrid Pattern").
TaskKind = Literal["classification", "redaction", "extraction", "drafting",
                   "reasoning", "tool_use", "writing", "multimodal"]
#: The seed's pattern: sensitive preprocessing and simple work close, on the fleet; the
#: work where a stronger managed model's quality matters, on the API.
SEED_LOCAL_KINDS: tuple[TaskKind, ...] = ("classification", "redaction", "extraction",
                                          "drafting")
SEED_CLOUD_KINDS: tuple[TaskKind, ...] = ("reasoning", "tool_use", "writing", "multimodal")


class Route(_Strict):
    """Send matching requests to one side. Matches when every given list contains it."""

    tasks: list[str] | None = None
    kinds: list[TaskKind] | None = Field(
        default=None, description="Tasks whose `kind` is one of these.")
    sensitivity: list[Literal["public", "internal", "restricted"]] | None = None
    to: Literal["local", "cloud"]

    def matches(self, task: str, kind: str | None, sensitivity: str) -> bool:
        return (self.tasks is None or task in self.tasks) \
            and (self.kinds is None or kind in self.kinds) \
            and (self.sensitivity is None or sensitivity in self.sensitivity)


class HybridDeployment(_Strict):
    """A local fleet and a cloud API behind one router (the seed's hybrid pattern)."""

    kind: Literal["hybrid"] = "hybrid"
    local: str = Field(description="Name of a kind: local deployment of this scenario.")
    cloud: str = Field(description="Name of a kind: cloud deployment of this scenario.")
    routes: list[Route] | Literal["seed"] = Field(
        default_factory=list,
        description="First match wins; restricted is always local. `seed`: the seed guide's "
                    "pattern by task kind (classification, redaction, extraction and drafting "
                    "on the fleet; reasoning, tool use, writing and multimodal on the API).")
    default: Literal["local", "cloud"] = "local"
    spillover_wait_s: float | None = Field(
        default=None, gt=0, description="Send to the cloud when the expected local queue "
                                        "wait passes this.")
    spillover_when_full: bool = Field(default=True,
                                      description="Send to the cloud when local admission "
                                                  "refuses (queue limit).")
    fallback_to_local: bool = Field(default=True, description="Cloud failed (429 after "
                                    "retries, outage, timeout) or refused (too long for "
                                    "its model): serve locally instead.")

    @property
    def rules(self) -> list[Route]:
        """The routes in order (`seed`: the guide's two, by kind)."""
        if self.routes == "seed":
            return [Route(kinds=list(SEED_LOCAL_KINDS), to="local"),
                    Route(kinds=list(SEED_CLOUD_KINDS), to="cloud")]
        return self.routes

    def side_of(self, task: str, kind: str | None, sensitivity: str) -> str:
        """Where the routes send a task's requests (before the restricted rule)."""
        return next((route.to for route in self.rules
                     if route.matches(task, kind, sensitivity)), self.default)

    def task_side(self, task: str, kind: str | None, sensitivity: str, *,
                  restricted_stays_local: bool) -> str:
        """Where a task's requests go: restricted data stays on the fleet when the
        scenario says so, whatever the routes; then the first matching route, else the
        default (the simulator's, the gateway's and the notes' one rule)."""
        if restricted_stays_local and sensitivity == "restricted":
            return "local"
        return self.side_of(task, kind, sensitivity)
