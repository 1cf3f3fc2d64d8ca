"""What the decision adds to a simulation: cost, feasibility, the recommendation and the
evidence around it (break-even, the seed's decision table and checklist, planning)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from llmplan.results._base import ResultModel
from llmplan.results.simulation import DeploymentResult, RunInfo


class CostLine(ResultModel):
    """One item of a cost list (the seed's local or cloud list), per month."""

    item: str
    usd_per_month: float
    variable: bool
    basis: str


class CostSummary(ResultModel):
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("gpus_bought", "above_floor_usd_per_month",
                                                 "floor_requests_per_month")

    monthly_usd: float
    fixed_usd_per_month: float = Field(
        description="What stays at any volume (an autoscaled rented fleet: at its "
                    "min_replicas).")
    variable_usd_per_month: float = Field(
        description="What grows with volume, at the costed volume: in proportion to it, but "
                    "for above_floor_usd_per_month.")
    above_floor_usd_per_month: float | None = Field(
        default=None, description="An autoscaled rented fleet: of variable_usd_per_month, "
                                  "the GPUs it runs above its floor (autoscaling."
                                  "min_replicas), which follow the volume down only to "
                                  "floor_requests_per_month.")
    floor_requests_per_month: float | None = Field(
        default=None, description="An autoscaled rented fleet: the monthly volume its floor "
                                  "alone carries (replicas in proportion to the volume); "
                                  "below it the fleet still pays for its min_replicas.")
    requests_per_month: float
    useful_results_per_month: float
    usd_per_1k_requests: float | None = Field(description="Per 1,000 requests offered.")
    usd_per_million_output_tokens: float | None = Field(
        description="Per million output tokens the requests offered ask for (hidden "
                    "reasoning included), answered or not.")
    usd_per_useful_result: float | None
    items: list[CostLine]
    gpus_bought: int | None = Field(
        default=None, description="An owned fleet's GPUs bought, when whole baseboards "
                                  "(4 or 8 SXM/OAM modules) make them more than it uses.")

    def useful_share(self) -> float:
        """The share of requests that are useful results (within the SLO x task quality),
        as simulated: what a volume's cost is divided by to rank it."""
        return self.useful_results_per_month / self.requests_per_month \
            if self.requests_per_month else 0.0

    def usd_per_request_from(self, requests_per_month: float) -> float:
        """What one more request a month adds at this volume: the variable part per
        request, and an autoscaled fleet's GPUs above its floor only past the volume the
        floor carries."""
        if not self.requests_per_month:
            return 0.0
        above, knee = self.above_floor_usd_per_month or 0.0, self.floor_requests_per_month
        per_request = (self.variable_usd_per_month - above) / self.requests_per_month
        if knee is not None and requests_per_month >= knee and self.requests_per_month > knee:
            per_request += above / (self.requests_per_month - knee)
        return per_request

    def usd_at(self, requests_per_month: float) -> float:
        """The monthly cost at another volume: fixed + variable in proportion to the volume,
        an autoscaled fleet's GPUs above its floor from the volume the floor carries (equal
        to monthly_usd at requests_per_month)."""
        if not self.requests_per_month:
            return self.monthly_usd
        above, knee = self.above_floor_usd_per_month or 0.0, self.floor_requests_per_month
        usd = self.fixed_usd_per_month + (self.variable_usd_per_month - above) \
            * requests_per_month / self.requests_per_month
        if knee is not None and requests_per_month > knee and self.requests_per_month > knee:
            usd += above * (requests_per_month - knee) / (self.requests_per_month - knee)
        return usd


class Candidate(DeploymentResult):
    """A simulated deployment with its cost and whether it may be chosen at all."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = (*DeploymentResult.OMIT_WHEN_NONE,
                                                 "daily_limit")

    cost: CostSummary
    feasible: bool
    infeasible_because: list[str]
    latency_from: str = Field(description="Where its latency figures come from: measured "
                                          "(calibrated), roofline defaults, or the provider "
                                          "latency given in the scenario or assumed.")
    daily_limit: str | None = Field(
        default=None, description="A hybrid whose API's daily limit is short of a day of "
                                  "the calls it sends there, in a run shorter than a day "
                                  "(which never reaches it), kept in: past the limit every "
                                  "call goes to its fleet, whose own run on the whole "
                                  "traffic meets the SLO. What was simulated and what not.")

    def excluded(self, why: str) -> Candidate:
        """This candidate, infeasible for one more reason."""
        return self.model_copy(update={"feasible": False,
                                       "infeasible_because": [*self.infeasible_because, why]})

    def serves_with(self) -> str:
        """As the simulation says, and the GPUs bought when whole baseboards make them more
        ("2 x H100-SXM (4 bought)")."""
        shown = super().serves_with()
        bought = self.cost.gpus_bought
        if bought is None:
            return shown
        fleet, plus, cloud = shown.partition(" + ")
        return f"{fleet} ({bought:,} bought){plus}{cloud}"

    def too_long_by_task(self) -> str:
        """" (too long by task: ...)": which tasks the requests too long for the model
        were, and the limit (the local engine's max_model_len, the API's window and
        longest answer); "" when none was."""
        tasks = [f"{task} {outcome.too_long:,} of {outcome.requests:,}"
                 for task, outcome in self.per_task.items() if outcome.too_long]
        if not tasks:
            return ""
        local, cloud = self.local, self.cloud
        limit = ""
        if local is not None:
            limit = f"; max_model_len {local.engine.max_model_len:,} tokens"
        if cloud is not None and cloud.context_tokens is not None:
            most = f", at most {cloud.max_output_tokens:,} out (reasoning included)" \
                if cloud.max_output_tokens is not None else ""
            limit += f"; {cloud.model}'s window {cloud.context_tokens:,} tokens{most}"
            if cloud.client_max_tokens is not None:
                limit += f"; the client's limits.max_tokens {cloud.client_max_tokens:,}"
        return f" (too long by task: {', '.join(tasks)}{limit})"

    @classmethod
    def of(cls, simulated: DeploymentResult, cost: CostSummary, reasons: list[str],
           latency_from: str) -> Candidate:
        fields = {name: getattr(simulated, name) for name in DeploymentResult.model_fields}
        return cls(**fields, cost=cost, feasible=not reasons, infeasible_because=reasons,
                   latency_from=latency_from)


class Driver(ResultModel):
    """One thing that decides the recommendation, and where its number comes from."""

    text: str
    basis: str


class Recommendation(ResultModel):
    deployment: str | None
    ranking: list[str]
    reason: str
    drivers: list[Driver] = Field(default_factory=list)


#: how far (a share of it) the break-even per useful result must lie from the cost
#: break-even for the terminal's line to give it too
PER_USEFUL_MOVES = 0.1


class BreakEven(ResultModel):
    """Monthly volume where a local and a cloud candidate cost the same (fixed + variable)."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("fleet_must_grow",
                                                 "local_slo_capacity_requests_per_month",
                                                 "local_floor_requests_per_month",
                                                 "local_dearer_again_requests_per_month",
                                                 "excluded", "local_useful_share",
                                                 "cloud_useful_share",
                                                 "break_even_useful_requests_per_month",
                                                 "local_dearer_again_useful_requests_per_month")

    local: str
    cloud: str
    local_fixed_usd: float
    local_usd_per_request: float
    cloud_fixed_usd: float
    cloud_usd_per_request: float
    break_even_requests_per_month: float | None
    local_dearer_again_requests_per_month: float | None = Field(
        default=None, description="The volume past which the local side costs more than "
                                  "the cloud one (again): with a break-even, an autoscaled "
                                  "fleet whose reserved floor beats the API but whose "
                                  "on-demand GPUs above it cost more per request (the "
                                  "local side costs less only between the two); without "
                                  "one, a fleet whose fixed costs are under the API's own "
                                  "monthly fees and whose requests cost more (it costs "
                                  "less only below this volume).")
    simulated_requests_per_month: float
    local_useful_share: float | None = Field(
        default=None, description="The share of the local side's requests that are useful "
                                  "results (within the SLO x task quality), as simulated.")
    cloud_useful_share: float | None = Field(
        default=None, description="The same for the cloud side.")
    break_even_useful_requests_per_month: float | None = Field(
        default=None, description="The monthly volume where the two cost the same per "
                                  "useful result, the measure the recommendation ranks by "
                                  "(each side's useful share held as simulated): the "
                                  "local side costs less per useful result above it (None: "
                                  "no such volume). The same as the break-even when the "
                                  "two shares are.")
    local_dearer_again_useful_requests_per_month: float | None = Field(
        default=None, description="The volume past which the local side costs more per "
                                  "useful result than the cloud one (again), as "
                                  "local_dearer_again_requests_per_month is for costs: the "
                                  "two lines weighted by the other side's useful share.")
    local_floor_requests_per_month: float | None = Field(
        default=None, description="An autoscaled rented fleet: the volume its min_replicas "
                                  "carry; below it the fleet costs local_fixed_usd, above it "
                                  "local_usd_per_request more per request.")
    local_capacity_requests_per_month: float | None = Field(
        default=None, description="The most the local fleet as simulated serves in a month: "
                                  "the month's volume at which the traffic's sustained "
                                  "rate (the run's mean, or a diurnal traffic's daily "
                                  "peak) reaches its full-batch throughput, an autoscaled "
                                  "fleet's at its max_replicas (an upper bound; the SLO "
                                  "may bind first: see planning).")
    local_slo_capacity_requests_per_month: float | None = Field(
        default=None, description="With planning: the monthly volume at which the busiest "
                                  "stretch arrives at the highest rate the fleet serves "
                                  "within the SLO (planning's max_sustainable_requests_per_s)"
                                  "; the break-even is checked against it too.")
    fleet_must_grow: str | None = Field(
        default=None, description="When the break-even is past that capacity: the fleet "
                                  "needed there (a fixed fleet's added replicas bring fixed "
                                  "costs that move the break-even; an autoscaled one must "
                                  "have its max_replicas raised).")
    excluded: str | None = Field(
        default=None, description="Which side of the pair the decision excluded, and why "
                                  "(its infeasible_because): the two cost lines still cross "
                                  "at the break-even, but the answer is not the excluded "
                                  "side, below it or above (a constraint such as restricted "
                                  "data holds at every volume; an SLO miss at the simulated "
                                  "one).")

    def cheaper_at_every_volume(self, local_weight: float = 1.0,
                                cloud_weight: float = 1.0) -> str:
        """Without a crossing: the side that costs less at every volume (the lines never
        cross, so the one cheaper at no volume at all; fixed costs equal: the cheaper per
        request). Each side's costs times its weight: the other side's useful share, to
        compare costs per useful result (as the break-even's crossings are weighted)."""
        local_fixed = local_weight * self.local_fixed_usd
        cloud_fixed = cloud_weight * self.cloud_fixed_usd
        if local_fixed != cloud_fixed:
            return self.local if local_fixed < cloud_fixed else self.cloud
        return self.local if local_weight * self.local_usd_per_request \
            <= cloud_weight * self.cloud_usd_per_request else self.cloud

    def line(self) -> str:
        """The break-even in words: the volume, against the costed one, and which side
        costs less on either side of it (and the fleet it would take, when more)."""
        volume = self.break_even_requests_per_month
        again = self.local_dearer_again_requests_per_month
        costed = self.simulated_requests_per_month
        if not volume and not again:
            return (f"{self.local} against {self.cloud}: none, {self.cheaper_at_every_volume()} "
                    "costs less at every volume" + self.per_useful_words()
                    + (f"; {self.excluded}" if self.excluded else ""))
        if not volume:
            assert again is not None
            line = (f"{self.local} and {self.cloud} cost the same at {_volume(again)} "
                    f"requests a month, x{again / costed:.3g} the costed {costed:,.0f}: "
                    f"{self.local} costs less below it (its fixed costs are under "
                    f"{self.cloud}'s), {self.cloud} above (its requests cost less: "
                    f"${self.cloud_usd_per_request * 1e3:,.3g} per 1k against "
                    f"${self.local_usd_per_request * 1e3:,.3g})")
        else:
            line = (f"{self.local} and {self.cloud} cost the same at {_volume(volume)} "
                    f"requests a month, x{volume / costed:.3g} the costed {costed:,.0f}: "
                    f"{self.cloud} costs less below it, {self.local} above")
            if again:
                line += (f" it up to {_volume(again)} (x{again / costed:.3g}), where "
                         f"{self.cloud} costs less again: {self.local}'s GPUs above its "
                         f"floor cost ${self.local_usd_per_request * 1e3:,.3g} per 1k "
                         f"requests against {self.cloud}'s "
                         f"${self.cloud_usd_per_request * 1e3:,.3g}")
        line += f"; {self.fleet_must_grow}" if self.fleet_must_grow else ""
        line += self.per_useful_words()
        return line + (f"; {self.excluded}" if self.excluded else "")

    def per_useful_words(self) -> str:
        """"; per useful result ... at 1.23 M": where the two cost the same per useful
        result (where the local side starts and, when it does, stops costing less), when
        the sides' useful shares move either volume more than PER_USEFUL_MOVES from its
        cost break-even (or one exists without the other); "" otherwise, as within the
        costs' own uncertainty it would only repeat the figures."""
        ul, uc = self.local_useful_share, self.cloud_useful_share
        volume, again = self.break_even_useful_requests_per_month, \
            self.local_dearer_again_useful_requests_per_month
        if ul is None or uc is None or (
                _near(volume, self.break_even_requests_per_month)
                and _near(again, self.local_dearer_again_requests_per_month)):
            return ""
        shares = (f"per useful result, which the ranking uses ({ul:.0%} of {self.local}'s "
                  f"requests useful, {uc:.0%} of {self.cloud}'s)")
        if not volume and not again:
            cheaper = self.cheaper_at_every_volume(uc, ul) if ul and uc else self.cloud
            return f"; {shares}, {cheaper} costs less at every volume"
        costed = self.simulated_requests_per_month
        past = self.per_useful_past_capacity()
        if not volume:
            assert again is not None
            return (f"; {shares}, they cost the same at {_volume(again)} requests a month, "
                    f"x{again / costed:.3g} the costed: {self.local} below it, "
                    f"{self.cloud} above" + (f" ({past})" if past else ""))
        up_to = (f" it up to {_volume(again)} (x{again / costed:.3g}), {self.cloud} above "
                 "that") if again else ""
        return (f"; {shares}, they cost the same at {_volume(volume)} requests a month, "
                f"x{volume / costed:.3g} the costed: {self.cloud} below it, {self.local} "
                f"above{up_to}" + (f" ({past})" if past else ""))

    def per_useful_past_capacity(self) -> str:
        """"past the 13.2 M gpu serves within the SLO as simulated: it must grow" when a
        volume where the two cost the same per useful result lies past what the local
        fleet serves a month (within the SLO when planning found it, else with full
        batches): the first crossing, above which the fleet costs less, or, that one
        within it, the second, up to which it does (its cheaper stretch runs past what it
        serves); "" otherwise."""
        volume = self.break_even_useful_requests_per_month
        again = self.local_dearer_again_useful_requests_per_month
        serves = self.local_slo_capacity_requests_per_month \
            or self.local_capacity_requests_per_month
        if serves is None:
            return ""
        within = ' within the SLO' if self.local_slo_capacity_requests_per_month else ''
        if volume and volume > serves:
            return f"past the {_volume(serves)} {self.local} serves{within} as simulated: " \
                "it must grow"
        if not again or again <= serves:
            return ""
        return (f"the {_volume(again)} is past the {_volume(serves)} {self.local} "
                f"serves{within} as simulated: it must grow to cost less up to it")


def _near(useful: float | None, cost: float | None) -> bool:
    """Whether a crossing per useful result only repeats the cost one: both absent, or
    both there within PER_USEFUL_MOVES of it."""
    if not useful or not cost:
        return not useful and not cost
    return abs(useful - cost) <= PER_USEFUL_MOVES * cost


def _volume(requests_per_month: float) -> str:
    """A monthly volume as the break-even line says it: millions, or whole requests."""
    return f"{requests_per_month / 1e6:,.3g} M" if requests_per_month >= 1e6 \
        else f"{requests_per_month:,.0f}"


class DecisionRow(ResultModel):
    """One of the seed's seven questions, answered per candidate."""

    question: str
    answers: dict[str, str]


class ChecklistItem(ResultModel):
    """One line of the seed's evaluation checklist and what this run knows about it."""

    item: str
    status: str
    evidence: str


class LoadPoint(ResultModel):
    requests_per_s: float
    goodput_fraction: float | None
    ttft_p95_ms: float | None
    e2e_p95_ms: float | None


class DeploymentPlan(ResultModel):
    min_replicas_meeting_slo: int | None
    max_sustainable_requests_per_s: float | None
    load_curve: list[LoadPoint]


class SensitivityCase(ResultModel):
    change: str
    winner: str | None
    ranking: list[str]


class PlanningWindow(ResultModel):
    """The stretch of the request stream the planning searches simulate: the `requests`
    consecutive requests that arrive in the shortest time (the busiest stretch)."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("sped_up_to_peak", "light_draw")

    requests: int
    start_s: float
    span_s: float
    whole_stream: bool
    sped_up_to_peak: float | None = Field(
        default=None,
        description="The simulated hours miss the diurnal traffic's daily peak: the "
                    "stretch's arrivals were sped up this many times (span_s is the sped-up "
                    "span), so planning judges every candidate at the peak's rate, as if "
                    "the run had been simulated at the peak hour.")
    light_draw: float | None = Field(
        default=None,
        description="The stretch arrives this many times lighter than the long-run rate "
                    "the month's costs are at (conversations the run's end cuts off, a light "
                    "draw): a rate it sustains stands for that much less of the month's "
                    "volume (None: not lighter).")

    def peak_requests_per_s(self) -> float | None:
        """The daily peak's rate, when the run misses it (None otherwise)."""
        if self.sped_up_to_peak is None or self.span_s <= 0:
            return None
        return self.requests / self.span_s


class RightSizedFleet(ResultModel):
    """A candidate with its local fleet at the fewest replicas meeting the SLO."""

    fleet: str = Field(description="The local deployment resized (a hybrid's local part).")
    replicas: int
    simulated_replicas: int
    monthly_usd: float
    usd_per_useful_result: float | None
    feasible: bool


class RightSized(ResultModel):
    """The decision again with every fixed local fleet at the fewest replicas meeting the
    SLO on the whole stream (the other candidates as simulated)."""

    fleets: dict[str, RightSizedFleet]
    recommendation: Recommendation


class Planning(ResultModel):
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("right_sized",)

    deployments: dict[str, DeploymentPlan]
    sensitivity: list[SensitivityCase]
    window: PlanningWindow
    notes: list[str] = Field(default_factory=list,
                             description="What the searches could not answer, and why.")
    right_sized: RightSized | None = Field(
        default=None, description="The answer with fixed local fleets resized to the fewest "
                                  "replicas meeting the SLO (absent when none changes).")

    def monthly_capacity(self, name: str, requests_per_month: float) -> float | None:
        """The monthly volume candidate `name` serves within the SLO: the month's volume
        (`requests_per_month` as simulated) at which the busiest stretch arrives at its
        highest sustainable rate, over how much lighter the stretch arrived than the month's
        rate (None: no rate found, or no stretch)."""
        found = self.deployments.get(name)
        rate = found.max_sustainable_requests_per_s if found is not None else None
        window = self.window
        if rate is None or window.span_s <= 0 or not window.requests:
            return None
        return requests_per_month * rate / (window.requests / window.span_s) \
            / (window.light_draw or 1.0)


class Result(ResultModel):
    """result.json: the simulation, the decision and (when run) planning."""

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("planning", "unbuildable")

    scenario: RunInfo
    deployments: dict[str, Candidate]
    recommendation: Recommendation
    break_even: list[BreakEven]
    decision_table: list[DecisionRow]
    checklist: list[ChecklistItem]
    planning: Planning | None = None
    unbuildable: dict[str, str] | None = Field(
        default=None, description="Deployments of the scenario that cannot be built as "
                                  "written (the model does not fit the GPU's memory at that "
                                  "tp, vLLM refuses the tp, or a hybrid built on one): not "
                                  "simulated. Name -> the field and why, with what would fit.")

    def break_even_lines(self) -> list[str]:
        """The break-even of the recommended candidate against each feasible one on the
        other side (a local fleet against each API, an API against each fleet), in words:
        where the answer would change with volume on cost alone."""
        best = self.recommendation.deployment
        return [row.line() for row in self.break_even
                if best in (row.local, row.cloud)
                and self.deployments[row.local].feasible
                and self.deployments[row.cloud].feasible]

    def right_sized_answer(self) -> tuple[RightSized, str] | None:
        """Planning's answer with each fixed fleet at the fewest replicas meeting the SLO,
        and the candidate it picks, when that changes the answer or the recommended fleet's
        size (None otherwise)."""
        sized = self.planning.right_sized if self.planning is not None else None
        if sized is None or sized.recommendation.deployment is None:
            return None
        best = sized.recommendation.deployment
        written = self.recommendation.deployment
        if written is not None and best != written:
            # a right-sized answer within the recommendation's tie band (0.5% per useful
            # result) of the written answer, right-sized too, does not switch it
            ours, theirs = self._sized_per_useful(sized, written), \
                self._sized_per_useful(sized, best)
            if ours is not None and theirs is not None and ours <= theirs * 1.005:
                best = written
        if best not in sized.fleets and best == written:
            return None
        return sized, best

    def _sized_per_useful(self, sized: RightSized, name: str) -> float | None:
        """`name`'s cost per useful result with the fleets right-sized (None: not
        feasible so, or nothing useful)."""
        fleet = sized.fleets.get(name)
        if fleet is not None:
            return fleet.usd_per_useful_result if fleet.feasible else None
        dep = self.deployments[name]
        return dep.cost.usd_per_useful_result if dep.feasible else None

    def headline(self) -> str:
        """The recommendation as the terminal and the report head it: the candidate, and
        "as written" when right-sizing the fleets would change the answer (the line under
        it says to what)."""
        named = self.recommendation.deployment or "none"
        answer = self.right_sized_answer()
        if self.recommendation.deployment is None or answer is None:
            return named
        sized, best = answer
        fleet = sized.fleets.get(best)
        if best != named:
            return f"{named} with the fleets as written (right-sized: {best})"
        assert fleet is not None
        plural = "s" if fleet.replicas > 1 else ""
        return f"{named} as written (right-sized: {fleet.replicas} replica{plural})"

    def right_sized_line(self) -> str | None:
        """What the answer is with each fixed fleet at the fewest replicas meeting the SLO,
        when that changes the answer or the recommended fleet's size (None otherwise)."""
        answer = self.right_sized_answer()
        if answer is None:
            return None
        sized, best = answer
        fleet = sized.fleets.get(best)
        if fleet is None:
            cost = self.deployments[best].cost
            monthly, per_useful = cost.monthly_usd, cost.usd_per_useful_result
            what = f"{best} as simulated"
        else:
            monthly, per_useful = fleet.monthly_usd, fleet.usd_per_useful_result
            plural = "s" if fleet.replicas > 1 else ""
            of = "" if fleet.fleet == best else f" of {fleet.fleet}"
            what = (f"{best} with {fleet.replicas} replica{plural}{of} "
                    f"(simulated with {fleet.simulated_replicas})")
        per_1k = "" if per_useful is None else f", ${per_useful * 1e3:,.2f} per 1k useful results"
        written = self.recommendation.deployment
        now = self.deployments[written].cost.usd_per_useful_result if written else None
        if per_useful is not None and now is not None and written != best:
            per_1k += f" (against ${now * 1e3:,.2f} for {written} as written)"
        line = (f"with each fixed fleet at the fewest replicas meeting the SLO, the answer is "
                f"{what}: ${monthly:,.0f}/month{per_1k}")
        if fleet is not None:
            line += (f"; set deployments.{fleet.fleet}.replicas: {fleet.replicas} and run "
                     "again to build it")
        return line

    def first_answer_tokens(self) -> list[str]:
        """Per candidate, with hidden reasoning in the workload: the time to the first token
        of the answer (p95), which its TTFT is not where the reasoning streams first."""
        lines = []
        for name, dep in self.deployments.items():
            visible = dep.latency.ttft_visible_ms
            if visible is None or visible.p95 is None:
                continue
            withheld = dep.cloud is not None and dep.cloud.reasoning_streamed is False \
                and dep.local is None
            lines.append(f"{name} {visible.p95:,.0f} ms"
                         + (" (its TTFT: the API withholds the reasoning)" if withheld else ""))
        return lines

    def monthly_volume(self) -> str:
        """The month the costs are for, and what its volume rests on, in words."""
        volume = max((d.cost.requests_per_month for d in self.deployments.values()),
                     default=0.0)
        basis = self.scenario.volume_basis or "the simulated window's own rate"
        return f"monthly costs at {volume:,.0f} requests a month: {basis}"
