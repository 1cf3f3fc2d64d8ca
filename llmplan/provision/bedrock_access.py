"""What the gateway may do on AWS Bedrock, as IAM documents and alarm thresholds (no Pulumi).

Actions: `bedrock:InvokeModel` and `bedrock:InvokeModelWithResponseStream` only. Bedrock's
Converse and ConverseStream calls are authorised by these two (AWS Bedrock user guide,
"Prerequisites for running model inference"), so this is every invoke and converse call and
nothing else: no listing, no model management, no guardrail or agent actions.

Resources: the plan's model only, as AWS names it for the way the gateway calls it
(bedrock_routing.py chooses the way; each ARN is named, never a `*`):
- the model in the Region called: its foundation-model ARN there;
- a geographic cross-Region inference profile: the profile in the Region called, and the
  foundation model in that Region and in every destination Region the profile routes to from
  it (AWS Bedrock user guide, "Geographic cross-Region inference", IAM policy requirements:
  docs.aws.amazon.com/bedrock/latest/userguide/geographic-cross-region-inference.html);
- the global profile: the profile in the Region called, the foundation model in that Region,
  and the global foundation-model ARN, which names no Region and no account; AWS calls all
  three required ("Global cross-Region inference", IAM policy requirements:
  docs.aws.amazon.com/bedrock/latest/userguide/global-cross-region-inference.html).
Through a profile, the foundation models are allowed only when the call names that profile
(condition `bedrock:InferenceProfileArn`, as AWS's example policies of both pages do).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llmplan.provision.bedrock_routing import BedrockRoute
from llmplan.scenario.models import SloSpec

INVOKE_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")


@dataclass(frozen=True)
class ModelArns:
    """What a call of the plan's model is authorised against."""

    profile: str | None       # the inference profile called (None: the model in-Region)
    models: tuple[str, ...]   # the foundation models it may reach

    @property
    def all(self) -> list[str]:
        return [*([self.profile] if self.profile else []), *self.models]


def partition(region: str) -> str:
    """The ARN partition of a Region (AWS General Reference, "Amazon Resource Names")."""
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws-cn" if region.startswith("cn-") else "aws"


def model_arns(route: BedrockRoute, account_id: str) -> ModelArns:
    """Every ARN an invocation along `route` is authorised against (see the module doc)."""
    source, arn = route.source_region, f"arn:{partition(route.source_region)}:bedrock"

    def model_in(region: str) -> str:
        return f"{arn}:{region}::foundation-model/{route.foundation_model}"

    if route.kind == "in_region":
        return ModelArns(None, (model_in(source),))
    profile = f"{arn}:{source}:{account_id}:inference-profile/{route.model_id}"
    if route.kind == "geographic":
        # "Geographic cross-Region inference": the profile, the model in the source Region
        # and in all destination Regions listed in the profile
        return ModelArns(profile, tuple(model_in(r) for r in sorted({source,
                                                                      *route.destinations})))
    # "Global cross-Region inference": the Regional profile, the Regional model, and the
    # global model `arn:aws:bedrock:::foundation-model/<model>` (no Region, no account)
    return ModelArns(profile, (model_in(source),
                               f"{arn}:::foundation-model/{route.foundation_model}"))


def invoke_policy(arns: ModelArns) -> str:
    """The role's identity policy: invoke (and so converse) the plan's model, nothing else."""
    statements: list[dict[str, Any]]
    if arns.profile is None:
        statements = [{"Sid": "InvokeThePlannedModel", "Effect": "Allow",
                       "Action": list(INVOKE_ACTIONS), "Resource": list(arns.models)}]
    else:
        statements = [
            {"Sid": "InvokeThePlannedProfile", "Effect": "Allow",
             "Action": list(INVOKE_ACTIONS), "Resource": [arns.profile]},
            {"Sid": "ItsModelsThroughTheProfileOnly", "Effect": "Allow",
             "Action": list(INVOKE_ACTIONS), "Resource": list(arns.models),
             "Condition": {"StringEquals": {"bedrock:InferenceProfileArn": arns.profile}}}]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=2)


def endpoint_policy(role_arn: str, arns: ModelArns) -> str:
    """The VPC endpoint's policy: only the gateway's role, only these calls and models."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "OnlyTheGatewayRole", "Effect": "Allow",
        "Principal": {"AWS": role_arn}, "Action": list(INVOKE_ACTIONS), "Resource": arns.all}]},
        indent=2)


def pod_identity_trust() -> str:
    """Trust of a role assumed through EKS Pod Identity."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"]}]}, indent=2)


def web_identity_trust(oidc_provider_arn: str, namespace: str, service_account: str) -> str:
    """Trust of a role assumed by one Kubernetes service account through an OIDC provider."""
    issuer = oidc_provider_arn.split(":oidc-provider/", 1)[-1]
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": oidc_provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
            f"{issuer}:aud": "sts.amazonaws.com"}}}]}, indent=2)


def latency_bound_ms(slo: SloSpec, mean_output_tokens: float | None) -> float | None:
    """The end-to-end latency a request may take under the SLO (the alarm's threshold).

    Bedrock's InvocationLatency is the whole call, so compare it with the SLO's `e2e_ms`, or
    else with TTFT + TPOT x (mean output tokens - 1) of the requests sent to the API."""
    if slo.e2e_ms is not None:
        return float(slo.e2e_ms)
    if slo.ttft_ms is not None and slo.tpot_ms is not None and mean_output_tokens:
        return float(slo.ttft_ms + slo.tpot_ms * max(0.0, mean_output_tokens - 1.0))
    return None
