"""What the gateway may do on AWS Bedrock, as IAM documents and alarm thresholds (no Pulumi).

Actions: `bedrock:InvokeModel` and `bedrock:InvokeModelWithResponseStream` only. Bedrock's
Converse and ConverseStream calls are authorised by these two (AWS Bedrock user guide,
"Prerequisites for running model inference"), so this is every invoke and converse call and
nothing else: no listing, no model management, no guardrail or agent actions.

Resources: the plan's model only. A model id with a geography prefix (`us.`, `eu.`, `apac.`)
is a cross-region inference profile: the caller needs the profile in its own region and the
foundation model in every region the profile routes to (AWS Bedrock user guide, "Supported
Regions and models for inference profiles"), each named here rather than with a `*`.
"""

from __future__ import annotations

import json

from llmplan.scenario.models import SloSpec

INVOKE_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")

#: Source regions of the geographic cross-region inference profiles (AWS Bedrock user guide,
#: "Supported Regions and models for inference profiles"; the Meta Llama 3.1 US profile routes
#: to us-east-1, us-east-2 and us-west-2). Check the page for a model before relying on this.
PROFILE_REGIONS: dict[str, tuple[str, ...]] = {
    "us": ("us-east-1", "us-east-2", "us-west-2"),
    "eu": ("eu-central-1", "eu-west-1", "eu-west-3"),
    "apac": ("ap-northeast-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2"),
}


def model_arns(model_id: str, region: str, account_id: str) -> list[str]:
    """Every ARN an invocation of `model_id` from `region` is authorised against."""
    geo, _, base = model_id.partition(".")
    if geo in PROFILE_REGIONS and base:
        regions = sorted({region, *PROFILE_REGIONS[geo]})
        return ([f"arn:aws:bedrock:{region}:{account_id}:inference-profile/{model_id}"]
                + [f"arn:aws:bedrock:{r}::foundation-model/{base}" for r in regions])
    return [f"arn:aws:bedrock:{region}::foundation-model/{model_id}"]


def invoke_policy(arns: list[str]) -> str:
    """The role's identity policy: invoke (and so converse) the plan's model, nothing else."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "InvokeThePlannedModel", "Effect": "Allow",
        "Action": list(INVOKE_ACTIONS), "Resource": arns}]}, indent=2)


def endpoint_policy(role_arn: str, arns: list[str]) -> str:
    """The VPC endpoint's policy: only the gateway's role, only these calls and models."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "OnlyTheGatewayRole", "Effect": "Allow",
        "Principal": {"AWS": role_arn}, "Action": list(INVOKE_ACTIONS), "Resource": arns}]},
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
