"""Pulumi.<stack>.yaml: every key `llmplan stack` writes and `pulumi up` reads, typed once.

Keys live under the project namespace `llm-deploy-planner:`. Scalars and lists are declared
with their types in Pulumi.yaml (`project_config_declarations` writes that block and a test
keeps it in step); `plan` is an object, which Pulumi's project config cannot type, so the
program validates it here with the scenario's own models. `plan` holds the simulated
deployments exactly as the scenario defines them, so a stack can be read back into the
deployment that was simulated, and the figures of that simulation the router needs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from llmplan.catalog import Catalog, CloudModelSpec, ModelSpec
from llmplan.catalog.lifecycle import retired_reason
from llmplan.errors import InputError, Problem
from llmplan.perf.engine import DEFAULT_VLLM_VERSION, dotted
from llmplan.provision.gpu_nodes import EC2_GPU_INSTANCES, ec2_instance, known_instance
from llmplan.provision.images import (
    BALANCER_IMAGE,
    LITELLM_IMAGE,
    image_floor,
    image_release,
    image_vendor,
    is_final,
    is_pinned,
    vllm_image,
)
from llmplan.provision.vllm_build import provisioning_problem
from llmplan.scenario.cloud import CloudDeployment, HybridDeployment, TaskKind
from llmplan.scenario.models import DeploymentSpec, LocalDeployment, Name, SloSpec
from llmplan.yamlio.document import Loc, YamlDocument, read_yaml
from llmplan.yamlio.load import validate

PROJECT = "llm-deploy-planner"
#: the form of the AWS names a stack setting holds: (pattern, what it is, examples)
AWS_NAMES = {"aws_region": (r"[a-z]{2}(-[a-z]+)+-\d+", "AWS region", "us-east-1 or eu-west-2"),
             "eks_gpu_instance_type": (r"[a-z0-9-]+\.[a-z0-9-]+", "EC2 instance type",
                                       "p5.48xlarge or g6e.12xlarge")}
StackKind = Literal["local", "cloud", "hybrid"]

#: Secret configuration, set with `pulumi config set --secret` and never written by llmplan.
MASTER_KEY = "gatewayMasterKey"     # the gateway's admin key (clients use it or virtual keys)
CLOUD_KEY = "cloudApiKey"           # a non-AWS provider's API key
HUB_TOKEN = "hfToken"               # the model hub token gated weights need
SECRET_KEYS = (MASTER_KEY, CLOUD_KEY, HUB_TOKEN)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PlanTask(_Strict):
    """A task of the scenario: the router keys its model groups on the name."""

    name: Name
    sensitivity: Literal["public", "internal", "restricted"]
    kind: TaskKind | None = Field(default=None, description="What the task does (hybrid "
                                                            "routes by kind).")
    weight: float = Field(gt=0)
    mean_output_tokens: float = Field(ge=0, description="Mean answer length (the SLO alarm).")
    reasoning: bool | None = Field(
        default=None, description="Whether the task was simulated with hidden reasoning "
                                  "before its answers (reasoning_tokens); None: a stack file "
                                  "written before llmplan recorded it.")


class SimulatedFigures(_Strict):
    """What the simulation of this deployment measured that provisioning sizes things by."""

    monthly_usd: float = Field(ge=0, description="The plan's cost per month (both lists).")
    local_requests_per_s_per_replica: float | None = Field(
        default=None, ge=0, description="Local completions per second per replica.")
    kv_cache_tokens_per_replica: int | None = Field(default=None, ge=0)
    mean_tokens_per_request: float | None = Field(default=None, ge=0,
                                                  description="Prompt + output, mean.")
    cloud_requests_by_task: dict[str, int] = Field(
        default_factory=dict, description="Requests each task sent to the API.")


class Plan(_Strict):
    """The simulated deployment (and its parts when hybrid) in the scenario's own schema."""

    deployment: Name
    deployments: dict[Name, DeploymentSpec] = Field(min_length=1)
    tasks: list[PlanTask] = Field(min_length=1)
    slo: SloSpec
    restricted_stays_local: bool
    data_residency: list[str] = Field(
        default_factory=list,
        description="The scenario's constraints.data_residency: where the plan's API may "
                    "process data (empty: anywhere); the Bedrock route keeps to it.")
    catalog: Catalog = Field(description="The catalog entries these deployments use.")
    simulated: SimulatedFigures

    @model_validator(mode="after")
    def _complete(self) -> Plan:
        """The chosen deployment, its parts and their catalog entries are all here."""
        if self.deployment not in self.deployments:
            raise ValueError(f"deployment '{self.deployment}' is not among deployments "
                             f"({', '.join(self.deployments)})")
        chosen = self.deployments[self.deployment]
        if isinstance(chosen, HybridDeployment):
            for part, kind in (("local", LocalDeployment), ("cloud", CloudDeployment)):
                ref = getattr(chosen, part)
                if not isinstance(self.deployments.get(ref), kind):
                    raise ValueError(f"the hybrid's {part} part '{ref}' is not a kind: {part} "
                                     "deployment of the plan")
        missing = []
        for dep in self.deployments.values():
            if isinstance(dep, LocalDeployment):
                missing += [f"gpus.{dep.gpu}"] * (dep.gpu not in self.catalog.gpus)
                missing += [f"models.{dep.model}"] * (dep.model not in self.catalog.models)
            elif isinstance(dep, CloudDeployment) and dep.model not in self.catalog.cloud_models:
                missing.append(f"cloud_models.{dep.model}")
        if missing:
            raise ValueError(f"the plan's catalog lacks {', '.join(missing)}")
        for name, dep in self.deployments.items():
            if isinstance(dep, LocalDeployment) and (problem := provisioning_problem(
                    name, dep, self.catalog.models[dep.model],
                    self.catalog.gpus[dep.gpu])) is not None:
                raise ValueError(problem)
        cloud = self.cloud
        if cloud is not None and (
                retired := retired_reason(cloud[1].model, self.catalog.cloud_models)) is not None:
            raise ValueError(f"deployment '{cloud[0]}': {retired}")
        return self

    @property
    def chosen(self) -> LocalDeployment | CloudDeployment | HybridDeployment:
        return self.deployments[self.deployment]

    @property
    def local(self) -> tuple[str, LocalDeployment] | None:
        """The GPU fleet this stack serves, with its name, if any."""
        name = self._part("local")
        dep = self.deployments.get(name) if name else None
        return (name, dep) if name and isinstance(dep, LocalDeployment) else None

    @property
    def cloud(self) -> tuple[str, CloudDeployment] | None:
        """The API this stack routes to, with its name, if any."""
        name = self._part("cloud")
        dep = self.deployments.get(name) if name else None
        return (name, dep) if name and isinstance(dep, CloudDeployment) else None

    @property
    def model(self) -> ModelSpec | None:
        """The open model the GPU fleet serves."""
        local = self.local
        return self.catalog.models[local[1].model] if local is not None else None

    @property
    def cloud_model(self) -> CloudModelSpec | None:
        """The API model (provider, id, default limits)."""
        cloud = self.cloud
        return self.catalog.cloud_models[cloud[1].model] if cloud is not None else None

    def _part(self, kind: str) -> str | None:
        chosen = self.chosen
        if isinstance(chosen, HybridDeployment):
            return str(getattr(chosen, kind))
        return self.deployment if chosen.kind == kind else None


class StackConfig(BaseModel):
    """The `llm-deploy-planner:` keys of a stack (camelCase in the file, as Pulumi names them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False,
                              alias_generator=to_camel, populate_by_name=True)

    # what was planned (written by `llmplan stack` from the simulation)
    kind: StackKind = Field(description="local | cloud | hybrid: what this stack provisions.")
    scenario: str = Field(description="Name of the scenario the plan came from.")
    monthly_budget_usd: int = Field(gt=0, description="AWS Budget limit: the plan's monthly "
                                                      "cost, rounded up.")
    plan: Plan
    # where and how (defaults here; keep your edits when `llmplan stack` runs again)
    namespace: str = Field(default="llm", max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                           description="Kubernetes namespace of the stack.")
    cluster_mode: Literal["kubeconfig", "eks"] = Field(
        default="kubeconfig", description="kubeconfig: an existing cluster; eks: create one.")
    kube_context: str = Field(default="", description="kubeconfig context (empty: current).")
    aws_region: str = Field(default="",
                            description="AWS region, e.g. us-east-1 (empty: no AWS resources "
                                        "unless EKS or Bedrock needs them).")
    azure_api_base: str = Field(
        default="", pattern=r"^(https://[^\s/]+(/[^\s]*)?)?$",
        description="Azure OpenAI plans: the resource's endpoint, https://<resource>.openai."
                    "azure.com (the gateway's AZURE_API_BASE).")
    azure_deployment: str = Field(
        default="", pattern=r"^[A-Za-z0-9._-]*$",
        description="Azure OpenAI plans: the name of the resource's deployment of the "
                    "planned model (empty: the model's catalog id).")
    eks_kubernetes_version: str = Field(default="1.33", description="EKS control plane.")
    eks_gpu_instance_type: str = Field(default="",
                                       description="GPU node type, e.g. p5.48xlarge (empty: "
                                                   "the catalog GPU's EC2 type).")
    eks_gpus_per_node: int = Field(default=0, ge=0, le=64,
                                   description="GPUs on eksGpuInstanceType (0: from the table).")
    eks_cluster_name: str = Field(default="", description="An existing EKS cluster: Bedrock "
                                                          "access through EKS Pod Identity.")
    oidc_provider_arn: str = Field(default="", description="Non-EKS clusters: IAM OIDC provider "
                                                           "the gateway's account federates.")
    vpc_id: str = Field(default="", description="VPC for the Bedrock endpoint (EKS: its own).")
    subnet_ids: list[str] = Field(default_factory=list, description="Subnets of the endpoint.")
    storage_class: str = Field(default="", description="Weights volumes (empty: default).")
    allowed_namespaces: list[str] = Field(
        default_factory=lambda: ["monitoring"],
        description="Namespaces whose pods may reach the gateway and the GPU fleet (clients; "
                    "the Prometheus that scrapes vLLM for the autoscaler).")
    gateway_replicas: int = Field(default=2, ge=1, le=100)
    vllm_image: str = Field(default="", description="Serving image on NVIDIA GPUs (empty: "
                                                    "vllm/vllm-openai at the simulated vLLM "
                                                    "release; a tag naming another release "
                                                    "is refused).")
    vllm_rocm_image: str = Field(default="", description="Serving image on AMD GPUs (empty: "
                                                         "vllm/vllm-openai-rocm at the "
                                                         "simulated vLLM release; a tag naming "
                                                         "another release is refused).")
    litellm_image: str = Field(default=LITELLM_IMAGE, description="Gateway image (pinned).")
    balancer_image: str = Field(default=BALANCER_IMAGE, description="The gateway's request "
                                "balancer, nginx 1.27.3 or later (pinned).")
    cluster_domain: str = Field(default="cluster.local",
                                pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$",
                                description="The cluster's DNS domain (the balancer looks up "
                                            "the fleet's pods under it).")
    dns_resolver: str = Field(
        default="", pattern=r"^(([a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:]+\])(:[0-9]{1,5})?)?$",
        description="The cluster DNS the balancer asks, host[:port] (empty: kube-dns."
                    "kube-system.svc.<clusterDomain>; OpenShift: dns-default.openshift-dns.svc."
                    "cluster.local).")
    alarm_topic_arn: str = Field(default="", description="SNS topic the alarms notify.")
    budget_emails: list[str] = Field(default_factory=list,
                                     description="Who the budget notifies at 80% and 100%.")

    @field_validator("aws_region", "eks_gpu_instance_type")
    @classmethod
    def _aws_name(cls, value: str, info: ValidationInfo) -> str:
        pattern, what, examples = AWS_NAMES[info.field_name or ""]
        if value and not re.fullmatch(pattern, value):
            raise ValueError(f"'{value}' is no {what}; expected one such as {examples}")
        return value

    @model_validator(mode="after")
    def _eks_has_the_gpus(self) -> StackConfig:
        if self.cluster_mode == "eks" and self.gpu_vendor == "amd":
            raise ValueError("clusterMode eks creates NVIDIA GPU node groups, and the plan's "
                             "GPU is an AMD one: use an existing cluster with the AMD GPU "
                             "device plugin and node labeller (clusterMode kubeconfig)")
        local = self.plan.local
        if self.cluster_mode == "eks" and local is not None \
                and (servers := local[1].setup(self.plan.catalog).servers) > 1:
            raise ValueError(
                f"each replica of '{local[0]}' runs its pipeline stages on {servers} servers, "
                f"simulated handing over through the servers' RDMA network (catalog "
                f"network_gb_per_s); clusterMode eks creates GPU nodes without EFA, so NCCL "
                f"would fall back to TCP: use an existing cluster with RDMA networking and "
                f"the LeaderWorkerSet controller (clusterMode kubeconfig), or a layout of "
                f"one server (tp x pp <= {local[1].setup(self.plan.catalog).gpus_per_node})")
        if self.cluster_mode == "eks" and local is not None \
                and 0 < self.eks_gpus_per_node < local[1].gpus_per_replica:
            each = local[1].gpus_per_replica
            raise ValueError(f"eksGpusPerNode is {self.eks_gpus_per_node}, but each replica "
                             f"of '{local[0]}' needs its {each} GPUs (tp x pp) on one node: "
                             f"set eksGpuInstanceType to an instance with at least "
                             f"{each} GPUs")
        known = known_instance(self.eks_gpu_instance_type)
        if self.cluster_mode == "eks" and local is not None and known is not None:
            carries, row = known
            count = row.gpus
            if carries != local[1].gpu:
                fits = ", ".join(r.instance for r in EC2_GPU_INSTANCES.get(local[1].gpu, [])) \
                    or "none in llmplan's table"
                raise ValueError(
                    f"eksGpuInstanceType {self.eks_gpu_instance_type} carries {carries} "
                    f"GPUs, and '{local[0]}' was simulated on {local[1].gpu}: its pods would "
                    f"run on other GPUs than the plan's figures (instances with "
                    f"{local[1].gpu}: {fits})")
            if self.eks_gpus_per_node and self.eks_gpus_per_node != count:
                raise ValueError(
                    f"eksGpusPerNode is {self.eks_gpus_per_node}, but "
                    f"{self.eks_gpu_instance_type} carries {count} GPUs")
            if count < local[1].gpus_per_replica:
                each = local[1].gpus_per_replica
                bigger = ", ".join(r.instance for r in EC2_GPU_INSTANCES[carries]
                                   if r.gpus >= each) or "none in llmplan's table"
                raise ValueError(
                    f"eksGpuInstanceType {self.eks_gpu_instance_type} carries {count} GPU(s), "
                    f"and each replica of '{local[0]}' needs its {each} GPUs (tp x pp) on "
                    f"one node: its pods would stay Pending (instances with {each} or more "
                    f"{carries} GPUs: {bigger})")
        if self.cluster_mode == "eks" and local is not None and not self.eks_gpu_instance_type:
            # the node group's instance is chosen here, not first at `pulumi up`
            try:
                ec2_instance(local[1].gpu, local[1].gpus_per_replica)
            except ValueError as missing:
                raise ValueError(
                    f"{missing}: `llmplan stack --eks-gpu-instance-type <type> "
                    f"--eks-gpus-per-node <GPUs on it>`, or an existing cluster "
                    f"(clusterMode kubeconfig)") from None
        return self

    @property
    def gpu_vendor(self) -> Literal["nvidia", "amd"] | None:
        """The vendor of the fleet's GPUs (None: no fleet)."""
        local = self.plan.local
        return self.plan.catalog.gpus[local[1].gpu].vendor if local is not None else None

    @property
    def image_setting(self) -> Literal["vllm_image", "vllm_rocm_image"]:
        """The setting of the fleet's vLLM image: its GPUs' vendor's."""
        return "vllm_rocm_image" if self.gpu_vendor == "amd" else "vllm_image"

    @property
    def serving_image(self) -> str:
        """The vLLM image the fleet runs: the one set for its GPUs' vendor, else vLLM's
        official image of the simulated release."""
        local = self.plan.local
        vendor = self.gpu_vendor or "nvidia"
        return getattr(self, self.image_setting) or (
            vllm_image(local[1].engine.vllm_version, vendor) if local is not None
            else vllm_image(DEFAULT_VLLM_VERSION, vendor))

    @model_validator(mode="after")
    def _image_runs_the_simulated_release(self) -> StackConfig:
        local = self.plan.local
        if local is None:
            return self
        engine = local[1].engine
        key, image = to_camel(self.image_setting), getattr(self, self.image_setting)
        own = vllm_image(engine.vllm_version, self.gpu_vendor or "nvidia")
        if image and (re.search(r"\s", image) or not image.strip("/:@")):
            raise ValueError(f"{key} '{image}' is not an image reference; expected one such "
                             f"as {own}")
        if image and image_vendor(image) not in (None, self.gpu_vendor):
            raise ValueError(f"{key} {image} is vLLM's image for "
                             f"{'AMD' if image_vendor(image) == 'amd' else 'NVIDIA'} GPUs, and "
                             f"the fleet's {local[1].gpu} is "
                             f"{'an AMD' if self.gpu_vendor == 'amd' else 'an NVIDIA'} GPU; "
                             f"expected {own} or {key} left empty")
        if not image and not is_final(engine.vllm_version):
            final = re.split(r"rc|\.dev", engine.vllm_version)[0]
            raise ValueError(f"'{local[0]}' was simulated as vLLM {engine.vllm_version}, a "
                             f"pre-release vLLM publishes no image of: set {key} to an image "
                             f"of it (`llmplan stack --vllm-image <image>`), or simulate a "
                             f"release such as {final}")
        if image and not is_pinned(image):
            raise ValueError(f"{key} {image} is not pinned to a release; expected a tag "
                             f"naming one ({own}) or a digest, or {key} left empty")
        ran = image_release(image) if image else None
        if ran is not None and ran != engine.release:
            raise ValueError(
                f"{key} {image} runs vLLM {dotted(ran)}, but '{local[0]}' was "
                f"simulated as vLLM {engine.vllm_version} (engine.vllm_version), whose "
                f"memory accounting, defaults and flags differ: leave {key} empty (vLLM's "
                f"own image of the simulated release), or set engine.vllm_version to the "
                f"image's release in the scenario and run `llmplan stack` again")
        gpu = self.plan.catalog.gpus[local[1].gpu]
        floor = image_floor(gpu)
        # vLLM's own image of the release, named or left to the default, does not run there
        if floor is not None and image in ("", own) and engine.release < floor.release:
            raise ValueError(
                f"'{local[0]}' was simulated as vLLM {engine.vllm_version} on "
                f"{local[1].gpu} GPUs, and {floor.why}: set {key} to a pinned image that "
                f"runs vLLM {engine.vllm_version} ({floor.instead}; `llmplan stack "
                f"--vllm-image <image>`), or simulate engine.vllm_version >= "
                f"{dotted(floor.release)}")
        return self

    @property
    def uses_aws(self) -> bool:
        return self.cluster_mode == "eks" or self.uses_bedrock or bool(self.aws_region)

    @property
    def uses_bedrock(self) -> bool:
        model = self.plan.cloud_model
        return model is not None and model.provider == "bedrock"

    @property
    def uses_azure(self) -> bool:
        model = self.plan.cloud_model
        return model is not None and model.provider == "azure_openai"


# ------------------------------------------------------------------ reading and writing

def config_keys(config: StackConfig) -> dict[str, Any]:
    """The stack file's `config:` entries for these settings (project-namespaced, camelCase)."""
    data = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {f"{PROJECT}:{key}": value for key, value in data.items()}


def read_stack_file(path: Path) -> tuple[StackConfig, dict[str, Any]]:
    """The typed settings of a stack file, and the file's other entries (kept on rewrite)."""
    doc, ours, lines, rest = _stack_file_parts(path)
    return validate(YamlDocument(ours, lines, doc.file), StackConfig), rest


#: what `llmplan stack` writes from the simulation each time (not kept from a previous file)
PLAN_KEYS = ("kind", "scenario", "monthlyBudgetUsd", "plan")


def read_stack_settings(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings of a stack file that `llmplan stack` keeps when it writes it again (by
    field name), and the file's other entries, without validating its old plan: a file a
    newer check refuses (a GPU no EC2 instance carries, autoscaling the HPA cannot hold) is
    rewritten with the options that fix it, not read into a loop."""
    _, ours, _, rest = _stack_file_parts(path)
    names = {field.alias or name: name for name, field in StackConfig.model_fields.items()}
    return {names.get(key, key): value for key, value in ours.items()
            if key not in PLAN_KEYS}, rest


def previous_release(path: Path) -> str | None:
    """The vLLM release a stack file's plan simulated its fleet as (None: no fleet, or a
    file this cannot read)."""
    plan = _stack_file_parts(path)[1].get("plan")
    deployments = plan.get("deployments") if isinstance(plan, dict) else None
    for dep in (deployments or {}).values() if isinstance(deployments, dict) else ():
        if isinstance(dep, dict) and "gpu" in dep:          # the fleet, a local deployment
            engine = dep.get("engine")
            return str(engine.get("vllm_version", DEFAULT_VLLM_VERSION)
                       if isinstance(engine, dict) else DEFAULT_VLLM_VERSION)
    return None


def _stack_file_parts(path: Path) -> tuple[YamlDocument, dict[str, Any], dict[Loc, int],
                                           dict[str, Any]]:
    """A stack file's document, its own (project) settings, their lines, and the other
    entries; a secret stored in plain text is refused."""
    doc = read_yaml(path)
    data = doc.data if isinstance(doc.data, dict) else {}
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise InputError([Problem(doc.file, doc.line_of(("config",)), "config",
                                  "expected a mapping of configuration keys")])
    problems = [Problem(doc.file, doc.line_of(("config", f"{PROJECT}:{key}")),
                        f"config.{PROJECT}:{key}",
                        f"a secret is stored in plain text; run `pulumi config rm {key}` "
                        f"and `pulumi config set --secret {key} <value>`")
                for key in SECRET_KEYS
                if f"{PROJECT}:{key}" in config and not _is_secure(config[f"{PROJECT}:{key}"])]
    if problems:
        raise InputError(problems, title="stack file holds a secret in plain text")
    ours = {k.removeprefix(f"{PROJECT}:"): v for k, v in config.items()
            if k.startswith(f"{PROJECT}:") and k.removeprefix(f"{PROJECT}:") not in SECRET_KEYS}
    lines: dict[Loc, int] = {}
    for loc, line in doc.lines.items():
        if len(loc) >= 2 and loc[0] == "config" and str(loc[1]).startswith(f"{PROJECT}:"):
            lines[(str(loc[1]).removeprefix(f"{PROJECT}:"), *loc[2:])] = line
    rest = {k: v for k, v in data.items() if k != "config"}
    rest["config"] = {k: v for k, v in config.items()
                      if not k.startswith(f"{PROJECT}:") or
                      k.removeprefix(f"{PROJECT}:") in SECRET_KEYS}
    return doc, ours, lines, rest


def _is_secure(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def stack_from_values(values: dict[str, Any]) -> StackConfig:
    """StackConfig from the plain values Pulumi hands the program (no secrets among them)."""
    return StackConfig.model_validate(values)


ScalarType = Literal["string", "integer", "boolean", "array"]


def project_config_declarations() -> dict[str, Any]:
    """The `config:` block of Pulumi.yaml: every scalar or list key typed, with its default."""
    declared: dict[str, Any] = {}
    for name, field in StackConfig.model_fields.items():
        kind = _pulumi_type(field.annotation)
        if kind is None:
            continue     # objects (`plan`) are validated by the program, not by Pulumi
        entry: dict[str, Any] = {"type": kind, "description": field.description or ""}
        if kind == "array":
            entry["items"] = {"type": "string"}
        if not field.is_required():
            default = field.get_default(call_default_factory=True)
            entry["default"] = default
        declared[to_camel(name)] = entry
    declared[MASTER_KEY] = {"type": "string", "secret": True,
                            "description": "Admin key of the gateway (pulumi config set "
                                           "--secret)."}
    return declared


def _pulumi_type(annotation: Any) -> ScalarType | None:
    text = str(annotation)
    if annotation is int:
        return "integer"
    if annotation is bool:
        return "boolean"
    if annotation is str or text.startswith("typing.Literal"):
        return "string"
    if text.startswith("list["):
        return "array"
    return None


def fixed_caps_note(name: str, hybrid: HybridDeployment,
                    local: LocalDeployment | CloudDeployment | HybridDeployment) -> str | None:
    """What a hybrid's gateway does differently from the simulation when its fleet
    autoscales (None: nothing). The gateway spills and refuses at fixed counts of requests
    in flight per task group (LiteLLM's max_parallel_requests, router_config.py), counted
    for the fleet's starting replicas; the simulation's thresholds are per replica, so they
    grow with the replicas the autoscaler adds."""
    if not isinstance(local, LocalDeployment) or local.autoscaling is None:
        return None
    caps = []
    if hybrid.spillover_wait_s is not None:
        caps.append(f"spills past spillover_wait_s ({hybrid.spillover_wait_s:g} s)")
    if local.admission.queue_limit is not None:
        caps.append(f"spills or refuses past admission.queue_limit "
                    f"({local.admission.queue_limit} waiting)")
    if not caps:
        return None
    scale = local.autoscaling
    return (f"hybrid '{name}' {' and '.join(caps)} per replica in the simulation, but its "
            f"gateway counts requests in flight against a fixed cap set for the "
            f"{local.replicas} replicas '{hybrid.local}' starts with, and '{hybrid.local}' "
            f"autoscales ({scale.min_replicas} to {scale.max_replicas}): once it has scaled "
            f"out, the gateway still spills or refuses at the starting replicas' count, so "
            f"less waits in vLLM for the autoscaler to see and the added replicas take less "
            f"than simulated; give '{hybrid.local}' a fixed replica count for a stack that "
            f"behaves as simulated")
