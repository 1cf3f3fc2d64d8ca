"""The scenario file, as typed models. Validated once at the boundary (see loader.py).

A scenario is: a seed, a simulated duration, the traffic, the request mix (tasks), the SLOs,
the candidate deployments, and hard constraints. Units are in field names.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from llmplan.catalog import Catalog
from llmplan.perf.engine import EngineSpec
from llmplan.perf.setup import CatalogDrafter, ReplicaSetup
from llmplan.perf.steptime_spec import RooflineStepTime, StepTimeSpec
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment, TaskKind
from llmplan.traffic.arrivals import TrafficSpec
from llmplan.traffic.lengths import LengthSpec
from llmplan.units import DURATION_PATTERN, parse_duration_s
from llmplan.yamlio.problems import UNKNOWN_KIND

#: The routers a local fleet may use (the simulator keeps one class per name; the stack
#: builds each one it can as the gateway's balancer, llmplan/provision/balancer.py).
RouterName = Literal["round_robin", "least_outstanding", "prefix_affinity"]


def _duration_json_schema(schema: dict[str, Any]) -> None:
    """A seconds field's JSON Schema also accepts the text `parse_duration_s` reads: the
    number keeps its bounds, the text must match DURATION_PATTERN."""
    number = {key: schema.pop(key) for key in ("type", "exclusiveMinimum", "minimum",
                                                "exclusiveMaximum", "maximum") if key in schema}
    schema["anyOf"] = [number, {"type": "string", "pattern": DURATION_PATTERN}]


class SimulationMode(StrEnum):
    """fast jumps between batch changes in closed form; reference steps one by one."""

    FAST = "fast"
    REFERENCE = "reference"


Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SloSpec(_Strict):
    """Per-request latency bounds; a request meeting all of them counts towards goodput."""

    ttft_ms: float | None = Field(default=None, gt=0, description="Time to first token bound.")
    tpot_ms: float | None = Field(default=None, gt=0, description="Time per output token bound.")
    e2e_ms: float | None = Field(default=None, gt=0, description="End-to-end latency bound.")
    ttft_visible_ms: float | None = Field(
        default=None, gt=0,
        description="Bound on the time to the answer's first token, after a task's hidden "
                    "reasoning_tokens (a local model streams its reasoning first, so its TTFT "
                    "is a reasoning token's; an API that withholds reasoning sends the "
                    "answer's first): the same moment for every candidate. Without "
                    "reasoning it is the TTFT.")
    min_goodput_fraction: float = Field(
        default=0.95, gt=0, le=1,
        description="A deployment meets the SLO when at least this share of requests do.")

    def bounds_in_words(self) -> str:
        """"TTFT <= 1,500 ms, TPOT <= 80 ms" (or "no latency bound")."""
        bounds = [f"{name} <= {value:,.0f} ms" if 100 <= value < 10_000 else
                  f"{name} <= {value:.3g} ms" if value < 100 else
                  f"{name} <= {value / 1e3:,.3g} s"
                  for name, value in (("TTFT", self.ttft_ms), ("TPOT", self.tpot_ms),
                                      ("E2E", self.e2e_ms),
                                      ("visible TTFT", self.ttft_visible_ms))
                  if value is not None]
        return ", ".join(bounds) or "no latency bound"


class SharedPrefixSpec(_Strict):
    """Prompts that start with one of a few shared texts (system prompts, few-shot blocks,
    RAG documents): each request's prompt is its group's prefix plus its own tokens."""

    groups: int = Field(ge=1, le=1_000_000, description="How many distinct prefixes.")
    tokens: LengthSpec = Field(description="Each prefix's length (drawn once per group).")
    popularity: Literal["uniform", "zipf"] = Field(
        default="uniform", description="How requests pick a group: evenly, or Zipf (group k "
                                       "with weight 1 / k^zipf_s).")
    zipf_s: float = Field(default=1.0, gt=0, le=5)


class SessionSpec(_Strict):
    """Multi-turn conversations or agent loops: each arrival of the task starts one.

    Turn k sends the whole history (the first prompt, every earlier message and answer)
    plus a new message drawn from prompt_tokens (the user's next message, or the tool's
    result in an agent loop), after the previous turn ended and a pause: the user reading
    and typing, or the tool call running. `kind` says whether the answers in the history
    keep their hidden reasoning (reasoning_tokens)."""

    kind: Literal["chat", "agent"] = Field(
        default="chat",
        description="chat: each turn is a new user message, and the history holds the "
                    "visible answers only (chat templates and APIs drop the reasoning of "
                    "earlier user turns); pauses are people. agent: the turns are one user "
                    "request's tool-call loop, and the history keeps every earlier turn's "
                    "hidden reasoning before its answer (gpt-oss harmony's analysis channel, "
                    "Qwen3's template after the last user message, Anthropic's thinking "
                    "blocks returned with tool results, OpenAI Responses reasoning items): "
                    "prefilled and cached on GPUs, sent, billed as input and cache-read on "
                    "APIs; pauses are tool calls.")
    turns_min: int = Field(default=1, ge=1, le=10_000)
    turns_max: int = Field(ge=1, le=10_000, description="Turns per session: uniform between "
                                                        "turns_min and turns_max.")
    think_time_s: float = Field(default=10.0, ge=0, description="Mean pause before each "
                                                               "later turn (exponential).")
    fan_out: int = Field(default=1, ge=1, le=64, description="Requests each later turn "
                         "sends at once (an agent's parallel calls); the next turn waits for "
                         "all of them and appends them to its history in order, so a prefix "
                         "cache finds of it what the first call computed, and of the others "
                         "only the history they were sent with.")

    @model_validator(mode="after")
    def _turns(self) -> SessionSpec:
        if self.turns_max < self.turns_min:
            raise ValueError("turns_max must be >= turns_min")
        return self


class TaskSpec(_Strict):
    """One kind of request in the mix."""

    name: Name
    weight: float = Field(default=1.0, gt=0, description="Relative share of requests.")
    prompt_tokens: LengthSpec
    output_tokens: LengthSpec = Field(description="The visible answer's tokens.")
    reasoning_tokens: LengthSpec | None = Field(
        default=None, description="Hidden thinking tokens a reasoning model generates before "
                                  "the visible answer: generated, timed and billed as output; "
                                  "an agent session's later turns send them back in their "
                                  "history (session.kind).")
    shared_prefix: SharedPrefixSpec | None = Field(
        default=None, description="A shared prefix in front of prompt_tokens (which are then "
                                  "the request's own part).")
    session: SessionSpec | None = Field(
        default=None, description="Each arrival starts a conversation or agent loop whose "
                                  "later turns resend the history.")
    api: Literal["chat", "completions"] | None = Field(
        default=None, description="How the requests reach the engine. chat: prompt_tokens "
        "(and a session's history) are the messages' text, and a local model adds its chat "
        "template's tokens (catalog `chat_template`: role markers per message, the reply "
        "opening, a default system prompt); a load test must then use a chat target. "
        "completions, or left out: prompt_tokens are all the engine computes.")
    sensitivity: Literal["public", "internal", "restricted"] = Field(
        default="internal", description="restricted = data must stay on owned hardware.")
    kind: TaskKind | None = Field(
        default=None, description="What the task does, in the seed guide's hybrid pattern: a "
                                  "hybrid's routes can match it (`kinds`, or `routes: seed`).")
    slo: SloSpec | None = Field(default=None, description="Overrides the scenario SLO.")
    quality: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict,
        description="Share of answers that are right, per deployment name (1.0 if not "
                    "given); from evaluation, e.g. a load test's test-set results.")


class AdmissionSpec(_Strict):
    """What happens to requests the fleet cannot start at once."""

    queue_limit: int | None = Field(
        default=None, ge=0,
        description="Waiting requests per replica before rejecting; 0: none waits, a "
                    "request starts at the next step when a seat (max_num_seqs) is free and "
                    "no request is ahead of it, else it is refused.")
    queue_timeout_s: float | None = Field(
        default=60.0, gt=0,
        description="Clients give up on a request that has not started after this long (a "
                    "streamed answer sends nothing before its first token; 60 s is the "
                    "default read timeout of nginx's proxy and AWS's load balancers); null: "
                    "nobody gives up. Timed-out requests count against goodput.")


class LocalCosts(_Strict):
    """Everything owned or rented GPUs cost (the seed's local list); catalog prices per GPU."""

    ownership: Literal["owned", "rented_on_demand", "rented_reserved"] = "owned"
    gpus_per_server: int | None = Field(
        default=None, gt=0, le=16,
        description="GPUs one server holds, at most the GPU's catalog node_gpus (servers "
                    "are bought, powered and racked whole; a replica's GPUs sit in one, or its "
                    "pipeline stages in several); default: node_gpus (8 on HGX/DGX boards, 4 "
                    "in a GB200 NVL72 compute tray).")
    server_usd: float = Field(default=35_000.0, ge=0,
                              description="Host (CPUs, RAM, NICs, chassis) per server, owned.")
    maintenance_fraction_per_year: float = Field(default=0.05, ge=0, le=1,
                                                 description="Support contracts, of hardware.")
    replacement_fraction_per_year: float = Field(default=0.02, ge=0, le=1,
                                                 description="Failed parts replaced, of "
                                                             "hardware.")
    rack_usd_per_server_month: float = Field(default=1_200.0, ge=0,
                                             description="Colocation space and network, owned.")
    cooling_usd_per_month: float = Field(default=0.0, ge=0,
                                         description="Cooling not already in the PUE.")
    serving_software_usd_per_gpu_month: float = Field(default=0.0, ge=0)
    engineering_hours_per_month: float = Field(default=40.0, ge=0)
    oncall_hours_per_month: float = Field(default=20.0, ge=0)
    hours_per_hardware_incident: float = Field(
        default=4.0, ge=0,
        description="Owned GPUs: engineer hours each unexpected interruption of a GPU server "
                    "takes (diagnose, drain, replace or RMA, return; an assumption). How "
                    "often: failures.mtbf_hours when set, else Meta's Llama 3 fleet's rate "
                    "(419 unexpected interruptions in 54 days on 16,384 H100s).")
    monitoring_usd_per_month: float = Field(default=300.0, ge=0)


class FailureWindow(_Strict):
    replica: int = Field(ge=0)
    start_s: float = Field(ge=0)
    duration_s: float = Field(gt=0)


class FailureSpec(_Strict):
    """Replica failures: random (MTBF per replica) and/or explicit windows. A failed
    replica's requests are retried on the others; it comes back empty after the repair."""

    mtbf_hours: float | None = Field(default=None, gt=0, description="Per replica.")
    repair_minutes: float = Field(default=30.0, gt=0, description="Mean time to repair.")
    windows: list[FailureWindow] = Field(default_factory=list)


class AutoscaleSpec(_Strict):
    """Scale replicas between bounds on queue depth, with a model-load delay."""

    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(gt=0, le=4096)
    scale_up_waiting_per_replica: float = Field(
        default=4.0, ge=0.001, description="Add a replica when more requests wait per "
                                           "replica.")
    scale_down_outstanding_per_replica: float = Field(
        default=1.0, ge=0, description="Remove one when fewer are in flight per replica.")
    spin_up_s: float = Field(default=180.0, ge=0, description="Model load time of a new replica.")
    cooldown_s: float = Field(default=600.0, ge=1, le=1800,
                              description="Wait between scale-downs, and after a scale-up "
                                          "(the HPA's scale-down stabilisation window and "
                                          "policy period: whole seconds, at most 1800).")
    interval_s: float = Field(default=15.0, ge=1, le=1800,
                              description="How often the scaler looks (the HPA's scale-up "
                                          "policy period: whole seconds, at most 1800).")

    @model_validator(mode="after")
    def _bounds(self) -> AutoscaleSpec:
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        # the stack provisions these as an HPA, which takes whole seconds: a value it
        # would round is not what was simulated
        for name in ("cooldown_s", "interval_s"):
            if not float(getattr(self, name)).is_integer():
                raise ValueError(f"{name} {getattr(self, name):g} is not whole seconds, which "
                                 f"the stack's HorizontalPodAutoscaler takes; expected "
                                 f"{name}: {round(getattr(self, name))}")
        return self


class LocalDeployment(_Strict):
    """Replicas of `tp` x `pp` GPUs each, serving one open model with continuous batching."""

    kind: Literal["local"] = "local"
    gpu: str = Field(description="A GPU catalog id (llmplan catalog), e.g. H100-SXM.")
    model: str = Field(description="An open model's catalog id (llmplan catalog), e.g. "
                                   "Llama-3.1-8B.")
    replicas: int = Field(default=1, gt=0, le=4096)
    tp: int = Field(default=1, gt=0, le=64,
                    description="GPUs each pipeline stage splits its layers over (tensor "
                                "parallel).")
    pp: int = Field(default=1, gt=0, le=16,
                    description="Pipeline stages per replica, each holding a run of the "
                                "model's layers on its own tp GPUs (vLLM's "
                                "--pipeline-parallel-size).")
    engine: EngineSpec = EngineSpec()
    step_time: StepTimeSpec = RooflineStepTime()
    router: RouterName = "least_outstanding"
    admission: AdmissionSpec = AdmissionSpec()
    costs: LocalCosts = LocalCosts()
    failures: FailureSpec | None = None
    autoscaling: AutoscaleSpec | None = Field(
        default=None, description="replicas is then the starting count.")

    @model_validator(mode="after")
    def _replicas_within_bounds(self) -> LocalDeployment:
        scale = self.autoscaling
        if scale is not None and not scale.min_replicas <= self.replicas <= scale.max_replicas:
            raise ValueError(f"replicas ({self.replicas}) must lie between autoscaling "
                             f"min_replicas ({scale.min_replicas}) and max_replicas "
                             f"({scale.max_replicas})")
        if self.failures is not None:
            top = scale.max_replicas if scale is not None else self.replicas
            bad = [w.replica for w in self.failures.windows if w.replica >= top]
            if bad:
                raise ValueError(f"failure windows name replica(s) {bad}; replicas are "
                                 f"numbered 0..{top - 1}")
        return self

    @property
    def gpus_per_replica(self) -> int:
        """tp x pp: the GPUs one replica runs on."""
        return self.tp * self.pp

    @property
    def max_replicas(self) -> int:
        return self.autoscaling.max_replicas if self.autoscaling is not None else self.replicas

    def setup(self, catalog: Catalog) -> ReplicaSetup:
        """This deployment's replica, resolved against the catalog."""
        spec = self.engine.speculative
        found = catalog.model_of_repo(spec.drafter) \
            if spec is not None and spec.drafter is not None else None
        drafter = CatalogDrafter(found[0], catalog.models[found[0]], found[1]) \
            if found is not None else None
        return ReplicaSetup(self.gpu, self.model, catalog.gpus[self.gpu],
                            catalog.models[self.model], self.engine, self.tp,
                            pp=self.pp, gpus_per_server=self.costs.gpus_per_server, drafter=drafter)


def _deployment_kind(value: Any) -> str:
    """`kind` of a deployment, `local` when left out (the common case)."""
    if isinstance(value, dict):
        kind = value.get("kind", "local")
        return kind if isinstance(kind, str) else ""
    return str(getattr(value, "kind", "local"))


DeploymentSpec = Annotated[
    Annotated[LocalDeployment, Tag("local")] | Annotated[CloudDeployment, Tag("cloud")]
    | Annotated[HybridDeployment, Tag("hybrid")],
    Discriminator(_deployment_kind,
                  custom_error_type=UNKNOWN_KIND,
                  custom_error_message="kind must be one of: local, cloud, hybrid")]


class Economics(_Strict):
    """Shared prices and conventions of the cost model."""

    amortisation_months: int = Field(default=36, gt=0, le=120)
    electricity_usd_per_kwh: float = Field(default=0.15, ge=0)
    pue: float = Field(default=1.4, ge=1, le=3, description="Facility power / IT power.")
    idle_power_fraction: float = Field(default=0.3, ge=0, le=1,
                                       description="GPU power when idle, of TDP.")
    server_power_w: float = Field(default=1_500.0, ge=0, description="Host power per server.")
    engineer_usd_per_hour: float = Field(default=110.0, ge=0)
    hours_per_month: float = Field(
        default=730.0, gt=0,
        description="Hours a month the deployments run (and the traffic arrives): on-demand "
                    "rental, electricity and the monthly volume follow them; a reserved "
                    "rental bills every hour of the month (730) whatever this says.")

    def month_factor(self, duration_s: float) -> float:
        """How many simulated windows of `duration_s` make a month (hours_per_month long)."""
        return self.hours_per_month * 3600.0 / duration_s


class Constraints(_Strict):
    """Hard rules a candidate must satisfy to be feasible at all."""

    restricted_stays_local: bool = Field(
        default=True, description="Tasks marked restricted never leave owned hardware.")
    offline_operation_required: bool = False
    max_monthly_usd: float | None = Field(default=None, gt=0)
    data_residency: list[str] = Field(
        default_factory=list, description="Regions data may be processed in (empty: any); "
                                          "owned hardware is always allowed. Case aside, an "
                                          "entry allows itself and the regions named under "
                                          "it: eu allows eu-west-1 and eu-central-1.")


def region_within(region: str, allowed: str) -> bool:
    """Whether a provider's `region` lies in an `allowed` data-residency entry: the same
    name, case aside, or one under it at a dash (eu-central-1 in eu; not eu in
    eu-central-1, which is narrower)."""
    region, allowed = region.strip().lower(), allowed.strip().lower()
    return region == allowed or region.startswith(allowed + "-")


class SimulationSpec(_Strict):
    """How to run the simulation (not what to simulate)."""

    mode: SimulationMode = Field(
        default=SimulationMode.FAST,
        description="fast jumps between batch changes; reference steps one by one.")
    drain_s: float | None = Field(
        default=None, ge=0,
        description="Time allowed after the last arrival to finish work (default: duration).")


class CatalogOverrides(_Strict):
    """Raw catalog entries to add or override; validated when merged with the built-in one."""

    gpus: dict[str, dict[str, Any]] = Field(default_factory=dict)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    cloud_models: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Scenario(_Strict):
    """A workload and the deployments it could run on."""

    name: str = Field(default="scenario",
                      description="The workload's name: the title of its reports.")
    description: str = ""
    seed: int = Field(default=0, ge=0, lt=2**63)
    duration_s: float = Field(alias="duration", gt=0, le=400 * 86400.0,
                              description="Simulated time, e.g. 3600, '90m', '24h'.",
                              json_schema_extra=_duration_json_schema)
    traffic: TrafficSpec
    tasks: list[TaskSpec] = Field(min_length=1)
    slo: SloSpec = SloSpec()
    deployments: dict[Name, DeploymentSpec] = Field(min_length=1)
    constraints: Constraints = Constraints()
    economics: Economics = Economics()
    evaluations: dict[str, str] = Field(
        default_factory=dict,
        description="Per deployment, a load test's output folder (or its summary.json): "
                    "each task's share of right answers there becomes its quality rate.")
    simulation: SimulationSpec = SimulationSpec()
    catalog: CatalogOverrides = CatalogOverrides()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)

    @field_validator("name")
    @classmethod
    def _named(cls, name: str) -> str:
        if not name.strip():        # the reports' title and the stack's scenario tag
            raise ValueError("expected a name for the workload, the title of its reports "
                             "(or no name key: 'scenario')")
        return name

    @field_validator("duration_s", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration_s(value)

    @field_validator("tasks")
    @classmethod
    def _unique_task_names(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        names = [t.name for t in tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            where = "; ".join(f"'{n}' (" + " and ".join(
                f"tasks[{i}]" for i, t in enumerate(names) if t == n) + ")" for n in dupes)
            raise ValueError(f"task names must be unique; repeated: {where}")
        return tasks

    def slo_for(self, task: TaskSpec) -> SloSpec:
        """The task's own SLO, its share required the scenario's unless it sets one."""
        if task.slo is None:
            return self.slo
        if "min_goodput_fraction" in task.slo.model_fields_set:
            return task.slo
        return task.slo.model_copy(update={
            "min_goodput_fraction": self.slo.min_goodput_fraction})

    def requests_per_session(self) -> float | None:
        """Requests each new arrival brings over the long run, from the tasks' session
        specs (a session of T turns sends its first request and fan_out for each later
        turn; T uniform between turns_min and turns_max; arrivals pick tasks by weight);
        None when no task has sessions."""
        if not any(task.session is not None for task in self.tasks):
            return None
        total = sum(task.weight for task in self.tasks)
        mean = 0.0
        for task in self.tasks:
            per = 1.0
            if task.session is not None:
                turns = (task.session.turns_min + task.session.turns_max) / 2
                per += (turns - 1) * task.session.fan_out
            mean += task.weight / total * per
        return mean

    def slo_in_words(self) -> str:
        """The SLO a candidate is judged by: "TTFT <= 1,500 ms, TPOT <= 80 ms for each
        request; met when 95% of requests are within it", tasks with their own after."""
        own = [t for t in self.tasks if t.slo is not None and t.slo != self.slo]
        words = f"{self.slo.bounds_in_words()} for each request"
        if own and len(own) == len(self.tasks):
            words = "per task"
        words += "".join(f"; {t.name}: {t.slo.bounds_in_words()}" for t in own
                         if t.slo is not None)
        goodput = {self.slo_for(t).min_goodput_fraction for t in self.tasks}
        share = (f"{goodput.pop():.0%}" if len(goodput) == 1 else
                 f"the share each task's SLO asks ({min(goodput):.0%} to {max(goodput):.0%})")
        return f"{words}; met when {share} of requests are within it (goodput)"

    def bounded_latencies(self) -> frozenset[str]:
        """The latency figures some task's SLO bounds ("ttft_ms", "tpot_ms", "e2e_ms",
        "ttft_visible_ms")."""
        return frozenset(name for task in self.tasks
                         for name in ("ttft_ms", "tpot_ms", "e2e_ms", "ttft_visible_ms")
                         if getattr(self.slo_for(task), name) is not None)
