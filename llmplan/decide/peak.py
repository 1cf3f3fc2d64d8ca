"""A diurnal traffic's daily peak, which the simulated hours may miss: its rate, and the
candidates excluded that cannot serve it (with full batches, or within the SLO as
planning found)."""

from __future__ import annotations

from llmplan.results.decision import Candidate, DeploymentPlan, PlanningWindow
from llmplan.results.simulation import SimulationResult
from llmplan.scenario import LoadedScenario
from llmplan.traffic.arrivals import DiurnalTraffic

#: a diurnal run whose hours reach under the day's peak rate by more than this factor is
#: judged at the peak (planning speeds its stretches up to it)
PEAK_MISSED = 1.2


def daily_peak_requests_per_s(loaded: LoadedScenario,
                              simulation: SimulationResult) -> float | None:
    """The requests/s (conversations' turns counted) of a diurnal traffic's daily peak when
    the simulated hours miss it by more than PEAK_MISSED (None otherwise)."""
    traffic = loaded.scenario.traffic
    if not isinstance(traffic, DiurnalTraffic) or \
            traffic.peak_missed_by(loaded.scenario.duration_s) <= PEAK_MISSED:
        return None
    return diurnal_peak_requests_per_s(loaded, simulation)


def diurnal_peak_requests_per_s(loaded: LoadedScenario,
                                simulation: SimulationResult) -> float | None:
    """The requests/s (conversations' turns counted) of a diurnal traffic's daily peak,
    whether or not the run reaches it (None: not diurnal): the long-run rate times the
    curve's peak-to-mean, spikes left out."""
    traffic = loaded.scenario.traffic
    duration_s = loaded.scenario.duration_s
    if not isinstance(traffic, DiurnalTraffic):
        return None
    long_run = simulation.scenario.long_run_requests_per_s
    base = traffic.long_run_rate(duration_s).requests_per_s
    if long_run is None or base <= 0:
        return None
    return float(traffic.mean_rate_per_s * traffic.peak_to_mean * long_run / base)


def below_the_peak(candidates: dict[str, Candidate], peak: float) -> dict[str, Candidate]:
    """Without planning: the local fleets excluded whose full batches cannot serve a daily
    peak the simulated hours miss (an upper bound: within the SLO they serve less)."""
    out = {}
    for name, found in candidates.items():
        local = found.local
        rate = local.utilisation.full_batch_requests_per_s if local is not None else None
        if found.hybrid is not None or rate is None or rate >= peak:
            out[name] = found
            continue
        out[name] = found.excluded(f"its full batches serve {rate:,.3g} requests/s, under "
                                   f"the traffic's daily peak of {peak:,.3g}/s, which the "
                                   "simulated hours do not reach (plan to judge it within "
                                   "the SLO)")
    return out


def at_the_peak(candidates: dict[str, Candidate], window: PlanningWindow,
                plans: dict[str, DeploymentPlan]) -> dict[str, Candidate]:
    """The candidates, those excluded that do not sustain a diurnal traffic's daily peak
    within the SLO when the simulated hours miss it (planning ran at the peak's rate):
    a fleet sized on a quiet hour is priced on the whole day's volume."""
    peak = window.peak_requests_per_s()
    if peak is None:
        return candidates
    out = {}
    for name, found in candidates.items():
        plan = plans.get(name)
        rate = plan.max_sustainable_requests_per_s if plan is not None else None
        at_peak = next((p for p in plan.load_curve if abs(p.requests_per_s - peak)
                        <= 1e-9 * peak), None) if plan is not None else None
        short = rate is not None and rate < peak * (1 - 1e-9)
        if rate is None and at_peak is not None and at_peak.goodput_fraction is not None:
            short = at_peak.goodput_fraction < found.slo.min_goodput_fraction
        if not short:
            out[name] = found
            continue
        sustains = (f"sustains {rate:,.3g} requests/s within the SLO"
                    if rate is not None else "misses the SLO")
        out[name] = found.excluded(f"{sustains} against the traffic's daily peak of "
                                   f"{peak:,.3g}/s, which the simulated hours do not reach "
                                   "(planning, at the peak's rate)")
    return out
