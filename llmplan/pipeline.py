"""The product's sentence: load a scenario -> simulate it -> decide -> (plan).

`evaluate` is what `llmplan simulate` and `llmplan.simulate` run: every deployment of the
scenario against the same request stream, priced and ranked, and with `planning` the
searches over replicas and rates and the sensitivity of the answer.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from llmplan.catalog.staleness import stale_prices
from llmplan.decide.costs import CALENDAR_HOURS_PER_MONTH
from llmplan.decide.decision import decide
from llmplan.decide.planning import plan
from llmplan.perf.engine import DEFAULT_VLLM_VERSION, version_tuple
from llmplan.perf.steptime_spec import CalibratedStepTime
from llmplan.provision.bedrock_routing import unbuildable_route
from llmplan.provision.images import no_published_image
from llmplan.provision.stack_config import fixed_caps_note
from llmplan.provision.vllm_build import provisioning_problem
from llmplan.results.decision import Result
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import LocalDeployment, SimulationMode
from llmplan.sim.run import simulate_scenario
from llmplan.traffic.arrivals import DiurnalTraffic
from llmplan.traffic.stream import build_request_stream

Progress = Callable[[str, float], None]
Stage = Callable[[str], None]


def used_stale_prices(loaded: LoadedScenario, today: datetime.date) -> list[str]:
    """Catalog prices the scenario's deployments use that are older than 180 days."""
    names = []
    for dep in loaded.scenario.deployments.values():
        if isinstance(dep, LocalDeployment):
            names.append(dep.gpu)
        elif isinstance(dep, CloudDeployment):
            names.append(dep.model)
    return stale_prices(loaded.catalog, names, today)


def newer_than_modelled(loaded: LoadedScenario) -> list[str]:
    """Deployments pinned to a vLLM release after the newest one the simulator models."""
    newest = version_tuple(DEFAULT_VLLM_VERSION)
    return [f"deployment '{name}' pins vLLM {dep.engine.vllm_version}, newer than the "
            f"releases llmplan models (to {newest[0]}.{newest[1]}): simulated with "
            f"{newest[0]}.{newest[1]}'s memory accounting and defaults"
            for name, dep in loaded.scenario.deployments.items()
            if isinstance(dep, LocalDeployment) and dep.engine.version > newest]


def first_tokens_differ(loaded: LoadedScenario) -> list[str]:
    """Reasoning tasks whose TTFT bound compares different moments: a local model streams
    its reasoning, so its first token is a reasoning token; an API that withholds the
    reasoning sends the answer's first. slo.ttft_visible_ms bounds the same moment.
    A hybrid counts on each side its requests of those tasks reach: its fleet (the tasks
    routed there, or falling back to it) streams, and its API, when it withholds, sends
    the answer's first token to every request its data lets out (routed there, or
    spilling or falling over to it: `llmplan.sim.engine.hybrid_api_requests`)."""
    scenario = loaded.scenario
    deployments = scenario.deployments
    reasoning = [t for t in scenario.tasks if t.reasoning_tokens is not None
                 and scenario.slo_for(t).ttft_ms is not None
                 and scenario.slo_for(t).ttft_visible_ms is None]
    tasks = [t.name for t in reasoning]
    stays = scenario.constraints.restricted_stays_local

    def withholds(dep: CloudDeployment) -> bool:
        return not loaded.catalog.cloud_models[dep.model].streams_reasoning

    withheld: list[str] = []
    streamed: list[str] = []
    for name, dep in sorted(deployments.items()):
        if isinstance(dep, CloudDeployment) and withholds(dep):
            withheld.append(name)
        elif isinstance(dep, LocalDeployment):
            streamed.append(name)
        elif isinstance(dep, HybridDeployment):
            sides = [dep.task_side(t.name, t.kind, t.sensitivity, restricted_stays_local=stays)
                     for t in reasoning]
            if any(side == "local" or dep.fallback_to_local for side in sides):
                streamed.append(f"{name}'s fleet")
            api = deployments[dep.cloud]
            if isinstance(api, CloudDeployment) and withholds(api) \
                    and any(not (stays and t.sensitivity == "restricted") for t in reasoning):
                withheld.append(f"{name}'s API")
    if not (withheld and streamed and tasks):
        return []
    # the verbs agree with each list: "b200 streams ... its", "a, b stream ... their"
    one, alone = len(streamed) == 1, len(withheld) == 1
    return [f"slo.ttft_ms bounds the first token, and task{'s' if len(tasks) > 1 else ''} "
            f"{', '.join(tasks)} reason{'' if len(tasks) > 1 else 's'} first: "
            f"{', '.join(streamed)} stream{'s' if one else ''} the reasoning, so "
            f"{'its' if one else 'their'} first token is a reasoning token, while "
            f"{', '.join(withheld)} withhold{'s' if alone else ''} it and "
            f"send{'s' if alone else ''} the answer's first token after the thinking; to "
            f"judge every candidate by when the answer starts, bound slo.ttft_visible_ms "
            f"instead"]


def thinking_not_simulated(loaded: LoadedScenario) -> list[str]:
    """Deployments of a model that reasons before every answer (gpt-oss, DeepSeek-R1)
    serving tasks that give no reasoning_tokens: served for real, each of those answers
    starts with thinking the simulation neither timed nor priced."""
    plain = _plain_tasks(loaded)
    return [f"deployment '{name}' serves {model}, which reasons before every answer (no "
            f"switch turns it off), and task{'s' if len(plain) > 1 else ''} "
            f"{', '.join(plain)} give{'' if len(plain) > 1 else 's'} no reasoning_tokens: the "
            f"simulation timed and priced those answers without their thinking; give each "
            f"task its reasoning_tokens (a load test of the model shows them)"
            for name, model in _thinking_unasked(loaded).items()]


def reasoning_on_a_plain_model(loaded: LoadedScenario) -> list[str]:
    """API deployments of a model that does not reason (the catalog's non-reasoning
    entries) serving tasks that give reasoning_tokens: the simulation generated, timed and
    billed thinking that model never does, so its cost and latency are not the ones its
    answers would have (nor its answers the reasoning ones the task's quality assumes)."""
    tasks = [t.name for t in loaded.scenario.tasks if t.reasoning_tokens is not None]
    if not tasks:
        return []
    plain = {name: dep.model for name, dep in loaded.scenario.deployments.items()
             if isinstance(dep, CloudDeployment)
             and not loaded.catalog.cloud_models[dep.model].reasons}
    which = f"task{'s' if len(tasks) > 1 else ''} {', '.join(tasks)}"
    return [f"deployment '{name}' calls {model}, which does not reason, and {which} "
            f"give{'' if len(tasks) > 1 else 's'} reasoning_tokens: the simulation generated, "
            f"timed and billed that thinking as {model}'s output, which its real answers "
            f"would not have; compare reasoning tasks on a reasoning model"
            for name, model in sorted(plain.items())]


def reasoning_unasked_on_an_api(loaded: LoadedScenario) -> list[str]:
    """API deployments (a hybrid's API part too) of a model that cannot answer without
    reasoning (its least_reasoning_effort is minimal or low), serving tasks that give no
    reasoning_tokens: the simulation added the hidden tokens that effort leaves to each of
    their answers on the API, timed and billed as output, and the stack's gateway sends
    that effort (llmplan.sim.engine.unasked_reasoning). A hybrid's: the tasks its routes
    send the API, and the calls of its other plain tasks that spill or fall over to it
    (llmplan.sim.engine.hybrid_api_requests), unless their data stays local."""
    plain = _plain_tasks(loaded)
    if not plain:
        return []
    deployments = loaded.scenario.deployments
    stays = loaded.scenario.constraints.restricted_stays_local

    def named(names: list[str]) -> str:
        return f"task{'s' if len(names) > 1 else ''} {', '.join(names)}"

    def gives(names: list[str]) -> str:
        return "gives" if len(names) == 1 else "give"

    notes = []
    for name, dep in deployments.items():
        cloud = deployments[dep.cloud] if isinstance(dep, HybridDeployment) else dep
        if not isinstance(cloud, CloudDeployment):
            continue
        spec = loaded.catalog.cloud_models[cloud.model]
        if not spec.plain_reasoning_tokens:
            continue
        tasks, spilled = plain, []
        if isinstance(dep, HybridDeployment):
            sides = {t.name: dep.task_side(t.name, t.kind, t.sensitivity,
                                           restricted_stays_local=stays)
                     for t in loaded.scenario.tasks if t.name in plain}
            tasks = [t for t, side in sides.items() if side == "cloud"]
            spilled = [t.name for t in loaded.scenario.tasks if sides.get(t.name) == "local"
                       and not (stays and t.sensitivity == "restricted")]
        if not tasks and not spilled:
            continue
        if not tasks:        # a hybrid whose routes send no plain task the API
            which = f"{named(spilled)} {gives(spilled)} no reasoning_tokens (their calls " \
                "that spill or fall over to the API)"
        else:
            which = f"{named(tasks)} {gives(tasks)} no reasoning_tokens"
            if spilled:
                which += f" (nor {'does' if len(spilled) == 1 else 'do'} " \
                    f"{', '.join(spilled)}, whose calls that spill or fall over to the API " \
                    "get the same)"
        notes.append(
            f"deployment '{name}' calls {cloud.model}, which cannot answer without reasoning "
            f"(the lowest reasoning_effort it takes is {spec.least_reasoning_effort}, which "
            f"the stack's gateway sends), and {which}: the simulation added "
            f"{spec.plain_reasoning_tokens:,} "
            f"hidden reasoning tokens to each of their answers on the API (the catalog's "
            f"estimate for that effort), timed and billed as output; give a task "
            f"reasoning_tokens where a measurement says how many")
    return notes


def _plain_tasks(loaded: LoadedScenario) -> list[str]:
    """Tasks that give no reasoning_tokens."""
    return [t.name for t in loaded.scenario.tasks if t.reasoning_tokens is None]


def _thinking_unasked(loaded: LoadedScenario) -> dict[str, str]:
    """Local deployments (name -> model) of a model that reasons before every answer, in a
    scenario with tasks that give no reasoning_tokens (thinking_not_simulated)."""
    if not _plain_tasks(loaded):
        return {}
    return {name: dep.model for name, dep in loaded.scenario.deployments.items()
            if isinstance(dep, LocalDeployment)
            and loaded.catalog.models[dep.model].always_thinks}


def untrusted_calibrations(loaded: LoadedScenario) -> list[str]:
    """Deployments timed by a calibration its quality gate refused (written anyway with
    `llmplan calibrate --accept-poor-fit`): their latencies rest on that fit."""
    notes = []
    for name, dep in loaded.scenario.deployments.items():
        spec = dep.step_time if isinstance(dep, LocalDeployment) else None
        if isinstance(spec, CalibratedStepTime) and spec.calibration is not None \
                and spec.calibration.fit.rejected:
            notes.append(f"deployment '{name}' is timed by {spec.file}, a calibration its "
                         f"quality gate refused ({spec.calibration.fit.rejected}): its "
                         f"latencies rest on that fit")
    return notes


def prompts_past_calibrations(loaded: LoadedScenario, seed: int | None = None) -> list[str]:
    """Deployments timed by a calibration whose runs computed far shorter prompts than the
    scenario's (median of its drawn requests, the seed's as simulated): how a prompt's cost
    splits between its tokens and its attention pairs was measured only up to the
    calibration's `longest_prompt_tokens`, so their prefill is extrapolated (validate says
    the same of a measured run). With prefix caching on, each prompt counts without its
    shared prefix (a conversation's history too), as if every one were cached: the note
    comes only when even that is far longer."""
    from llmplan.fidelity.validate import PROMPT_EXTRAPOLATION

    calibrated: dict[str, tuple[LocalDeployment, CalibratedStepTime]] = {}
    for name, dep in loaded.scenario.deployments.items():
        if isinstance(dep, LocalDeployment) and isinstance(dep.step_time, CalibratedStepTime) \
                and dep.step_time.calibration is not None \
                and dep.step_time.calibration.fit.longest_prompt_tokens:
            calibrated[name] = (dep, dep.step_time)
    if not calibrated:
        return []
    stream = build_request_stream(loaded.scenario, seed)
    if not len(stream):
        return []
    whole = stream.prompt_tokens
    unshared = whole - stream.prefix_tokens if stream.prefix_tokens is not None else whole
    notes = []
    for name, (dep, spec) in calibrated.items():
        assert spec.calibration is not None
        cal = spec.calibration
        longest = cal.fit.longest_prompt_tokens or 0
        cached = dep.engine.prefix_caching != "off" and stream.prefix_tokens is not None
        here = float(np.median(unshared if cached else whole))
        if here <= PROMPT_EXTRAPOLATION * longest:
            continue
        notes.append(f"deployment '{name}' is timed by {spec.file}, whose runs computed "
                     f"prompts of at most {longest:,} tokens, and this scenario's prompts "
                     f"compute {here:,.0f} tokens (median"
                     f"{', shared prefixes taken as cached' if cached else ''}), "
                     f"{here / longest:.1f} times as many: their prefill, "
                     f"{cal.step_time.per_prefill_pair_ns:,.1f} ns per (query, key) pair "
                     f"beside the per-token cost, is extrapolated; calibrate with prompts as "
                     f"long as these")
    return notes


def diurnal_part_time(loaded: LoadedScenario) -> list[str]:
    """A 24-hour traffic curve costed over fewer hours a month: the month's volume is the
    day's mean rate times `economics.hours_per_month`, which is what arrives only if the
    hours it runs see the day's mean; traffic that comes only in working hours comes at
    their (higher) rate, which the run cannot tell."""
    traffic = loaded.scenario.traffic
    hours = loaded.scenario.economics.hours_per_month
    if not isinstance(traffic, DiurnalTraffic) or hours >= 0.95 * CALENDAR_HOURS_PER_MONTH:
        return []
    return [f"traffic is a 24-hour diurnal curve but economics.hours_per_month is {hours:g}: "
            f"the month's volume counts {hours:g} hours at the day's mean rate "
            f"({traffic.mean_rate_per_s:g}/s); if the traffic only arrives in those hours "
            f"it arrives at their own rate, higher than the day's mean (set hours_per_month "
            f"to {CALENDAR_HOURS_PER_MONTH:g} with the curve, or simulate the working hours "
            f"at their rate with another traffic kind)"]


def not_provisionable(loaded: LoadedScenario) -> list[str]:
    """Why `llmplan stack` could not build some simulated deployments as simulated."""
    return [problem for name, dep in loaded.scenario.deployments.items()
            if isinstance(dep, LocalDeployment) and (problem := provisioning_problem(
                name, dep, loaded.catalog.models[dep.model],
                loaded.catalog.gpus.get(dep.gpu))) is not None]


def images_to_name(loaded: LoadedScenario) -> list[str]:
    """Deployments whose simulated vLLM release has no published image for their GPUs:
    `llmplan stack` builds them only with an image named for it."""
    return [f"deployment '{name}': {why}; `llmplan stack` builds it only with an image that "
            f"runs vLLM {dep.engine.vllm_version} (`--vllm-image <image>`), or simulate a "
            f"release vLLM publishes an image of for {dep.gpu}"
            for name, dep in loaded.scenario.deployments.items()
            if isinstance(dep, LocalDeployment) and dep.gpu in loaded.catalog.gpus
            and (why := no_published_image(dep.engine.vllm_version,
                                           loaded.catalog.gpus[dep.gpu])) is not None]


def fixed_gateway_caps(loaded: LoadedScenario) -> list[str]:
    """Hybrids whose gateway would spill or refuse at the starting fleet's count while the
    fleet autoscales (stack_config.fixed_caps_note)."""
    deployments = loaded.scenario.deployments
    return [note for name, dep in deployments.items()
            if isinstance(dep, HybridDeployment)
            and (note := fixed_caps_note(name, dep, deployments[dep.local])) is not None]


def fallback_after_clients_left(loaded: LoadedScenario) -> list[str]:
    """Hybrids whose fall-back from an API that hangs (outages in `timeouts` mode) reaches
    the fleet only after its clients have given up (the fleet's admission.queue_timeout_s,
    counted from arrival): every request the API timed out on is lost, fall-back or not,
    in the simulation and behind the gateway `llmplan stack` builds with the same timeout
    and retries."""
    deployments = loaded.scenario.deployments
    notes = []
    for name, dep in deployments.items():
        if not isinstance(dep, HybridDeployment) or not dep.fallback_to_local:
            continue
        cloud, local = deployments[dep.cloud], deployments[dep.local]
        assert isinstance(cloud, CloudDeployment) and isinstance(local, LocalDeployment)
        outages, retry = cloud.outages, cloud.retry
        patience_s = local.admission.queue_timeout_s
        hangs = outages.mode == "timeouts" and (outages.windows or outages.mtbf_hours)
        attempts = retry.max_retries + 1
        if not hangs or patience_s is None or retry.hung_s < patience_s:
            continue
        tries = (f"{attempts} attempts of {retry.request_timeout_s:g} s" if attempts > 1
                 else f"{retry.request_timeout_s:g} s")
        notes.append(
            f"hybrid '{name}' falls back to '{dep.local}' when '{dep.cloud}' times out, but "
            f"the API gives up only after {tries} (retry.max_retries, request_timeout_s) "
            f"and clients give up on a request not started within {patience_s:g} s "
            f"('{dep.local}' admission.queue_timeout_s): during an outage in timeouts mode "
            "no request is saved by the fall-back; keep (max_retries + 1) x "
            "request_timeout_s below queue_timeout_s for it to help")
    return notes


def scenario_notes(loaded: LoadedScenario, seed: int | None = None) -> list[str]:
    """What `simulate` says of the scenario beside its result: what the stack could not
    build as simulated, or would build differently, and what the simulation leaves out or
    extrapolates (`seed`: the run's, None the scenario's)."""
    return [*not_provisionable(loaded), *images_to_name(loaded), *newer_than_modelled(loaded),
            *fallback_after_clients_left(loaded), *thinking_not_simulated(loaded),
            *reasoning_on_a_plain_model(loaded), *reasoning_unasked_on_an_api(loaded),
            *untrusted_calibrations(loaded), *prompts_past_calibrations(loaded, seed),
            *diurnal_part_time(loaded),
            *fixed_gateway_caps(loaded), *first_tokens_differ(loaded)]


def with_provisioning(loaded: LoadedScenario) -> LoadedScenario:
    """`loaded` with the deployments `llmplan stack` could not build as simulated (a
    hybrid whose local or API part it could not build, too; a Bedrock model with no route
    from its region that keeps the data residency; a model that reasons before every
    answer serving tasks simulated without reasoning, which it would serve thinking), which
    the recommendation passes over while another feasible candidate can be built."""
    problems: dict[str, str] = {}
    deployments = loaded.scenario.deployments
    for name, dep in deployments.items():
        if isinstance(dep, LocalDeployment) and (problem := provisioning_problem(
                name, dep, loaded.catalog.models[dep.model],
                loaded.catalog.gpus.get(dep.gpu))) is not None:
            problems[name] = problem
    residency = loaded.scenario.constraints.data_residency
    for name, dep in deployments.items():
        if isinstance(dep, CloudDeployment) and (why := unbuildable_route(
                name, dep, loaded.catalog.cloud_models[dep.model], residency)) is not None:
            problems[name] = why
    plain = _plain_tasks(loaded)
    for name, model in _thinking_unasked(loaded).items():
        problems.setdefault(name, f"{model} reasons before every answer, and "
                                  f"{', '.join(plain)} {'was' if len(plain) == 1 else 'were'} "
                                  f"simulated without reasoning_tokens")
    for name, dep in deployments.items():
        if isinstance(dep, HybridDeployment) and dep.local in problems:
            problems[name] = f"its local part: {problems[dep.local]}"
        elif isinstance(dep, HybridDeployment) and dep.cloud in problems:
            problems[name] = f"its API part: {problems[dep.cloud]}"
    return replace(loaded, not_provisionable=problems)


def evaluate(loaded: LoadedScenario, seed: int | None = None, *,
             mode: SimulationMode | None = None, progress: Progress | None = None,
             planning: bool = False, requests_dir: Path | None = None,
             stage: Stage | None = None) -> Result:
    """result.json of a scenario (same scenario and seed: same result)."""
    loaded = with_provisioning(loaded)
    simulation = simulate_scenario(loaded, seed, mode=mode, progress=progress,
                                   requests_dir=requests_dir)
    planned = plan(simulation, loaded, progress=stage) if planning else None
    return decide(simulation, loaded, planned)
