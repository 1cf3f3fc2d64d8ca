"""The stack's policy pack (pulumi-policy): rules every `pulumi preview/up` is checked against.

    pulumi preview --policy-pack infra/policy

Five rules, each a plain function over a resource's inputs (`props`, property names as the
engine sends them) so they are tested by calling them on the resources the program's mocks
register:

- no-iam-wildcards: no `*` in any IAM action, resource or principal (identity policies,
  role trust policies, VPC endpoint policies);
- pods-non-root-with-limits: every pod template runs as non-root and every container has
  CPU and memory limits (kube-system is exempt: the NVIDIA device plugin must write to the
  kubelet's socket directory as root);
- network-policy-per-namespace: every namespace with workloads has a NetworkPolicy;
- no-plaintext-secrets: no credential in any plain input (a literal that looks like a key,
  an env var named like a secret with a literal value, a key assigned in a config file);
  Kubernetes Secrets and Secrets Manager versions are where secrets belong and are skipped;
- images-pinned: every container image names a release tag or a digest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from llmplan.provision.credentials import CREDENTIAL
from llmplan.provision.images import is_pinned

EXEMPT_NAMESPACES = frozenset({"kube-system"})
WORKLOADS: dict[str, tuple[tuple[str, ...], ...]] = {
    "kubernetes:apps/v1:Deployment": (("spec", "template", "spec"),),
    "kubernetes:apps/v1:StatefulSet": (("spec", "template", "spec"),),
    "kubernetes:apps/v1:DaemonSet": (("spec", "template", "spec"),),
    "kubernetes:apps/v1:ReplicaSet": (("spec", "template", "spec"),),
    "kubernetes:batch/v1:Job": (("spec", "template", "spec"),),
    "kubernetes:batch/v1:CronJob": (("spec", "jobTemplate", "spec", "template", "spec"),),
    "kubernetes:core/v1:Pod": (("spec",),),
    # a multi-server vLLM replica: its leader's and its workers' pods
    "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet": (
        ("spec", "leaderWorkerTemplate", "leaderTemplate", "spec"),
        ("spec", "leaderWorkerTemplate", "workerTemplate", "spec")),
}
#: Where each IAM-bearing resource keeps its JSON policy documents.
IAM_DOCUMENTS = {
    "aws:iam/policy:Policy": ("policy",),
    "aws:iam/rolePolicy:RolePolicy": ("policy",),
    "aws:iam/userPolicy:UserPolicy": ("policy",),
    "aws:iam/groupPolicy:GroupPolicy": ("policy",),
    "aws:iam/role:Role": ("assumeRolePolicy",),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("policy",),
    "aws:secretsmanager/secretPolicy:SecretPolicy": ("policy",),
}
SECRET_STORES = frozenset({"kubernetes:core/v1:Secret",
                           "aws:secretsmanager/secretVersion:SecretVersion"})
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)", re.IGNORECASE)
#: `api_key: <literal>` in a config file carried as text (a reference is `os.environ/NAME`).
ASSIGNED_SECRET = re.compile(
    r"(api[_-]?key|password|secret|token)[\"']?\s*[:=]\s*[\"']?(?!os\.environ/)"
    r"([A-Za-z0-9_\-./+=]{16,})", re.IGNORECASE)

Validate = Callable[[ResourceValidationArgs, ReportViolation], None]


def _get(props: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = props
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _namespace(props: Mapping[str, Any]) -> str:
    return str(_get(props, ("metadata", "namespace")) or "default")


# ------------------------------------------------------------------ no-iam-wildcards

def _documents(args: ResourceValidationArgs) -> Iterator[dict[str, Any]]:
    for key in IAM_DOCUMENTS.get(args.resource_type, ()):
        raw = args.props.get(key)
        if isinstance(raw, str) and raw.strip():
            doc = json.loads(raw)
        elif isinstance(raw, Mapping):
            doc = dict(raw)
        else:
            continue
        if isinstance(doc, dict):
            yield doc


def _listed(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [v for item in value.values() for v in _listed(item)]
    if isinstance(value, list):
        return [v for item in value for v in _listed(item)]
    return []


def no_iam_wildcards(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for doc in _documents(args):
        statements = doc.get("Statement", [])
        for i, statement in enumerate(statements if isinstance(statements, list)
                                      else [statements]):
            for field in ("Action", "NotAction", "Resource", "NotResource", "Principal",
                          "NotPrincipal"):
                wild = [v for v in _listed(statement.get(field)) if "*" in v]
                if wild:
                    report(f"{args.name}: statement {i} has a wildcard in {field}: "
                           f"{', '.join(wild)}; name the actions and ARNs", None)


# ------------------------------------------------------------------ pods

def _pods(args: ResourceValidationArgs) -> list[Mapping[str, Any]]:
    """The pod specs of a workload (none for other resources)."""
    return [_get(args.props, path) or {} for path in WORKLOADS.get(args.resource_type, ())]


def pods_non_root_with_limits(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if _namespace(args.props) in EXEMPT_NAMESPACES:
        return
    for pod in _pods(args):
        _pod_non_root_with_limits(args, report, pod)


def _pod_non_root_with_limits(args: ResourceValidationArgs, report: ReportViolation,
                              pod: Mapping[str, Any]) -> None:
    pod_context = pod.get("securityContext") or {}
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    for container in containers:
        context = container.get("securityContext") or {}
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        user = context.get("runAsUser", pod_context.get("runAsUser"))
        if non_root is not True or user == 0:
            report(f"{args.name}: container '{container.get('name')}' may run as root; set "
                   "securityContext.runAsNonRoot: true (and a non-zero runAsUser)", None)
        if context.get("allowPrivilegeEscalation", True) is not False:
            report(f"{args.name}: container '{container.get('name')}' allows privilege "
                   "escalation; set allowPrivilegeEscalation: false", None)
        limits = (container.get("resources") or {}).get("limits") or {}
        missing = [r for r in ("cpu", "memory") if r not in limits]
        if missing:
            report(f"{args.name}: container '{container.get('name')}' has no "
                   f"{' or '.join(missing)} limit", None)


# ------------------------------------------------------------------ network policies

def network_policy_per_namespace(args: StackValidationArgs, report: ReportViolation) -> None:
    guarded = {_namespace(r.props) for r in args.resources
               if r.resource_type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"}
    for resource in args.resources:
        if resource.resource_type not in WORKLOADS:
            continue
        namespace = _namespace(resource.props)
        if namespace not in EXEMPT_NAMESPACES and namespace not in guarded:
            report(f"{resource.name}: namespace '{namespace}' serves pods but has no "
                   "NetworkPolicy", resource.urn)


# ------------------------------------------------------------------ secrets

def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def _env_entries(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        env = value.get("env")
        if isinstance(env, list):
            yield from (e for e in env if isinstance(e, Mapping))
        for item in value.values():
            yield from _env_entries(item)
    elif isinstance(value, list):
        for item in value:
            yield from _env_entries(item)


def no_plaintext_secrets(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type in SECRET_STORES:
        return
    for path, text in _strings(args.props):
        if CREDENTIAL.search(text):
            report(f"{args.name}: {path} holds what looks like a credential in plain text; "
                   "keep it in a Secret and reference it", None)
        elif ASSIGNED_SECRET.search(text):
            report(f"{args.name}: {path} assigns a literal secret; reference it "
                   "(os.environ/NAME from a Secret) instead", None)
    for entry in _env_entries(args.props):
        name, value = str(entry.get("name", "")), entry.get("value")
        if SECRET_NAME.search(name) and isinstance(value, str) and value:
            report(f"{args.name}: env {name} is set to a literal value; use "
                   "valueFrom.secretKeyRef", None)


# ------------------------------------------------------------------ images

def images_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for pod in _pods(args):
        _images_pinned(args, report, pod)


def _images_pinned(args: ResourceValidationArgs, report: ReportViolation,
                   pod: Mapping[str, Any]) -> None:
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        image = str(container.get("image", ""))
        if not is_pinned(image):
            report(f"{args.name}: image '{image}' of container '{container.get('name')}' is "
                   "not pinned to a release tag or digest", None)


RESOURCE_RULES: dict[str, tuple[str, Validate]] = {
    "no-iam-wildcards": ("No * in IAM actions, resources or principals.", no_iam_wildcards),
    "pods-non-root-with-limits": ("Pods run as non-root, without privilege escalation, with "
                                  "CPU and memory limits.", pods_non_root_with_limits),
    "no-plaintext-secrets": ("No secret in any plain input.", no_plaintext_secrets),
    "images-pinned": ("Container images are pinned to a release or digest.", images_pinned),
}


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """The pack's policies, all mandatory (a violation stops `pulumi up`)."""
    rules: list[ResourceValidationPolicy | StackValidationPolicy] = [
        ResourceValidationPolicy(name=name, description=description, validate=validate,
                                 enforcement_level=EnforcementLevel.MANDATORY)
        for name, (description, validate) in RESOURCE_RULES.items()]
    rules.append(StackValidationPolicy(
        name="network-policy-per-namespace",
        description="Every namespace with workloads has a NetworkPolicy.",
        validate=network_policy_per_namespace, enforcement_level=EnforcementLevel.MANDATORY))
    return rules
