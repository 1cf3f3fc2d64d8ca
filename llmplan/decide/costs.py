"""Cost of ownership per month, item by item (both of the seed's lists), from a simulation.

Every item is one function registered in LOCAL_ITEMS or CLOUD_ITEMS: it receives the
deployment's spec, catalog entry, the scenario's economics and the simulated figures, and
returns USD per month plus whether that amount grows with volume ("variable") or not
("fixed"); break-even analysis uses that split. Hybrid deployments add the items of their
local part and of their cloud part.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from llmplan.catalog import Catalog, CloudModelSpec, GpuSpec
from llmplan.perf.setup import servers_for
from llmplan.scenario.cloud import CloudCosts, CloudDeployment
from llmplan.scenario.models import Economics, LocalCosts, LocalDeployment

#: Hours in an average calendar month (365 x 24 / 12): what a reservation bills, whatever
#: economics.hours_per_month the fleet runs.
CALENDAR_HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class CostItem:
    name: str
    usd_per_month: float
    variable: bool           # grows with request volume
    basis: str               # how it was computed, in words and numbers
    #: the part that grows with volume when it is not the whole item (None: all of a
    #: variable item, none of a fixed one)
    variable_usd: float | None = None
    #: that part is the GPUs an autoscaled rented fleet runs above its floor
    #: (autoscaling.min_replicas): it shrinks with the volume only down to the volume the
    #: floor carries, below which the item stays at the floor's cost
    above_floor: bool = False

    @property
    def growing_usd_per_month(self) -> float:
        """What grows with volume, per month: the break-even's slope is this over the
        month's requests."""
        if self.variable_usd is not None:
            return self.variable_usd
        return self.usd_per_month if self.variable else 0.0


@dataclass(frozen=True)
class LocalFacts:
    """What the simulation says about a local fleet."""

    gpus: float               # may be fractional: mean rented GPUs
    busy_fraction: float
    #: a reserved fleet's mean GPUs above its reservation (autoscaling past the floor),
    #: rented on demand
    burst_gpus: float = 0.0
    #: owned GPUs on average running a replica (autoscaling: fewer than owned; the rest
    #: draw idle power); None: all of them
    running_gpus: float | None = None
    #: a rented fleet that autoscales: the GPUs of its min_replicas, paid however low the
    #: volume (on demand, the GPUs above them come and go with it); None: not so
    floor_gpus: float | None = None

    @property
    def rented_above_floor_gpus(self) -> float:
        """Mean rented GPUs above an autoscaled fleet's floor (on demand: of `gpus`; a
        reservation's floor is `gpus` and what it adds is `burst_gpus`)."""
        if self.floor_gpus is None:
            return 0.0
        return self.burst_gpus or max(0.0, self.gpus - self.floor_gpus)


@dataclass(frozen=True)
class CallTokens:
    """Calls and the tokens they carried, per month."""

    calls: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    # of input_tokens, simulated prompt-cache reads and writes (None: not simulated)
    cached_input_tokens: float | None = None
    cache_write_tokens: float = 0.0


@dataclass(frozen=True)
class CloudFacts:
    """What the simulation says about API use, scaled to a month."""

    input_tokens: float
    output_tokens: float
    requests: float          # calls that were billed (served)
    # of input_tokens, simulated reads and writes of the provider's prompt cache (None: the
    # workload has no shared prefixes, the scenario's cached_input_fraction applies)
    cached_input_tokens: float | None = None
    cache_write_tokens: float = 0.0
    unserved_requests: float = 0.0   # of requests, the ones the API did not answer
    # attempts the client timed out on after the provider had begun (not in the above)
    abandoned: CallTokens = field(default_factory=CallTokens)
    # of the priced requests and their tokens, those past the long-context threshold
    long_context: CallTokens = field(default_factory=CallTokens)


def _offered(facts: CloudFacts) -> str:
    """The basis's note when requests the API refused are priced as if served."""
    if not facts.unserved_requests:
        return ""
    share = facts.unserved_requests / facts.requests
    shown = f"{share:.0%}" if share >= 0.01 else f"{share:.1%}" if share >= 0.001 else "<0.1%"
    return (f"; the volume offered, with the {shown} "
            "of requests the API did not answer priced as if served")


LocalItem = Callable[[LocalDeployment, GpuSpec, Economics, LocalFacts], CostItem | None]
CloudItem = Callable[[CloudDeployment, CloudModelSpec, Economics, CloudFacts], CostItem | None]


def _gpu_count(gpus: float) -> str:
    """A whole number of GPUs as is ("4"), a mean of rented ones to two decimals ("1.42")."""
    return f"{gpus:,.0f}" if float(gpus).is_integer() else f"{gpus:,.2f}"


def _servers(dep: LocalDeployment, gpu: GpuSpec, facts: LocalFacts) -> int:
    """Servers the fleet's replicas fill: a replica's tp x pp GPUs sit in one server (the
    catalog's node_gpus, 4 in a GB200 compute tray, or the deployment's fewer
    costs.gpus_per_server), or, with stages outgrowing one, in as many whole servers as
    they span."""
    # as the simulation places them (ReplicaSetup.gpus_per_node, .servers)
    per_server = min(gpu.node_gpus, dep.costs.gpus_per_server or gpu.node_gpus)
    each = dep.gpus_per_replica
    spans = servers_for(dep.tp, dep.pp, per_server)
    replicas_per_server = max(1, per_server // each)
    return math.ceil(facts.gpus / each / replicas_per_server - 1e-9) * spans


def bought_gpus(dep: LocalDeployment, gpu: GpuSpec, facts: LocalFacts) -> int:
    """GPUs an owned fleet must buy: whole baseboards of SXM or OAM modules (the catalog's
    board_gpus: 4 or 8; a PCIe card is sold alone), each server holding whole boards (a
    server set to fewer GPUs than a board, costs.gpus_per_server, still holds one)."""
    board = gpu.board_gpus
    whole = math.ceil(facts.gpus / board - 1e-9) * board
    per_server = min(gpu.node_gpus, dep.costs.gpus_per_server or gpu.node_gpus)
    if per_server % board == 0:
        return whole
    return max(whole, _servers(dep, gpu, facts) * math.ceil(per_server / board) * board)


def _hardware_usd(dep: LocalDeployment, gpu: GpuSpec, facts: LocalFacts) -> float:
    return bought_gpus(dep, gpu, facts) * gpu.purchase_usd \
        + _servers(dep, gpu, facts) * dep.costs.server_usd


def _owned(dep: LocalDeployment) -> bool:
    return dep.costs.ownership == "owned"


def hardware(dep: LocalDeployment, gpu: GpuSpec, econ: Economics,
             facts: LocalFacts) -> CostItem | None:
    if _owned(dep):
        total = _hardware_usd(dep, gpu, facts)
        bought = bought_gpus(dep, gpu, facts)
        boards = "" if bought == facts.gpus else \
            (f" (baseboards of {gpu.board_gpus}: {_gpu_count(facts.gpus)} of them serve, the "
             f"rest are idle capacity)")
        return CostItem("hardware", total / econ.amortisation_months, False,
                        f"{bought:,} x {gpu.name} at ${gpu.purchase_usd:,.0f}{boards} + "
                        f"{_servers(dep, gpu, facts)} servers at ${dep.costs.server_usd:,.0f}, "
                        f"over {econ.amortisation_months} months")
    if dep.costs.ownership == "rented_on_demand":
        rate, hours, why = gpu.rental_usd_per_gpu_hour, econ.hours_per_month, ""
    else:
        # a reservation is billed for every hour of the month, used or not
        rate = gpu.reserved_usd_per_gpu_hour
        hours = max(econ.hours_per_month, CALENDAR_HOURS_PER_MONTH)
        why = " (reserved: every hour of the month)" \
            if hours > econ.hours_per_month else ""
    usd = facts.gpus * rate * hours
    basis = (f"{_gpu_count(facts.gpus)} GPUs x ${rate:.2f}/h ({dep.costs.ownership}) x "
             f"{hours:g} h{why}")
    growing = 0.0
    if facts.burst_gpus > 0:
        # an autoscaled reserved fleet reserves its floor; what it scales out to is rented
        # by the hour at the on-demand rate, for the hours the fleet runs
        on_demand = gpu.rental_usd_per_gpu_hour
        growing = facts.burst_gpus * on_demand * econ.hours_per_month
        usd += growing
        basis += (f" + {_gpu_count(facts.burst_gpus)} GPUs on average above the "
                  f"reservation x ${on_demand:.2f}/h (rented_on_demand) x "
                  f"{econ.hours_per_month:g} h")
    elif facts.rented_above_floor_gpus > 0:
        # the autoscaler runs replicas as the traffic needs them: those above the floor
        # come and go with the volume
        growing = facts.rented_above_floor_gpus * rate * hours
    if growing > 0:
        basis += (f"; the {facts.rented_above_floor_gpus:,.2f} GPUs above autoscaling's floor "
                  f"of {_gpu_count(facts.floor_gpus or 0.0)} grow with volume")
    return CostItem("gpu_rental", usd, growing > 0, basis, variable_usd=growing,
                    above_floor=growing > 0)


def electricity(dep: LocalDeployment, gpu: GpuSpec, econ: Economics,
                facts: LocalFacts) -> CostItem | None:
    if not _owned(dep):
        return None
    share = econ.idle_power_fraction + (1 - econ.idle_power_fraction) * facts.busy_fraction
    running = facts.gpus if facts.running_gpus is None else min(facts.gpus, facts.running_gpus)
    # the GPUs of a bought baseboard the fleet does not use idle too
    idle = facts.gpus - running + bought_gpus(dep, gpu, facts) - facts.gpus
    gpus_w = gpu.tdp_w * (running * share + idle * econ.idle_power_fraction)
    kw = (gpus_w + _servers(dep, gpu, facts) * econ.server_power_w) / 1e3
    usd_per_kw = econ.pue * econ.hours_per_month * econ.electricity_usd_per_kwh
    usd = kw * usd_per_kw
    scaled = "" if running >= facts.gpus else \
        f" ({running:.2f} of {_gpu_count(facts.gpus)} GPUs running on average, the rest idle)"
    # only the stepping's power above idle follows the volume, and only as far as more
    # requests lengthen the stepping: not at all once the engines step all the time
    stepping_usd = gpu.tdp_w * running * (1 - econ.idle_power_fraction) \
        * facts.busy_fraction / 1e3 * usd_per_kw
    growing = stepping_usd * busy_time_elasticity(facts.busy_fraction)
    grows = f"{growing / usd:.0%} of it grows with volume" if usd > 0 else ""
    return CostItem("electricity", usd, growing > 0.005 * usd,
                    f"{kw:.2f} kW, the engines stepping {facts.busy_fraction:.0%} of the time "
                    f"(power follows that, not the share of full batches){scaled} x PUE "
                    f"{econ.pue} x "
                    f"{econ.hours_per_month:g} h x ${econ.electricity_usd_per_kwh}/kWh; "
                    f"{grows} (the stepping time's share that more requests lengthen)",
                    variable_usd=growing)


def busy_time_elasticity(busy_fraction: float) -> float:
    """d ln(busy) / d ln(volume) of an engine busy whenever a request is in flight:
    requests arriving at random overlap as in an M/G/infinity system, busy with
    probability b = 1 - exp(-lambda E[S]), so the elasticity is
    -ln(1 - b) (1 - b) / b: 1 at light load (each request adds its own stepping), 0 once
    the engine steps all the time (more requests join batches already running)."""
    b = min(max(busy_fraction, 0.0), 1.0)
    if b <= 1e-9:
        return 1.0
    if b >= 1.0 - 1e-9:
        return 0.0
    return -math.log1p(-b) * (1 - b) / b


def _flat(name: str, pick: Callable[[LocalCosts], float], owned_only: bool,
          basis: str) -> LocalItem:
    def item(dep: LocalDeployment, gpu: GpuSpec, econ: Economics,
             facts: LocalFacts) -> CostItem | None:
        if owned_only and not _owned(dep):
            return None
        return CostItem(name, pick(dep.costs), False, basis)
    return item


def cooling(dep: LocalDeployment, gpu: GpuSpec, econ: Economics,
            facts: LocalFacts) -> CostItem | None:
    if not _owned(dep):
        return None
    return CostItem("cooling", dep.costs.cooling_usd_per_month, False,
                    "beyond the PUE" if dep.costs.cooling_usd_per_month else
                    f"included in PUE {econ.pue}")


def maintenance(dep: LocalDeployment, gpu: GpuSpec, econ: Economics,
                facts: LocalFacts) -> CostItem | None:
    if not _owned(dep):
        return None
    total = _hardware_usd(dep, gpu, facts)
    return CostItem("maintenance", total * dep.costs.maintenance_fraction_per_year / 12, False,
                    f"{dep.costs.maintenance_fraction_per_year:.0%} of ${total:,.0f} a year")


def replacement(dep: LocalDeployment, gpu: GpuSpec, econ: Economics,
                facts: LocalFacts) -> CostItem | None:
    if not _owned(dep):
        return None
    total = _hardware_usd(dep, gpu, facts)
    return CostItem("replacement_cycle", total * dep.costs.replacement_fraction_per_year / 12,
                    False, f"{dep.costs.replacement_fraction_per_year:.0%} of ${total:,.0f} "
                           f"a year replaced")


def rack(dep: LocalDeployment, gpu: GpuSpec, econ: Economics,
         facts: LocalFacts) -> CostItem | None:
    if not _owned(dep):
        return None
    servers = _servers(dep, gpu, facts)
    return CostItem("rack_colocation", servers * dep.costs.rack_usd_per_server_month, False,
                    f"{servers} servers x ${dep.costs.rack_usd_per_server_month:,.0f}")


def software(dep: LocalDeployment, gpu: GpuSpec, econ: Economics,
             facts: LocalFacts) -> CostItem | None:
    rate = dep.costs.serving_software_usd_per_gpu_month
    # every GPU that serves runs the software: an autoscaled reservation's on-demand GPUs
    # above it too (`burst_gpus`, on average); the GPUs an autoscaled rented fleet runs
    # above its floor come and go with the volume
    gpus = facts.gpus + facts.burst_gpus
    growing = facts.rented_above_floor_gpus * rate
    return CostItem("serving_software", gpus * rate, growing > 0,
                    f"{_gpu_count(gpus)} GPUs x ${rate:,.0f}", variable_usd=growing,
                    above_floor=growing > 0)


def engineering(dep: LocalDeployment, gpu: GpuSpec, econ: Economics,
                facts: LocalFacts) -> CostItem | None:
    hours = dep.costs.engineering_hours_per_month
    return CostItem("engineering", hours * econ.engineer_usd_per_hour, False,
                    f"{hours:g} h x ${econ.engineer_usd_per_hour:g}")


def oncall(dep: LocalDeployment, gpu: GpuSpec, econ: Economics,
           facts: LocalFacts) -> CostItem | None:
    hours = dep.costs.oncall_hours_per_month
    return CostItem("on_call", hours * econ.engineer_usd_per_hour, False,
                    f"{hours:g} h x ${econ.engineer_usd_per_hour:g}")


#: GPU-hours between unexpected interruptions of a large H100 fleet: Meta's Llama 3 paper
#: (Dubey et al. 2024, section 3.3.4) counts 419 in 54 days of pre-training on 16,384 H100s
#: (78% of them hardware): 16,384 x 54 x 24 / 419
GPU_HOURS_PER_INTERRUPTION = 16_384 * 54 * 24 / 419


def hardware_incidents(dep: LocalDeployment, gpu: GpuSpec, econ: Economics,
                       facts: LocalFacts) -> CostItem | None:
    """Owned GPUs: the hours their interruptions take, which grow with the fleet (the
    flat engineering and on-call hours do not)."""
    if not _owned(dep):
        return None
    hours = dep.costs.hours_per_hardware_incident
    mtbf = dep.failures.mtbf_hours if dep.failures is not None else None
    if mtbf is not None:
        replicas = facts.gpus / dep.gpus_per_replica
        incidents = replicas * econ.hours_per_month / mtbf
        rate = f"{replicas:g} replicas x {econ.hours_per_month:g} h / failures.mtbf_hours {mtbf:g}"
    else:
        incidents = facts.gpus * econ.hours_per_month / GPU_HOURS_PER_INTERRUPTION
        rate = (f"{_gpu_count(facts.gpus)} GPUs x {econ.hours_per_month:g} h / "
                f"{GPU_HOURS_PER_INTERRUPTION:,.0f} GPU-hours between interruptions (Llama 3 "
                f"paper: 419 in 54 days on 16,384 H100s)")
    return CostItem("hardware_incidents", incidents * hours * econ.engineer_usd_per_hour, False,
                    f"{rate} = {incidents:.2g} interruptions a month x {hours:g} h x "
                    f"${econ.engineer_usd_per_hour:g}")


LOCAL_ITEMS: list[LocalItem] = [
    hardware, electricity, cooling, maintenance, rack, software, engineering, oncall,
    hardware_incidents,
    _flat("monitoring", lambda c: c.monitoring_usd_per_month, False, "per month"),
    replacement,
]


def input_tokens(dep: CloudDeployment, model: CloudModelSpec, econ: Economics,
                 facts: CloudFacts) -> CostItem:
    cached_price = model.cache_read_usd_per_mtok
    if facts.cached_input_tokens is not None:
        # simulated from the workload's shared prefixes and the provider's cache rules
        read, written = facts.cached_input_tokens, facts.cache_write_tokens
        write_price = model.cache_write_usd_per_mtok if model.cache_write_usd_per_mtok \
            is not None else model.input_usd_per_mtok
        plain = facts.input_tokens - read - written
        usd = (plain * model.input_usd_per_mtok + read * cached_price
               + written * write_price) / 1e6
        share = read / facts.input_tokens if facts.input_tokens else 0.0
        return CostItem("input_tokens", usd, True,
                        f"{facts.input_tokens / 1e6:,.1f} M tokens: {plain / 1e6:,.1f} M x "
                        f"${model.input_usd_per_mtok}/M, {read / 1e6:,.1f} M ({share:.0%}) "
                        f"read from the prompt cache at ${cached_price}/M, "
                        f"{written / 1e6:,.1f} M written at ${write_price}/M "
                        f"(simulated){_offered(facts)}")
    cached = dep.costs.cached_input_fraction
    usd = facts.input_tokens / 1e6 * ((1 - cached) * model.input_usd_per_mtok
                                      + cached * cached_price)
    return CostItem("input_tokens", usd, True,
                    f"{facts.input_tokens / 1e6:,.1f} M tokens x ${model.input_usd_per_mtok}/M"
                    + (f" ({cached:.0%} cached at ${cached_price}/M)" if cached else "")
                    + _offered(facts))


def output_tokens(dep: CloudDeployment, model: CloudModelSpec, econ: Economics,
                  facts: CloudFacts) -> CostItem:
    return CostItem("output_tokens", facts.output_tokens / 1e6 * model.output_usd_per_mtok, True,
                    f"{facts.output_tokens / 1e6:,.1f} M tokens x "
                    f"${model.output_usd_per_mtok}/M")


def long_context(dep: CloudDeployment, model: CloudModelSpec, econ: Economics,
                 facts: CloudFacts) -> CostItem | None:
    """What requests past the long-context threshold pay over the standard prices (the
    input and output items price every token at those): their input, cache reads and
    writes (their own as simulated, else at the scenario's cached share) and output at the
    long-context prices. A cache write's long-context price keeps its ratio to the input
    price (Anthropic's and OpenAI's writes are 1.25x input in both tiers)."""
    prices, long = model.long_context, facts.long_context
    if prices is None or not long.calls:
        return None
    if long.cached_input_tokens is not None:
        read, written = long.cached_input_tokens, long.cache_write_tokens
    else:
        read, written = long.input_tokens * dep.costs.cached_input_fraction, 0.0
    write_price = model.cache_write_usd_per_mtok if model.cache_write_usd_per_mtok \
        is not None else model.input_usd_per_mtok
    long_write = write_price * prices.input_usd_per_mtok / model.input_usd_per_mtok \
        if model.input_usd_per_mtok else prices.input_usd_per_mtok
    usd = ((long.input_tokens - read - written) * (prices.input_usd_per_mtok
                                                   - model.input_usd_per_mtok)
           + read * (prices.cache_read_usd_per_mtok - model.cache_read_usd_per_mtok)
           + written * (long_write - write_price)
           + long.output_tokens * (prices.output_usd_per_mtok
                                   - model.output_usd_per_mtok)) / 1e6
    return CostItem("long_context", usd, True,
                    f"{long.calls:,.0f} requests with prompts over "
                    f"{prices.above_input_tokens:,} tokens ({long.input_tokens / 1e6:,.1f} "
                    f"M input, {read / 1e6:,.1f} M of it read from the prompt cache, "
                    f"{long.output_tokens / 1e6:,.1f} M output tokens) billed at "
                    f"the long-context prices, ${prices.input_usd_per_mtok}/M in and "
                    f"${prices.output_usd_per_mtok}/M out: the difference")


def abandoned_attempts(dep: CloudDeployment, model: CloudModelSpec, econ: Economics,
                       facts: CloudFacts) -> CostItem | None:
    """Attempts the provider worked on that gave no answer: the client gave up on them at
    retry.request_timeout_s, or the provider cut the answer at the client's max_tokens.
    Their prompts and the tokens generated are billed (at full price), and a retry or the
    failed request is paid again."""
    gone = facts.abandoned
    if not gone.calls:
        return None
    usd = (gone.input_tokens * model.input_usd_per_mtok
           + gone.output_tokens * model.output_usd_per_mtok) / 1e6
    cut = (f", or cut at the client's max_tokens (limits.max_tokens "
           f"{dep.limits.max_tokens:,})" if dep.limits.max_tokens else "")
    return CostItem("abandoned_attempts", usd, True,
                    f"{gone.calls:,.0f} attempts billed without an answer, timed out by the "
                    f"client (retry.request_timeout_s {dep.retry.request_timeout_s:g} s) "
                    f"after the provider began{cut}: {gone.input_tokens / 1e6:,.1f} M input "
                    f"tokens x ${model.input_usd_per_mtok}/M + "
                    f"{gone.output_tokens / 1e6:,.1f} M output tokens generated "
                    f"by then x ${model.output_usd_per_mtok}/M")


def _per_request(name: str, pick: Callable[[CloudCosts], float], basis: str) -> CloudItem:
    def item(dep: CloudDeployment, model: CloudModelSpec, econ: Economics,
             facts: CloudFacts) -> CostItem:
        return CostItem(name, facts.requests * pick(dep.costs), True,
                        f"{facts.requests:,.0f} requests x {basis}")
    return item


def _not_given(costs: CloudCosts, field: str) -> str | None:
    """The basis of a cloud cost at $0, llmplan's default: said, not hidden
    (the local side's people and monitoring have non-zero defaults; these have no figure
    llmplan could stand behind)."""
    if getattr(costs, field):
        return None
    # read from the value, not from whether the file set it: a stack file carries every
    # field, and replaying it must price the same
    return f"$0: llmplan's default when not given (set costs.{field})"


def _monthly(name: str, field: str) -> CloudItem:
    def item(dep: CloudDeployment, model: CloudModelSpec, econ: Economics,
             facts: CloudFacts) -> CostItem:
        return CostItem(name, getattr(dep.costs, field), False,
                        _not_given(dep.costs, field) or "per month")
    return item


#: bytes of text a token stands for (OpenAI's rule of thumb for English)
BYTES_PER_TOKEN = 4.0


def egress(dep: CloudDeployment, model: CloudModelSpec, econ: Economics,
           facts: CloudFacts) -> CostItem:
    per_request_kb = dep.costs.egress_kb_per_request
    if per_request_kb is not None:
        gb = facts.requests * per_request_kb / 1e6
        how = f"{facts.requests:,.0f} requests x {per_request_kb:g} KB"
    else:
        gb = facts.input_tokens * BYTES_PER_TOKEN / 1e9
        how = (f"the prompts' {facts.input_tokens / 1e6:,.1f} M tokens x "
               f"{BYTES_PER_TOKEN:g} bytes")
    return CostItem("network_egress", gb * dep.costs.egress_usd_per_gb, True,
                    f"{gb:,.1f} GB ({how}) x ${dep.costs.egress_usd_per_gb}/GB")


def vendor_review(dep: CloudDeployment, model: CloudModelSpec, econ: Economics,
                  facts: CloudFacts) -> CostItem:
    return CostItem("vendor_review", dep.costs.vendor_review_usd_one_off
                    / econ.amortisation_months, False,
                    _not_given(dep.costs, "vendor_review_usd_one_off")
                    or f"${dep.costs.vendor_review_usd_one_off:,.0f} once, over "
                       f"{econ.amortisation_months} months")


CLOUD_ITEMS: list[CloudItem] = [
    input_tokens, output_tokens, long_context, abandoned_attempts,
    _per_request("request_fees", lambda c: c.per_request_usd, "fee"),
    _per_request("tool_calls", lambda c: c.tool_calls_per_request * c.usd_per_tool_call,
                 "tool calls"),
    _monthly("storage_retrieval", "storage_retrieval_usd_per_month"),
    egress,
    _monthly("observability", "observability_usd_per_month"),
    vendor_review,
    _monthly("rate_limit_planning", "rate_limit_planning_usd_per_month"),
]


def local_items(dep: LocalDeployment, catalog: Catalog, econ: Economics,
                facts: LocalFacts) -> list[CostItem]:
    gpu = catalog.gpus[dep.gpu]
    return [item for fn in LOCAL_ITEMS if (item := fn(dep, gpu, econ, facts)) is not None]


def cloud_items(dep: CloudDeployment, catalog: Catalog, econ: Economics,
                facts: CloudFacts) -> list[CostItem]:
    model = catalog.cloud_models[dep.model]
    return [item for fn in CLOUD_ITEMS if (item := fn(dep, model, econ, facts)) is not None]


def over_budget(monthly_usd: float, max_monthly_usd: float) -> str:
    """Why a candidate costing `monthly_usd` breaks constraints.max_monthly_usd."""
    return f"costs ${monthly_usd:,.0f}/month, over the ${max_monthly_usd:,.0f} budget"
