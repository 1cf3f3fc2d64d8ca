"""From a decided scenario to a stack file: what `llmplan stack` writes.

The deployment that was simulated (the recommendation, or the one named) goes into the stack
as the scenario wrote it, with its parts when hybrid and the catalog entries it used, so the
stack can be read back into exactly the deployment that was simulated. The figures of that
simulation the gateway is sized by (local completions per replica, KV capacity, requests
each task sent to the API) and the plan's monthly cost come along. Running it again rewrites
the plan and keeps everything else in the file: the secrets `pulumi config set --secret`
stored there and any setting edited by hand. Secrets are never written.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from llmplan.catalog import Catalog
from llmplan.errors import InputError, Problem
from llmplan.files import write_text_atomic
from llmplan.perf.engine import release_tuple
from llmplan.provision.bedrock_routing import RouteError, bedrock_route, route_notes
from llmplan.provision.cluster_sizing import (
    check_eks_pods,
    eks_instance,
    gpu_node_counts,
    pods_per_node,
)
from llmplan.provision.credentials import credential_lines
from llmplan.provision.gpu_nodes import known_instance, unlabelled
from llmplan.provision.images import (
    VLLM_REPOSITORY,
    VLLM_ROCM_REPOSITORY,
    image_release,
    split_image,
)
from llmplan.provision.router_config import task_routes
from llmplan.provision.serving_manifests import (
    CHAT_DEFAULTS_RELEASE,
    HUB_DOWNLOAD_BYTES_PER_S,
    POD_START_S,
    SHUTDOWN_TIMEOUT_RELEASE,
    checkpoint_gib,
    hub_repos,
    scale_rule,
    thinks_unasked,
)
from llmplan.provision.stack_config import (
    CLOUD_KEY,
    HUB_TOKEN,
    MASTER_KEY,
    PROJECT,
    SECRET_KEYS,
    Plan,
    PlanTask,
    SimulatedFigures,
    StackConfig,
    config_keys,
    fixed_caps_note,
    previous_release,
    read_stack_settings,
)
from llmplan.results.decision import Candidate, Result
from llmplan.scenario import LoadedScenario
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment
from llmplan.scenario.models import LocalDeployment, Scenario


@dataclass(frozen=True)
class SecretNeed:
    """A secret the stack reads from `pulumi config set --secret`, and why."""

    key: str
    why: str
    already_set: bool


@dataclass(frozen=True)
class WrittenStack:
    """What `llmplan stack` wrote, for the command to report."""

    path: Path
    config: StackConfig
    candidate: Candidate
    secrets: list[SecretNeed]
    changed: bool
    notes: list[str]


def choose_deployment(loaded: LoadedScenario, result: Result, wanted: str | None) -> str:
    """The deployment to provision: `wanted`, or the recommendation."""
    names = list(loaded.scenario.deployments)
    if wanted is not None:
        if wanted in loaded.unbuildable:
            raise InputError([Problem(str(loaded.path), None, "--deployment",
                                      f"'{wanted}' cannot be built as written, so it was not "
                                      f"simulated: {loaded.unbuildable[wanted]}")])
        if wanted not in names:
            raise InputError([Problem(str(loaded.path), None, "--deployment",
                                      f"unknown deployment '{wanted}'; expected one of: "
                                      f"{', '.join(names)}")])
        return wanted
    chosen = result.recommendation.deployment
    if chosen is None:
        raise InputError([Problem(str(loaded.path), None, "deployments",
                                  "no deployment is feasible, so there is no recommendation to "
                                  f"provision ({result.recommendation.reason}); name one with "
                                  f"--deployment, expected one of: {', '.join(names)}")])
    return chosen


def plan_of(loaded: LoadedScenario, result: Result, name: str) -> Plan:
    """The simulated deployment `name` (and its parts) with what its simulation measured."""
    scenario = loaded.scenario
    chosen = scenario.deployments[name]
    parts: dict[str, LocalDeployment | CloudDeployment | HybridDeployment] = {name: chosen}
    if isinstance(chosen, HybridDeployment):
        parts[chosen.local] = scenario.deployments[chosen.local]
        parts[chosen.cloud] = scenario.deployments[chosen.cloud]
    local = next((d for d in parts.values() if isinstance(d, LocalDeployment)), None)
    cloud = next((d for d in parts.values() if isinstance(d, CloudDeployment)), None)
    models = [local.model] if local else []
    spec = local.engine.speculative if local else None
    if spec is not None and spec.drafter is not None \
            and (drafter := loaded.catalog.model_of_repo(spec.drafter)) is not None:
        models.append(drafter[0])      # a draft model the catalog sizes (llmplan.perf.drafter)
    catalog = Catalog(
        gpus={local.gpu: loaded.catalog.gpus[local.gpu]} if local else {},
        models={model: loaded.catalog.models[model] for model in models},
        cloud_models={cloud.model: loaded.catalog.cloud_models[cloud.model]} if cloud else {})
    return Plan(
        deployment=name, deployments=parts,
        tasks=[PlanTask(name=t.name, sensitivity=t.sensitivity, kind=t.kind, weight=t.weight,
                        mean_output_tokens=t.output_tokens.mean_tokens(),
                        reasoning=t.reasoning_tokens is not None)
               for t in scenario.tasks],
        slo=scenario.slo, restricted_stays_local=scenario.constraints.restricted_stays_local,
        data_residency=list(scenario.constraints.data_residency), catalog=catalog,
        simulated=_figures(result.deployments[name], result))


def _figures(candidate: Candidate, result: Result) -> SimulatedFigures:
    """The simulated numbers the gateway is sized by (see router_config)."""
    thr = candidate.throughput
    mean_tokens = ((thr.input_tokens_per_s + thr.output_tokens_per_s) / thr.requests_per_s
                   if thr.requests_per_s > 0 else None)
    per_replica = kv_tokens = None
    if candidate.local is not None:
        local = candidate.local
        served = (candidate.hybrid.served_local if candidate.hybrid is not None
                  else candidate.requests.completed)
        replicas = max(local.fleet.mean_active_replicas, 1e-9)
        per_replica = served / result.scenario.duration_s / replicas
        kv_tokens = local.engine.kv_cache_tokens
    cloud_by_task = {task: outcome.served_cloud for task, outcome in candidate.per_task.items()
                     if outcome.served_cloud > 0}
    return SimulatedFigures(monthly_usd=candidate.cost.monthly_usd,
                            local_requests_per_s_per_replica=per_replica,
                            kv_cache_tokens_per_replica=kv_tokens,
                            mean_tokens_per_request=mean_tokens,
                            cloud_requests_by_task=cloud_by_task)


def build_stack(loaded: LoadedScenario, result: Result, name: str,
                previous: dict[str, Any] | None, settings: dict[str, Any],
                *, previous_file: Path | None = None) -> StackConfig:
    """The stack for deployment `name`: the plan from this run, the other settings from
    `settings` (command-line options; `serving_image` is the fleet's vLLM image, in its
    vendor's setting), else from the previous file's (`read_stack_settings`), else the
    defaults."""
    try:
        plan = plan_of(loaded, result, name)
    except ValidationError as exc:
        raise InputError([Problem(str(loaded.path), None, f"deployments.{name}",
                                  str(e["msg"]).removeprefix("Value error, "))
                          for e in exc.errors()],
                         title="cannot provision this deployment as simulated") from None
    kept = {k: v for k, v in (previous or {}).items()
            if k not in stale_images(previous or {}, plan)}
    given = {k: v for k, v in settings.items() if v is not None}
    if (image := given.pop("serving_image", None)) is not None:
        # the fleet's image, in the setting of its GPUs' vendor
        local = plan.local
        amd = local is not None and plan.catalog.gpus[local[1].gpu].vendor == "amd"
        given["vllm_rocm_image" if amd else "vllm_image"] = image
    try:
        return StackConfig.model_validate({
            **kept, **given, "kind": plan.chosen.kind, "scenario": loaded.scenario.name,
            "monthly_budget_usd": max(1, math.ceil(plan.simulated.monthly_usd)), "plan": plan})
    except ValidationError as exc:
        raise InputError([_setting_problem(e, given, previous_file) for e in exc.errors()],
                         title="invalid stack setting") from None


def _setting_problem(error: Any, given: dict[str, Any], previous_file: Path | None) -> Problem:
    """Where a bad setting came from: its command-line option, or the stack file it was
    kept from (under its key there, llm-deploy-planner:<camelCase>)."""
    loc = error["loc"]
    field = str(loc[0]) if loc else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown setting (the file keeps llmplan's own under this project's keys)"
    elif "input" in error and not isinstance(error["input"], dict | list) \
            and str(error["input"]) not in message and not field.endswith(("key", "token")):
        message += f" (got {error['input']!r})"
    if field in given or previous_file is None or not field:
        option = f"--{field.replace('_', '-')}" if field in given else ".".join(map(str, loc))
        return Problem("<command line>", None, option, message)
    key = ".".join([f"{PROJECT}:{to_camel(field)}", *map(str, loc[1:])])
    return Problem(str(previous_file), None, key, message)


def stale_images(previous: dict[str, Any], plan: Plan) -> dict[str, str]:
    """Images of the previous file that are vLLM's own image of another release than the
    one now simulated (by setting field): `llmplan stack` wrote them, or they pinned a
    release the plan no longer models, so the simulated release's image replaces them."""
    local = plan.local
    if local is None:
        return {}
    release = local[1].engine.release
    return {field: image for field in ("vllm_image", "vllm_rocm_image")
            if isinstance(image := previous.get(field), str)
            and split_image(image)[0] in (VLLM_REPOSITORY, VLLM_ROCM_REPOSITORY)
            and image_release(image) != release}


def secrets_needed(config: StackConfig, present: set[str]) -> list[SecretNeed]:
    """The secrets this stack reads, marking those the file already holds (encrypted)."""
    needs = [(MASTER_KEY, "the gateway's admin key: clients send it as their bearer token")]
    model = config.plan.cloud_model
    if model is not None and model.provider != "bedrock":
        needs.append((CLOUD_KEY, f"the {model.provider} API key for {model.model_id}"))
    if config.plan.local is not None:
        why = _hub_token_why(hub_repos(config))
        needs += [(HUB_TOKEN, why)] if why else []
    return [SecretNeed(key, why, key in present) for key, why in needs]


def _hub_token_why(repos: list[tuple[str, bool | None]]) -> str | None:
    """Why the fleet needs a hub token: the gated repositories it downloads (and those whose
    gating the catalog does not know); None when every one is known to be open."""
    gated = [repo for repo, is_gated in repos if is_gated]
    unknown = [repo for repo, is_gated in repos if is_gated is None]
    if not gated and not unknown:
        return None
    parts = []
    if gated:
        parts.append(f"a model hub token: {' and '.join(gated)} "
                     f"{'is' if len(gated) == 1 else 'are'} gated on the hub (accept the "
                     "licence there with the token's account)")
    if unknown:
        parts.append(f"{'also needed' if gated else 'a model hub token, needed'} if "
                     f"{' or '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} gated "
                     "(not known to llmplan's catalog)")
    return "; ".join(parts)


def is_project_dir(folder: Path) -> bool:
    """`folder` holds llmplan's Pulumi project: a Pulumi.yaml naming PROJECT and the program
    folder it runs (its `main`, infra/, with the policy pack the printed preview reads), so
    stacks go there. A Pulumi.yaml copied alone is not one: `pulumi up` there finds no
    program."""
    try:
        project = yaml.safe_load((folder / "Pulumi.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    if not isinstance(project, dict) or project.get("name") != PROJECT:
        return False
    main = project.get("main", ".")
    return isinstance(main, str) and (folder / main).is_dir()


def project_dir() -> Path | None:
    """The folder of llmplan's Pulumi.yaml and infra/ (the top level of its source), if any."""
    top = Path(__file__).resolve().parents[2]
    return top if is_project_dir(top) else None


def stack_folder(out_dir: Path | None) -> Path:
    """Where Pulumi.<stack>.yaml goes: --out; else the current folder when it is the Pulumi
    project, else the project llmplan came with, else the current folder."""
    if out_dir is not None:
        return out_dir
    here = Path(".")
    return here if is_project_dir(here) else project_dir() or here


def write_stack(path: Path, loaded: LoadedScenario, result: Result, deployment: str | None,
                settings: dict[str, Any]) -> WrittenStack:
    """Write (or rewrite) Pulumi.<stack>.yaml for the chosen deployment; idempotent."""
    name = choose_deployment(loaded, result, deployment)
    previous, rest = read_stack_settings(path) if path.exists() else (None, {"config": {}})
    was = previous_release(path) if path.exists() else None
    config = build_stack(loaded, result, name, previous, settings,
                         previous_file=path if path.exists() else None)
    local = config.plan.local
    if local is not None and (why := unlabelled(
            local[1].gpu, config.plan.catalog.gpus.get(local[1].gpu))) is not None:
        raise InputError([Problem(str(loaded.path), None,
                                  f"catalog.gpus.{local[1].gpu}.k8s_product_label", why)],
                         title="cannot provision this deployment as simulated")
    try:
        check_eks_pods(config)
    except ValueError as small:
        raise InputError([Problem(str(path), None, "eksGpuInstanceType", str(small))],
                         title="cannot provision this deployment as simulated") from None
    if config.uses_bedrock and config.aws_region:
        try:
            bedrock_route(config.plan, config.aws_region)
        except RouteError as refused:
            raise InputError([_route_problem(refused, config.plan, loaded, settings, path)],
                             title="cannot provision this deployment as simulated") from None
    notes = _image_notes(config, stale_images(previous or {}, config.plan), was,
                         chosen=settings.get("serving_image") is not None)
    others: dict[str, Any] = rest["config"]
    present = {k.removeprefix(f"{PROJECT}:") for k in others
               if k.removeprefix(f"{PROJECT}:") in SECRET_KEYS}
    secrets = secrets_needed(config, present)
    text = render_stack_file(config, rest, secrets)
    if leaked := credential_lines(text):
        lines = text.splitlines()
        raise InputError([Problem(str(path), None,
                                  lines[n - 1].split(":", 1)[0].strip(" -\"'"),
                                  "would hold text shaped like a credential (an API key, an "
                                  "access key, a private key) in plain text; it comes from "
                                  f"the scenario ({loaded.path}: a name, a region, a catalog "
                                  "source): remove it there, and give keys as the README's "
                                  "secrets (pulumi config set --secret)")
                          for n in leaked], title="stack file not written")
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old != text:
        # the user's edited file is replaced whole or kept: a full disk or a Ctrl-C
        # mid-write left it cut short
        path.parent.mkdir(parents=True, exist_ok=True)
        dropped = dropped_comments(old, text) if old is not None else []
        if dropped:
            # the rewrite keeps the file's values, not its comments (PyYAML reads none):
            # the file as it was stays beside it
            kept = path.with_name(path.name + ".bak")
            write_text_atomic(kept, old or "")
            notes.append(f"{path.name} had {len(dropped)} comment"
                         f"{'s' if len(dropped) != 1 else ''} of your own (first: "
                         f"'{dropped[0][:60]}'); the rewrite keeps values, not comments: "
                         f"the file as it was is {kept.name}")
        write_text_atomic(path, text)
    rule = scale_rule(config)
    if rule is not None:
        rules = path.with_name(f"prometheus-adapter.{path.stem.removeprefix('Pulumi.')}.yaml")
        write_text_atomic(rules, "# prometheus-adapter rule the fleet's HorizontalPodAutoscaler "
                                 "reads: add it to the adapter's\n# externalRules (llmplan "
                                 "stack; README, Autoscaling)\n"
                          + yaml.safe_dump({"externalRules": [rule]}, sort_keys=False,
                                           width=1000))
        notes.append(f"the fleet's autoscaler reads the external metric "
                     f"{rule['name']['as']}: add the rule in {rules.name} to "
                     f"prometheus-adapter's externalRules, or the HPA never scales")
    return WrittenStack(path, config, result.deployments[name], secrets, changed=old != text,
                        notes=[*notes, *setting_notes(config)])


def _route_problem(refused: RouteError, plan: Plan, loaded: LoadedScenario,
                   settings: dict[str, Any], path: Path) -> Problem:
    """Where a refused Bedrock route is fixed: the Region called (its option, or the stack
    file's key it was kept from), else the deployment in the scenario."""
    if not refused.setting:
        cloud = plan.cloud
        return Problem(str(loaded.path), None,
                       f"deployments.{cloud[0] if cloud else plan.deployment}", str(refused))
    if settings.get("aws_region") is not None:
        return Problem("<command line>", None, "--aws-region", str(refused))
    return Problem(str(path), None, f"{PROJECT}:awsRegion", str(refused))


def _image_notes(config: StackConfig, replaced: dict[str, str], was: str | None, *,
                 chosen: bool) -> list[str]:
    """What happened to the fleet's image on a rewrite: vLLM's image of another release
    replaced by the simulated one's, or an image of one's own (which names no release to
    check) kept while the plan's release moved under it (`was`: the previous file's)."""
    local = config.plan.local
    if local is None:
        return []
    key, now = to_camel(config.image_setting), local[1].engine.vllm_version
    if (stale := replaced.get(config.image_setting)) is not None:
        return [f"{key} {stale} ran another vLLM release than the simulated {now}: now "
                f"{config.serving_image}"]
    kept = getattr(config, config.image_setting)
    if kept and not chosen and was is not None and release_tuple(was) != release_tuple(now):
        return [f"{key} {kept} is kept from the stack file, and the plan now simulates vLLM "
                f"{now} (was {was}): make sure the image runs {now}"]
    return []


def _eks_node_scaling_notes(config: StackConfig) -> list[str]:
    """What an autoscaled fleet on the EKS cluster the stack creates lacks: the GPU node
    group is sized min..max for the replicas, but nothing adds or removes its nodes (the
    stack runs no cluster autoscaler), so the HPA's replicas past what the starting nodes
    hold stay Pending, where the simulation started them within spin_up_s."""
    local = config.plan.local
    if local is None or local[1].autoscaling is None:
        return []
    instance, low, desired, high = gpu_node_counts(config)
    if low == desired == high:
        return []    # the starting nodes hold every replica the HPA may run
    held = desired * max(1, pods_per_node(config)[1])
    scale = local[1].autoscaling
    return [f"clusterMode eks sizes the GPU node group of '{local[0]}' {low} to {high} "
            f"{instance} nodes and starts {desired}, but runs no cluster autoscaler: "
            f"replicas the HPA adds past the {held} those nodes hold stay Pending (the "
            f"simulation started each within autoscaling.spin_up_s {scale.spin_up_s:g} s, "
            f"up to {scale.max_replicas}), and no node is removed when it scales in; "
            f"install one that discovers the cluster's node groups (Cluster Autoscaler: "
            f"`helm install cluster-autoscaler autoscaler/cluster-autoscaler --namespace "
            f"kube-system --set autoDiscovery.clusterName=llmplan-<stack> --set "
            f"awsRegion={config.aws_region or '<region>'}`, with an IAM role that may scale "
            f"them; or Karpenter)"]


def thinking_notes(config: StackConfig) -> list[str]:
    """The fleet's tasks simulated without reasoning that the served model will think on
    anyway: a model that always thinks (gpt-oss, DeepSeek-R1: no switch), or Qwen3's
    hybrid models when only some tasks think (the server's default then stays on, and the
    others' clients must turn it off per request)."""
    local = config.plan.local
    assert local is not None
    model = config.plan.catalog.models[local[1].model]
    served = {r.task for r in task_routes(config.plan)
              if r.side == "local" or r.falls_back or r.spills}
    tasks = [t for t in config.plan.tasks if t.name in served]
    plain = [t.name for t in tasks if t.reasoning is False]
    if not plain:
        return []
    if model.always_thinks:
        return [f"{local[1].model} reasons before every answer (no switch turns it off) and "
                f"the plan simulated {', '.join(plain)} without reasoning: those answers "
                f"will take longer and cost more than simulated; give the tasks "
                f"reasoning_tokens and run again"]
    if model.reasoning_parser != "qwen3":
        return []
    thinking = [t.name for t in tasks if t.reasoning]
    if not thinks_unasked(config):
        if not thinking:
            return []    # the model's default kept: tasks of unknown reasoning
        return [f"{local[1].model} thinks unless asked not to and the plan simulated "
                f"{', '.join(plain)} without reasoning ({', '.join(thinking)} with it): the "
                f"clients of those tasks must send chat_template_kwargs "
                f"{{\"enable_thinking\": false}}"]
    if thinking:
        return [f"the fleet starts {local[1].model} with thinking off, as its own tasks were "
                f"simulated without reasoning; {', '.join(thinking)}, simulated with "
                f"reasoning, fall back to it when the API fails and will answer there "
                f"without thinking unless their clients send chat_template_kwargs "
                f"{{\"enable_thinking\": true}}"]
    return []


def api_reasoning_notes(config: StackConfig) -> list[str]:
    """The tasks the gateway sends the API that the plan simulated with hidden reasoning
    (reasoning_tokens, timed and billed as output). The scenario gives a length of thinking,
    not a provider setting, so the gateway asks for none on their groups (a plain task's
    group sends the model's lowest effort, as simulated): it passes on what a client sends
    (LiteLLM translates OpenAI's reasoning_effort into Anthropic's and Bedrock's thinking
    and Gemini's thinking budget). Whether a model thinks when not asked differs (GPT-5.1
    answers with no reasoning by default, Claude thinks only when a request enables it), so
    those tasks' clients must ask for it."""
    cloud = config.plan.cloud
    if cloud is None:
        return []
    sent = {r.task for r in task_routes(config.plan)
            if not r.restricted and (r.side == "cloud" or r.spills)}
    thinking = [t.name for t in config.plan.tasks if t.name in sent and t.reasoning]
    if not thinking:
        return []
    model = cloud[1].model
    return [f"the plan simulated {', '.join(thinking)} with hidden reasoning on {model} (timed "
            f"and billed as output), and the gateway asks the API for no reasoning setting: "
            f"unless {model} thinks when not asked, clients of "
            f"{'those tasks' if len(thinking) > 1 else 'that task'} must send "
            f"reasoning_effort (the gateway passes it on, translated for the provider), or "
            f"their answers come without the thinking the plan timed and priced"]


def setting_notes(config: StackConfig) -> list[str]:
    """What `pulumi up` will still need that the stack file does not say yet."""
    notes = []
    local = config.plan.local
    if local is not None and thinks_unasked(config) \
            and local[1].engine.release < CHAT_DEFAULTS_RELEASE:
        notes.append(f"{local[1].model} thinks before every chat answer unless asked not to, "
                     f"and the plan was simulated without reasoning; vLLM "
                     f"{local[1].engine.vllm_version} has no --default-chat-template-kwargs "
                     f"(0.14.0 on), so clients must send chat_template_kwargs "
                     f"{{\"enable_thinking\": false}}")
    if local is not None:
        notes += thinking_notes(config)
    notes += api_reasoning_notes(config)
    chosen = config.plan.chosen
    if isinstance(chosen, HybridDeployment) and local is not None \
            and (caps := fixed_caps_note(config.plan.deployment, chosen, local[1])) is not None:
        notes.append(caps)
    scale = local[1].autoscaling if local is not None else None
    if scale is not None:
        download_s = checkpoint_gib(config) * 2**30 / HUB_DOWNLOAD_BYTES_PER_S
        if download_s + scale.spin_up_s > 1.5 * scale.spin_up_s:
            notes.append(
                f"a replica the autoscaler adds starts with an empty weights volume: it "
                f"downloads {checkpoint_gib(config):,.0f} GiB (about {download_s / 60:,.0f} "
                f"min at the assumed 100 MB/s) before loading, and waits for its node and "
                f"image first where the cluster adds nodes (up to {POD_START_S // 60} min "
                f"assumed); the simulation gave it autoscaling.spin_up_s "
                f"{scale.spin_up_s:g} s: set spin_up_s to what the cluster measures, or "
                f"keep the weights where a new pod finds them")
    if local is not None and local[1].engine.release < SHUTDOWN_TIMEOUT_RELEASE:
        notes.append(f"vLLM {local[1].engine.vllm_version} drops the requests in flight "
                     f"when a pod stops (a scale-in, a rolling update; --shutdown-timeout "
                     f"drains them from 0.18.0), where the simulation let them finish: "
                     f"clients see those as errors, or the gateway falls back")
    if (config.uses_bedrock or config.cluster_mode == "eks") and not config.aws_region:
        why = "the plan calls AWS Bedrock" if config.uses_bedrock else "clusterMode is eks"
        notes.append(f"{why}: set the region (--aws-region, or pulumi config set awsRegion)")
    if config.uses_bedrock and config.aws_region:
        # a route refused is write_stack's error (and `pulumi up`'s: cloud_access.py)
        with contextlib.suppress(RouteError):
            notes += route_notes(config.plan, bedrock_route(config.plan, config.aws_region))
    if config.uses_azure and not config.azure_api_base:
        notes.append("the plan calls Azure OpenAI: set the resource's endpoint (pulumi config "
                     "set azureApiBase https://<resource>.openai.azure.com) and, if its "
                     "deployment of the model has another name than "
                     f"'{config.plan.cloud_model.model_id if config.plan.cloud_model else ''}', "
                     "azureDeployment")
    if config.uses_bedrock:
        notes.append("the AWS budget counts what carries the stack's tag; Bedrock's on-demand "
                     "token spend carries none, so watch it apart (Cost Explorer's Amazon "
                     "Bedrock line, or an application inference profile with the tag)")
    if config.uses_bedrock and config.cluster_mode != "eks" and not (
            config.vpc_id and config.subnet_ids):
        notes.append("no VPC endpoint for Bedrock is created without the cluster's vpcId and "
                     "subnetIds (pulumi config set vpcId ...; subnetIds as a list): the "
                     "gateway then reaches Bedrock over the internet through the cluster's "
                     "NAT")
    if config.uses_bedrock and config.cluster_mode != "eks" and not (
            config.eks_cluster_name or config.oidc_provider_arn):
        notes.append("the gateway needs an AWS identity for Bedrock: set eksClusterName (an "
                     "EKS cluster with the Pod Identity agent) or oidcProviderArn")
    plan = config.plan
    restricted = [t.name for t in plan.tasks if t.sensitivity == "restricted"]
    if local is None and plan.restricted_stays_local and restricted:
        notes.append(f"the plan has no GPU fleet and restricted data stays local: the "
                     f"gateway has no route for {', '.join(restricted)}, and refuses "
                     f"those requests")
    if config.cluster_mode == "eks" and local is not None:
        instance = config.eks_gpu_instance_type or eks_instance(config)
        if known_instance(instance) is None:
            notes.append(f"eksGpuInstanceType {instance} is not in llmplan's table of GPU "
                         f"instances: check that it carries {local[1].gpu} GPUs, "
                         f"{local[1].gpus_per_replica} or more, or the pods stay Pending")
        notes.append(
            f"clusterMode eks creates the GPU nodes of '{local[0]}' as on-demand EC2 instances "
            f"({instance}), billed at AWS's hourly rate; the plan priced the fleet "
            f"{local[1].costs.ownership.replace('_', ' ')} at "
            f"${config.plan.simulated.monthly_usd:,.0f} a month with the catalog's "
            f"{local[1].gpu} prices, which are not that rate: to compare on what EKS will "
            f"bill, set deployments.{local[0]}.costs.ownership: rented_on_demand and "
            f"catalog.gpus.{local[1].gpu}."
            f"rental_usd_per_gpu_hour to the instance's price per GPU, and run again")
        notes += _eks_node_scaling_notes(config)
    setup = local[1].setup(config.plan.catalog) if local is not None else None
    if setup is not None and setup.servers > 1:
        gpu = config.plan.catalog.gpus[setup.gpu_name]
        notes.append(
            f"each replica is a group of {setup.servers} pods, one per server (a "
            f"LeaderWorkerSet): the cluster needs the LeaderWorkerSet controller, v0.8.0 or "
            f"later (the manifests are checked against v0.10.0's schema: `helm install lws "
            f"oci://registry.k8s.io/lws/charts/lws --version 0.10.0 --namespace lws-system "
            f"--create-namespace`), and the stages were simulated handing over at "
            f"{gpu.network_gb_per_s:g} GB/s per GPU between servers (catalog "
            f"network_gb_per_s, an RDMA NIC's share): the pods ask for no RDMA device, so "
            f"where the pod network is the only path NCCL uses its sockets: set "
            f"catalog.gpus.{setup.gpu_name}.network_gb_per_s in the scenario to that "
            f"network's share per GPU and simulate again to plan with it")
    if config.gpu_vendor == "amd":
        # the device nodes keep the host's owner and mode in the container, and the render
        # group's id differs from host to host: AMD's answer is a udev rule (ROCm/ROCm-docker
        # #90), which kubeflow/kubeflow#7655 uses with the AMD device plugin on MI300X
        notes.append("AMD GPUs: the cluster needs the AMD GPU device plugin and its node "
                     "labeller (amd.com/gpu, amd.com/gpu.product-name; the AMD GPU Operator "
                     "installs both), and vLLM runs as a non-root user, so /dev/kfd and "
                     "/dev/dri/renderD* must be open to it on the GPU nodes: a udev rule "
                     "KERNEL==\"kfd\", MODE=\"0666\" and SUBSYSTEM==\"drm\", "
                     "KERNEL==\"renderD*\", MODE=\"0666\"")
    return notes


def dropped_comments(old: str, new: str) -> list[str]:
    """Comments in `old`, past its leading block (the header `render_stack_file` writes),
    that `new` does not hold: whole-line ones and those after a value (` # ...`, outside
    quotes as far as a line shows)."""
    lines = old.splitlines()
    start = next((i for i, line in enumerate(lines) if not line.lstrip().startswith("#")),
                 len(lines))
    kept = new.splitlines()
    found: list[str] = []
    for line in lines[start:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            comment = stripped
        elif " #" in line and line.count('"') % 2 == 0 and line.count("'") % 2 == 0:
            comment = line[line.index(" #") + 1:].strip()
        else:
            continue
        if not any(comment in other for other in kept):
            found.append(comment)
    return found


def render_stack_file(config: StackConfig, rest: dict[str, Any],
                      secrets: list[SecretNeed]) -> str:
    """The file's text: a header saying what it is and which secrets to set, then YAML."""
    plan = config.plan
    header = [f"# Written by `llmplan stack` from scenario '{config.scenario}': deployment "
              f"'{plan.deployment}' ({config.kind}) as simulated,",
              f"# planned at ${plan.simulated.monthly_usd:,.0f} per month. Running the command "
              "again rewrites `plan` and keeps every other entry.",
              "# Secrets are never written here; set them with:"]
    if plan.local is not None:
        header.insert(2, f"# The fleet runs {config.serving_image} (vLLM "
                         f"{plan.local[1].engine.vllm_version}, as simulated).")
    header += [f"#   pulumi config set --secret {s.key} <value>    # {s.why}" for s in secrets]
    others = dict(rest["config"])
    body = {**{k: v for k, v in rest.items() if k != "config"},
            "config": {**config_keys(config), **dict(sorted(others.items()))}}
    return "\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False, width=100)


def replay_scenario(loaded: LoadedScenario, plan: Plan) -> LoadedScenario:
    """The scenario with only the stack's deployments, validated again from their stored
    form, and only the catalog entries the stack carries: simulating it must reproduce the
    deployment's result (what is provisioned is what was simulated)."""
    data = loaded.scenario.model_dump(mode="json", by_alias=True,
                                      exclude={"deployments", "catalog", "evaluations"})
    data["deployments"] = {name: dep.model_dump(mode="json")
                           for name, dep in plan.deployments.items()}
    scenario = Scenario.model_validate(data, context={"base_dir": str(loaded.path.parent)})
    return LoadedScenario(scenario, Catalog.model_validate(plan.catalog.model_dump()),
                          loaded.path)
