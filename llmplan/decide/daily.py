"""An API's daily limits against a day of the traffic, and a hybrid's fleet past them.

A run shorter than a day starts the day's counters at zero, so a limit of 1,000 requests
a day shows nothing in ten minutes of a request a second: the calls the run sent the API,
at the traffic's long-run rate, are set against the limits here. An API alone cannot
carry the rest. A hybrid that falls back to its fleet sends the rest there at once (a
429 whose retry-after is the rest of the day: sim/cloud.py), so from the moment its limit
is spent it is its local fleet serving the whole traffic, which that fleet's own run on
the same stream shows: the hybrid is judged by the two runs, not by the limit alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplan.catalog import CloudModelSpec
from llmplan.decide.costs import over_budget
from llmplan.results.decision import Candidate, CostSummary
from llmplan.results.simulation import CloudOutcome, DeploymentResult, RunInfo
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.sim.cloud import daily_limits, make_limiter
from llmplan.traffic.arrivals import DAY_S, duration_words


@dataclass(frozen=True)
class DailyShortfall:
    """The API's daily limits short of a day of the calls sent to it."""

    api: str
    #: of the day's calls, the share the tightest limit lets through (under 1)
    share: float
    #: that limit, as the scenario or the catalog's default tier gives it
    limit: str
    #: the day's calls (or tokens) it is short of
    need: str
    #: every limit short of the day and the figure it must reach
    raise_to: tuple[str, ...]

    def words(self, whose: str = "this traffic sends it") -> str:
        """"api's daily limit (20,000 requests/day) carries 12.3% of the 162,269 calls a
        day this traffic sends it"."""
        return (f"{self.api}'s daily limit ({self.limit}) carries {self.share:.1%} of the "
                f"{self.need} {whose}")

    def advice(self) -> str:
        """"to carry it, raise it to at least ...": each limit short of the day (raising
        only the tighter leaves the other one short)."""
        return (f"to carry it, raise {'them' if len(self.raise_to) > 1 else 'it'} to at "
                "least " + " and ".join(self.raise_to))


def _tokens_counted_per_call(api: CloudDeployment, model: CloudModelSpec,
                             cloud: CloudOutcome) -> float:
    """Tokens an answered call counts against the API's token limits in the end, as its
    limiter settles them (Bedrock: the uncached prompt and the output at its burndown; the
    others: prompt + max_tokens), at the run's means."""
    prompt, output = cloud.input_tokens / cloud.served, cloud.output_tokens / cloud.served
    cached = (cloud.cached_input_tokens or 0) / cloud.input_tokens if cloud.input_tokens \
        else 0.0
    limiter = make_limiter(api, model, cached if cloud.cached_input_tokens is not None
                           else None)
    reserve = float(api.limits.max_tokens) if api.limits.max_tokens else output
    return limiter.tokens_counted(prompt + reserve, prompt + output, prompt)


def daily_shortfall(name: str, summary: DeploymentResult, loaded: LoadedScenario,
                    info: RunInfo) -> DailyShortfall | None:
    """How far the daily limits of candidate `name`'s API (a hybrid's: the one it sends
    to) fall short of a day of the calls the run sent it, at the traffic's long-run rate
    (None: they do not, there are none, or nothing reached the API)."""
    dep = loaded.scenario.deployments[name]
    api_name = dep.cloud if isinstance(dep, HybridDeployment) else name
    api = loaded.scenario.deployments[api_name]
    cloud = summary.cloud
    if not isinstance(api, CloudDeployment) or cloud is None or info.requests <= 0 \
            or info.duration_s <= 0 or cloud.served <= 0 or cloud.requests_sent <= 0:
        return None
    rate = info.long_run_requests_per_s or info.requests / info.duration_s
    calls_per_day = rate * cloud.requests_sent / info.requests * DAY_S
    model = loaded.catalog.cloud_models[api.model]
    requests_per_day, day_tokens = daily_limits(api, model)
    # a limit the scenario does not give is its default tier's, from the catalog
    tier = "" if api.limits.requests_per_day else f", {api.model}'s {model.default_tier}"
    found = []
    if requests_per_day and calls_per_day > requests_per_day:
        found.append((requests_per_day / calls_per_day,
                      f"{requests_per_day:,.0f} requests/day{tier}",
                      f"{calls_per_day:,.0f} calls a day",
                      f"{math.ceil(calls_per_day):,} requests/day (limits.requests_per_day)"))
    tier = "" if api.limits.tokens_per_day else f", {api.model}'s {model.default_tier}"
    tokens_per_day = calls_per_day * _tokens_counted_per_call(api, model, cloud)
    if day_tokens and tokens_per_day > day_tokens:
        found.append((day_tokens / tokens_per_day, f"{day_tokens:,.0f} tokens/day{tier}",
                      f"{tokens_per_day:,.0f} tokens a day",
                      f"{math.ceil(tokens_per_day):,} tokens/day (limits.tokens_per_day)"))
    if not found:
        return None
    share, limit, need, _ = min(found)
    return DailyShortfall(api_name, share, limit, need, tuple(f[3] for f in found))


def daily_limit_reason(name: str, summary: DeploymentResult, loaded: LoadedScenario,
                       info: RunInfo) -> str | None:
    """Why the API's daily limits cannot carry a day of this traffic (None: they can, there
    are none, or the run spans a day and saw them itself): an API alone, or a hybrid that
    does not fall back to its fleet (the rest of the day's calls fail). A hybrid that
    falls back is judged by past_the_daily_limit."""
    dep = loaded.scenario.deployments[name]
    if info.duration_s >= DAY_S or (isinstance(dep, HybridDeployment)
                                    and dep.fallback_to_local):
        return None
    short = daily_shortfall(name, summary, loaded, info)
    if short is None:
        return None
    return (f"{short.words()} (a run shorter than a day starts the day's count at zero)"
            + ("; fallback_to_local is off, so the rest fail"
               if isinstance(dep, HybridDeployment) else "")
            + f"; {short.advice()}")


def _serving_reasons(found: Candidate, loaded: LoadedScenario) -> list[str]:
    """Why a fleet cannot serve its traffic itself: every reason it is excluded but the
    budget, which the hybrid is judged by at its own cost."""
    most = loaded.scenario.constraints.max_monthly_usd
    budget = over_budget(found.cost.monthly_usd, most) if most is not None else None
    return [why for why in found.infeasible_because if why != budget]


def past_the_daily_limit(candidates: dict[str, Candidate], loaded: LoadedScenario,
                         info: RunInfo,
                         fleet_runs: dict[str, Candidate | None] | None = None
                         ) -> dict[str, Candidate]:
    """The candidates, each hybrid that falls back to its fleet judged past its API's
    daily limit (the limit short of a day of the calls it sends the API).

    A run of a day or more saw the limit spent and the rest served by the fleet: its SLO
    is the verdict, and a miss names the limit among its causes. A shorter run never got
    there: past the limit the hybrid is its fleet serving the whole traffic, which the
    fleet's own run on the same stream shows (`fleet_runs`: that run per hybrid, None
    where there is none; by default the fleet's candidate). A fleet that serves it (within
    the SLO, and every other serving check) keeps the hybrid in, with `daily_limit` saying
    what was simulated; one that does not excludes it for the SLO, the limit named as the
    cause.
    """
    out = dict(candidates)
    for name, found in candidates.items():
        dep = loaded.scenario.deployments[name]
        if not isinstance(dep, HybridDeployment) or not dep.fallback_to_local:
            continue
        short = daily_shortfall(name, found, loaded, info)
        if short is None:
            continue
        spent = short.words("the hybrid sends it")
        if info.duration_s >= DAY_S:
            if not found.slo.met:
                out[name] = found.excluded(f"{spent}: the run, a day or longer, saw it spent "
                                           f"and the rest served by {dep.local}")
            continue
        fleet = fleet_runs.get(name) if fleet_runs is not None \
            else candidates.get(dep.local)
        simulated = (f"the {duration_words(info.duration_s)} simulated start the day's "
                     "count at zero")
        if fleet is None:      # nothing shows the fleet serving the rest of the day
            out[name] = found.excluded(f"{spent} ({simulated}); past it every call goes to "
                                       f"{dep.local}, not simulated on the whole traffic "
                                       "at this size")
            continue
        why = _serving_reasons(fleet, loaded)
        if why:
            out[name] = found.excluded(f"misses the SLO once its API's daily limit is spent: "
                                       f"{spent} ({simulated}), and past it every call goes "
                                       f"to {dep.local}, which alone on this traffic "
                                       f"{_as_clause(why[0])}; {short.advice()}")
            continue
        cost = blended(found.cost, fleet.cost, short.share, dep.local)
        most = loaded.scenario.constraints.max_monthly_usd
        reasons = found.infeasible_because
        if most is not None:    # the budget, judged again at the day's blended cost
            reasons = [r for r in reasons if r != over_budget(found.cost.monthly_usd, most)]
            reasons += [over_budget(cost.monthly_usd, most)] if cost.monthly_usd > most else []
        out[name] = found.model_copy(update={
            "cost": cost, "feasible": not reasons, "infeasible_because": reasons,
            "daily_limit": (
                f"{spent} ({simulated}): past it every call goes to {dep.local} at once "
                f"(the 429 says to retry after the day), and {dep.local} alone, simulated "
                f"on the whole of this traffic, serves it within the SLO "
                f"({fleet.slo.goodput_shown()} goodput); the {1 - short.share:.1%} of the "
                "day's API calls past the limit wait one 429's round trip first, and the "
                f"month is costed {short.share:.1%} as the hybrid ran, the rest as "
                f"{dep.local} alone")})
    return out


def blended(hybrid: CostSummary, fleet: CostSummary, share: float,
            local: str) -> CostSummary:
    """A hybrid's month whose API serves `share` of the day's calls it is sent, its
    fleet the rest: each cost that grows with volume, and the useful results, `share` as
    the hybrid's run had them and the rest as the fleet's own run on the whole traffic
    (the same requests: the two runs share the stream), so an API priced per call pays
    for the calls the limit lets through, and a fleet on demand for the hours it carries
    them all; the fixed ones as the hybrid's (it keeps both all month)."""
    rest = 1.0 - share
    theirs = {line.item: line for line in fleet.items}
    items = [line.model_copy(update={
        "usd_per_month": share * line.usd_per_month
        + rest * (theirs[line.item].usd_per_month if line.item in theirs else 0.0),
        "basis": f"{line.basis}; {share:.1%} of it as simulated, the rest as {local} "
                 "alone's (past the API's daily limit)"})
        if line.variable else line for line in hybrid.items]
    monthly = sum(line.usd_per_month for line in items)
    useful = share * hybrid.useful_results_per_month + rest * fleet.useful_results_per_month
    requests = hybrid.requests_per_month
    tokens = (hybrid.monthly_usd / hybrid.usd_per_million_output_tokens * 1e6
              if hybrid.usd_per_million_output_tokens else None)
    above = None if hybrid.above_floor_usd_per_month is None \
        or fleet.above_floor_usd_per_month is None \
        else share * hybrid.above_floor_usd_per_month + rest * fleet.above_floor_usd_per_month
    return hybrid.model_copy(update={
        "monthly_usd": monthly,
        "variable_usd_per_month": monthly - hybrid.fixed_usd_per_month,
        "above_floor_usd_per_month": above,
        "floor_requests_per_month": hybrid.floor_requests_per_month if above is not None
        else None,
        "useful_results_per_month": useful,
        "usd_per_1k_requests": monthly / requests * 1e3 if requests else None,
        "usd_per_million_output_tokens": monthly / tokens * 1e6 if tokens else None,
        "usd_per_useful_result": monthly / useful if useful else None,
        "items": items})


def _as_clause(why: str) -> str:
    """An exclusion reason as what the fleet does: "misses the SLO: ..." stays, "its full
    batches ..." and the rest follow "which alone on this traffic"."""
    return why if why.startswith("misses") else f"is excluded: {why}"
