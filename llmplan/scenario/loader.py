"""Load a scenario file: YAML -> typed Scenario + merged catalog, or a ScenarioError.

Two passes, both reporting file, line, field path and the expected value: the schema
(pydantic), then the checks that need the catalog (known GPU and model names, a tp vLLM
accepts for the model on that GPU, the model fitting in GPU memory, trace task names).

A local deployment that cannot be built as written (the model does not fit the GPU's memory
at its tp, or vLLM refuses the tp), and a hybrid built on one, is an answer rather than a
typo: "not on this GPU". It is left out of the simulation and listed with why and what would
fit (`LoadedScenario.unbuildable`, result.json's `unbuildable`), next to the candidates that
were simulated. Only when nothing else is left does the scenario fail to load.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from llmplan.catalog import Catalog, builtin_catalog
from llmplan.catalog.catalog import SCENARIO_SOURCE
from llmplan.errors import InputError, Problem, ScenarioError, did_you_mean
from llmplan.perf.engine import SpeculativeSpec
from llmplan.perf.memory import fits, kv_capacity
from llmplan.perf.parallel import data_parallel_error, pp_error, tp_error
from llmplan.perf.support import format_error, release_error
from llmplan.results.loadtest import LoadTestSummary
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import LocalDeployment, Scenario, SimulationMode
from llmplan.scenario.names import unknown, unknown_cloud_model, unknown_gpu, unknown_model
from llmplan.traffic.arrivals import TraceTraffic
from llmplan.traffic.stream import MAX_SIMULATED_REQUESTS
from llmplan.yamlio.document import Loc, YamlDocument, dotted, parse_yaml, read_yaml
from llmplan.yamlio.load import validate
from llmplan.yamlio.model_paths import fields_at
from llmplan.yamlio.values import value_message


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario with the catalog it resolves names against."""

    scenario: Scenario
    catalog: Catalog
    path: Path
    #: deployments left out because they cannot be built as written: name -> the field and
    #: why, with what would fit (not in `scenario.deployments`)
    unbuildable: dict[str, str] = field(default_factory=dict)
    #: simulated deployments `llmplan stack` could not provision as simulated (name -> why),
    #: filled by llmplan.pipeline.with_provisioning: the recommendation prefers the others
    not_provisionable: dict[str, str] = field(default_factory=dict)



def _speculation_error(spec: SpeculativeSpec | None, model: str, mtp_layers: int) -> str | None:
    """Why the speculative method cannot run on this model (None: it can): MTP drafts with
    the model's own multi-token-prediction layers, which most models do not ship."""
    if spec is None or spec.method != "mtp" or mtp_layers > 0:
        return None
    return (f"method mtp drafts with the model's multi-token-prediction layers, and {model} "
            "ships none (catalog mtp_layers: 0), so vLLM cannot speculate this way; expected "
            "eagle3, eagle, draft_model or ngram for it")


def load_scenario(path: str | Path) -> LoadedScenario:
    """Read, validate and resolve a scenario file."""
    try:
        doc = read_yaml(path)
    except InputError as exc:
        raise ScenarioError(exc.problems) from None
    return _resolve(doc, Path(path).resolve().parent, Path(path))


def load_scenario_text(text: str, file: str = "<scenario>",
                       base_dir: str | Path = ".") -> LoadedScenario:
    """Same as load_scenario, for YAML given as a string (tests, stdin)."""
    try:
        doc = parse_yaml(text, file)
    except InputError as exc:
        raise ScenarioError(exc.problems) from None
    return _resolve(doc, Path(base_dir), Path(file))


def _resolve(doc: YamlDocument, base_dir: Path, path: Path) -> LoadedScenario:
    try:
        scenario = validate(doc, Scenario, context={"base_dir": str(base_dir)})
    except InputError as exc:
        raise ScenarioError(exc.problems) from None
    catalog = _merge_catalog(doc, scenario)
    scenario = _catalog_spellings(scenario, catalog)
    scenario, named = _drafters_by_repository(doc, scenario, catalog)
    problems, unbuildable = _check_names(doc, scenario, catalog)
    problems = named + problems
    if problems:
        raise ScenarioError(problems)
    left_out = _left_out(scenario, unbuildable)
    if len(left_out) == len(scenario.deployments):
        raise ScenarioError(list(unbuildable.values()))
    if left_out:
        scenario = scenario.model_copy(update={"deployments": {
            n: d for n, d in scenario.deployments.items() if n not in left_out}})
    if scenario.evaluations:
        scenario = _import_evaluations(doc, scenario, base_dir, set(left_out))
    return LoadedScenario(scenario, catalog, path, left_out)


def _spelling(name: str) -> str:
    """`name` as compared with the catalog's ids: case, spaces, hyphens and underscores
    aside ("RTX PRO 6000", "rtx-pro-6000" and "RTX-PRO-6000" are one GPU)."""
    return "".join(c for c in name.casefold() if c not in " -_")


def _catalog_id(name: str, ids: Iterable[str]) -> str:
    """The catalog id `name` spells, when it is not one itself but matches exactly one id
    but for case and separators (`_spelling`); else `name` as written."""
    known = list(ids)
    if name in known:
        return name
    matches = [key for key in known if _spelling(key) == _spelling(name)]
    return matches[0] if len(matches) == 1 else name


def _catalog_spellings(scenario: Scenario, catalog: Catalog) -> Scenario:
    """`scenario` with each local deployment's gpu and model written as the catalog's ids
    where they spell one another way (h200, MI300x, gpt-oss-120B, RTX PRO 6000), so the
    results and the stack name them as the catalog does."""
    deployments = dict(scenario.deployments)
    for name, dep in scenario.deployments.items():
        if not isinstance(dep, LocalDeployment):
            continue
        gpu, model = _catalog_id(dep.gpu, catalog.gpus), _catalog_id(dep.model, catalog.models)
        if (gpu, model) != (dep.gpu, dep.model):
            deployments[name] = dep.model_copy(update={"gpu": gpu, "model": model})
    return scenario.model_copy(update={"deployments": deployments})


def _drafters_by_repository(doc: YamlDocument, scenario: Scenario,
                            catalog: Catalog) -> tuple[Scenario, list[Problem]]:
    """`scenario` with each speculative drafter named by a catalog model's name read as
    that model's repository (what vLLM downloads), and the names that are no model's."""
    problems: list[Problem] = []
    deployments = dict(scenario.deployments)
    for name, dep in scenario.deployments.items():
        spec = dep.engine.speculative if isinstance(dep, LocalDeployment) else None
        if spec is None or spec.drafter is None or "/" in spec.drafter:
            continue
        if spec.drafter not in catalog.models:
            loc: Loc = ("deployments", name, "engine", "speculative", "drafter")
            problems.append(Problem(doc.file, doc.line_of(loc), dotted(loc),
                                    unknown("model", spec.drafter, list(catalog.models))
                                    + " (or a Hugging Face repository, owner/name)"))
            continue
        assert isinstance(dep, LocalDeployment)
        repo = catalog.models[spec.drafter].hf_id
        engine = dep.engine.model_copy(update={
            "speculative": spec.model_copy(update={"drafter": repo})})
        deployments[name] = dep.model_copy(update={"engine": engine})
    return scenario.model_copy(update={"deployments": deployments}), problems


def _left_out(scenario: Scenario, unbuildable: dict[str, Problem]) -> dict[str, str]:
    """The deployments that cannot be built, and the hybrids built on one: name -> why."""
    out = {name: f"{p.path}: {p.message}" for name, p in unbuildable.items()}
    for name, dep in scenario.deployments.items():
        if isinstance(dep, HybridDeployment) and dep.local in unbuildable:
            out[name] = (f"deployments.{name}.local: its local part '{dep.local}' cannot be "
                         f"built ({unbuildable[dep.local].message})")
    return out


def _import_evaluations(doc: YamlDocument, scenario: Scenario, base_dir: Path,
                        left_out: set[str]) -> Scenario:
    """Tasks' quality per deployment from load-test summaries (explicit rates win)."""
    tasks = [t.model_copy(update={"quality": dict(t.quality)}) for t in scenario.tasks]
    for deployment, where in scenario.evaluations.items():
        loc: Loc = ("evaluations", deployment)
        if deployment in left_out:
            continue
        if deployment not in scenario.deployments:
            raise ScenarioError([Problem(doc.file, doc.line_of(loc), dotted(loc),
                                         f"unknown deployment; expected one of: "
                                         f"{', '.join(scenario.deployments)}")])
        path = base_dir / where
        path = path / "summary.json" if path.is_dir() else path
        try:
            summary = LoadTestSummary.model_validate_json(path.read_bytes())
            measured = {name: t.correct_fraction for name, t in summary.tasks.items()
                        if t.correct_fraction is not None}
        except (OSError, ValueError) as exc:
            raise ScenarioError([Problem(doc.file, doc.line_of(loc), dotted(loc),
                                         f"cannot read a load-test summary at {path}: {exc}; "
                                         f"expected the output folder of `llmplan loadtest` "
                                         f"--test-set")]) from None
        for task in tasks:
            if task.name in measured and deployment not in task.quality:
                task.quality[deployment] = measured[task.name]
    return scenario.model_copy(update={"tasks": tasks})


def _merge_catalog(doc: YamlDocument, scenario: Scenario) -> Catalog:
    overrides = scenario.catalog.model_dump()
    if not any(overrides.values()):
        return builtin_catalog()
    try:
        return builtin_catalog().merged(overrides, source=f"{SCENARIO_SOURCE}{doc.file}")
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc: Loc = ("catalog", *err["loc"])
            if err["type"] == "missing":
                message = "required field is missing (new catalog entries need every field)"
            elif err["type"] == "extra_forbidden":
                allowed = fields_at(Catalog, tuple(err["loc"][:-1]))
                key = str(err["loc"][-1])
                message = f"unknown key '{key}'{did_you_mean(key, allowed)}"
                if allowed:
                    message += f"; expected one of: {', '.join(sorted(allowed))}"
            else:
                message = value_message(Catalog, tuple(err["loc"]), loc, err)
            problems.append(Problem(doc.file, doc.line_of(loc), dotted(loc), message))
        raise ScenarioError(problems) from None


def _traffic_problems(scenario: Scenario) -> list[tuple[Loc, str]]:
    """A stream too large to hold or too bursty for its window, and spikes outside the
    simulated window."""
    found: list[tuple[Loc, str]] = []
    traffic, duration_s = scenario.traffic, scenario.duration_s
    if not isinstance(traffic, TraceTraffic):
        expected = traffic.expected_rate_per_s(duration_s) * duration_s
        if expected > MAX_SIMULATED_REQUESTS:
            found.append((("traffic",),
                          f"draws about {expected:,.0f} requests in {duration_s:g} s; at most "
                          f"{MAX_SIMULATED_REQUESTS:,} are simulated: shorten duration (a "
                          f"month's cost is scaled from the window) or lower the rate"))
        elif (per := scenario.requests_per_session()) is not None \
                and expected * per > MAX_SIMULATED_REQUESTS:
            # the later turns come on top of the arrivals: point at the task bringing most
            sessions = [(t.weight * (s.turns_min + s.turns_max) * s.fan_out, i, t.name)
                        for i, t in enumerate(scenario.tasks)
                        if (s := t.session) is not None]
            _, i, name = max(sessions)
            found.append((("tasks", i, "session"),
                          f"with {expected:,.0f} sessions started in {duration_s:g} s, about "
                          f"{per:,.0f} requests each ({name}'s turns_max and fan_out "
                          f"among them) make {expected * per:,.0f} requests; at most "
                          f"{MAX_SIMULATED_REQUESTS:,} are simulated: lower turns_max or "
                          f"fan_out, shorten duration or lower the traffic's rate"))
        if (cv := traffic.interarrival_cv()) > 1 and cv ** 2 > expected:
            # a renewal stream's count in a window of N mean gaps varies by about cv*sqrt(N),
            # cv/sqrt(N) of N: past 1, the window's count says nothing of the rate (gamma gaps
            # of shape 1/cv^2 bunch about cv^2 requests at once, more than the window holds)
            found.append((("traffic", "cv"),
                          f"gaps this bursty spread the window's request count by about "
                          f"{cv * math.sqrt(expected):,.3g} (one standard deviation) around the "
                          f"{expected:,.0f} expected in {duration_s:g} s, so it cannot stand "
                          f"for the rate; expected cv at most {math.sqrt(expected):,.3g} (the "
                          f"square root of the requests expected), or a longer duration or "
                          f"higher rate"))
    for i, spike in enumerate(getattr(traffic, "spikes", ())):
        if spike.start_s >= duration_s:
            found.append((("traffic", "spikes", i, "start_s"),
                          f"{spike.start_s:g} s is past the simulated window (duration "
                          f"{duration_s:g} s), so the spike never happens; expected a start "
                          f"below {duration_s:g}"))
    return found


REFERENCE_FIXED_FLEETS = ("simulation.mode reference simulates fixed fleets only: remove it, "
                          "or use mode fast (the default) for failures and autoscaling")



#: engine settings a KV-cache refusal may name, as the field its message points at
_ENGINE_FIELDS = ("max_model_len", "kv_cache_tokens", "kv_cache_memory_gib", "kv_dtype",
                  "weights_dtype", "gpu_memory_utilization", "speculative")


def _field_named(message: str) -> Loc:
    """The deployment field a KV-cache refusal is about: the engine setting its message
    opens with (`engine.max_model_len 9000 exceeds ...`, `kv_dtype fp8_e5m2 on ...`);
    () when it opens with none (a model that does not fit: the deployment as a whole)."""
    for name in _ENGINE_FIELDS:
        if match := re.match(rf"(?:engine\.)?({name}(?:\.\w+)?)\b", message):
            return ("engine", *match.group(1).split("."))
    return ()


def _check_names(doc: YamlDocument, scenario: Scenario,
                 catalog: Catalog) -> tuple[list[Problem], dict[str, Problem]]:
    """Errors in the scenario, and the local deployments that cannot be built as written."""
    problems: list[Problem] = []
    unbuildable: dict[str, Problem] = {}

    def add(loc: Loc, message: str) -> None:
        problems.append(Problem(doc.file, doc.line_of(loc), dotted(loc), message))

    def cannot_build(name: str, loc: Loc, message: str) -> None:
        unbuildable[name] = Problem(doc.file, doc.line_of(loc), dotted(loc), message)

    for loc, message in _traffic_problems(scenario):
        add(loc, message)

    for name, dep in scenario.deployments.items():
        if isinstance(dep, LocalDeployment):
            base: Loc = ("deployments", name)
            if scenario.simulation.mode == SimulationMode.REFERENCE:
                for part in ("failures", "autoscaling"):
                    if getattr(dep, part) is not None:
                        add((*base, part), REFERENCE_FIXED_FLEETS)
            if dep.gpu not in catalog.gpus:
                add((*base, "gpu"), unknown_gpu(dep.gpu, catalog))
            if dep.model not in catalog.models:
                add((*base, "model"), unknown_model(dep.model, catalog))
            if dep.gpu in catalog.gpus and dep.model in catalog.models:
                setup = dep.setup(catalog)
                if (error := format_error(setup)) is not None:
                    cannot_build(name, (*base, "engine", "weights_dtype"), error)
                elif (error := release_error(setup)) is not None:
                    cannot_build(name, (*base, "engine", "vllm_version"), error)
                elif (error := data_parallel_error(setup)) is not None:
                    cannot_build(name, (*base, "engine", "data_parallel_attention"), error)
                elif (error := tp_error(setup, fits)) is not None:
                    cannot_build(name, (*base, "tp"), error)
                elif (error := pp_error(setup)) is not None:
                    cannot_build(name, (*base, "pp"), error)
                elif (capacity := kv_capacity(setup)).error:
                    cannot_build(name, (*base, *_field_named(capacity.error)), capacity.error)
                elif (error := _speculation_error(setup.engine.speculative, dep.model,
                                                  setup.model.mtp_layers)) is not None:
                    cannot_build(name, (*base, "engine", "speculative", "method"), error)
        elif isinstance(dep, CloudDeployment):
            if dep.model not in catalog.cloud_models:
                add(("deployments", name, "model"), unknown_cloud_model(dep.model, catalog))
        elif isinstance(dep, HybridDeployment):
            for part, kind in (("local", LocalDeployment), ("cloud", CloudDeployment)):
                ref = getattr(dep, part)
                target = scenario.deployments.get(ref)
                if not isinstance(target, kind):
                    options = [k for k, v in scenario.deployments.items() if isinstance(v, kind)]
                    add(("deployments", name, part),
                        f"'{ref}' is not a kind: {part} deployment of this scenario; expected "
                        f"one of: {', '.join(options) or '(none defined)'}")
            task_names = {t.name for t in scenario.tasks}
            for i, route in enumerate(dep.rules):
                unknown = sorted(set(route.tasks or []) - task_names)
                if unknown:
                    add(("deployments", name, "routes", i, "tasks"),
                        f"unknown task(s) {', '.join(unknown)}; expected one of: "
                        f"{', '.join(sorted(task_names))}")
            rules = dep.rules
            by_kind = [i for i, route in enumerate(rules) if route.kinds is not None]
            task_kinds = {t.kind for t in scenario.tasks}
            if by_kind and not any(task_kinds & set(rules[i].kinds or []) for i in by_kind):
                where = ("deployments", name, "routes") if dep.routes == "seed" \
                    else ("deployments", name, "routes", by_kind[0], "kinds")
                add(where, "no task has a kind these routes name, so they route nothing; "
                    "expected tasks[i].kind on the tasks (one of: "
                    f"{', '.join(k for i in by_kind for k in rules[i].kinds or [])})")
    for i, task in enumerate(scenario.tasks):
        unknown = sorted(set(task.quality) - set(scenario.deployments))
        if unknown:
            add(("tasks", i, "quality"), f"unknown deployment(s) {', '.join(unknown)}; "
                f"expected one of: {', '.join(scenario.deployments)}")
        for name, dep in scenario.deployments.items():
            # a hybrid's own rate stands in for a part without one (sim/metrics.py);
            # with both parts rated it would be read nowhere
            if isinstance(dep, HybridDeployment) and name in task.quality \
                    and dep.local in task.quality and dep.cloud in task.quality:
                add(("tasks", i, "quality", name),
                    f"not used: {name}'s answers come from {dep.local} and {dep.cloud}, whose "
                    f"own rates for {task.name} ({task.quality[dep.local]:g} and "
                    f"{task.quality[dep.cloud]:g}) apply to the requests each serves; expected "
                    f"it left out, or one of theirs left out for it to stand in for")
    if isinstance(scenario.traffic, TraceTraffic):
        names = {t.name for t in scenario.tasks}
        seen = {str(t) for t in scenario.traffic.columns()["task"] if str(t)}
        unknown = sorted(seen - names)
        if unknown:
            add(("traffic", "path"), f"trace has task(s) {', '.join(unknown)} not in tasks; "
                f"expected one of: {', '.join(sorted(names))}")
    return problems, unbuildable
