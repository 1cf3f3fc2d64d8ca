"""CloudAccess: the AWS side of a stack (pulumi_aws).

- Bedrock plans: an IAM role for the gateway's service account (EKS Pod Identity on EKS,
  else web identity through `oidcProviderArn`) with a policy allowing only the invoke and
  converse calls on the plan's model ARNs (bedrock_access.py); an interface VPC endpoint
  for bedrock-runtime with private DNS whose policy admits only that role; CloudWatch alarms
  on throttles and on p95 invocation latency against the SLO.
- Other providers: the API key in Secrets Manager (the gateway reads it from its Kubernetes
  Secret; Secrets Manager is the system of record other consumers and rotation use).
- Every AWS stack: an AWS Budget at the plan's monthly cost, over the resources tagged with
  this stack (activate the `llmplan-stack` cost allocation tag in Billing).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from llmplan.provision.bedrock_access import (
    ModelArns,
    endpoint_policy,
    invoke_policy,
    latency_bound_ms,
    model_arns,
    pod_identity_trust,
    web_identity_trust,
)
from llmplan.provision.bedrock_routing import bedrock_route
from llmplan.provision.manifests import GATEWAY_NAME
from llmplan.provision.router_config import cloud_output_tokens
from llmplan.provision.stack_config import StackConfig

STACK_TAG = "llmplan-stack"
ALARM_PERIOD_S = 300


class CloudAccess(pulumi.ComponentResource):
    """Bedrock role, endpoint and alarms; the provider key's secret; the budget."""

    def __init__(self, name: str, settings: StackConfig, *, provider: aws.Provider,
                 eks_cluster_name: str | None, vpc_id: pulumi.Input[str] | None,
                 subnet_ids: pulumi.Input[list[str]] | None,
                 cloud_api_key: pulumi.Output[str] | None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmplan:infra:CloudAccess", name, None, opts)
        self._opts = pulumi.ResourceOptions(parent=self, provider=provider)
        self._provider = provider
        #: outside EKS's Pod Identity: the role the gateway assumes with its own token
        self.web_identity_role: pulumi.Output[str] | None = None
        self.role_arn: pulumi.Output[str] | None = None
        stack = pulumi.get_stack()
        if settings.uses_bedrock:
            self._bedrock(name, settings, eks_cluster_name, vpc_id, subnet_ids)
        elif cloud_api_key is not None:
            secret = aws.secretsmanager.Secret(
                f"{name}-cloud-api-key", name=f"llmplan/{stack}/cloud-api-key",
                description="API key of the plan's model provider (llmplan stack)",
                recovery_window_in_days=7, opts=self._opts)
            aws.secretsmanager.SecretVersion(f"{name}-cloud-api-key-value", secret_id=secret.id,
                                             secret_string=cloud_api_key, opts=self._opts)
        self._budget(name, settings, stack)
        self.register_outputs({"role_arn": self.role_arn})

    def _bedrock(self, name: str, settings: StackConfig, eks_cluster_name: str | None,
                 vpc_id: pulumi.Input[str] | None,
                 subnet_ids: pulumi.Input[list[str]] | None) -> None:
        region = settings.aws_region
        # the id the gateway calls from this Region (refused if it would leave the plan's
        # region or data residency), as router_config.py sends it
        route = bedrock_route(settings.plan, region)
        account = aws.get_caller_identity(opts=pulumi.InvokeOptions(provider=self._provider))
        arns = model_arns(route, account.account_id)
        if eks_cluster_name:
            trust = pod_identity_trust()
        elif settings.oidc_provider_arn:
            trust = web_identity_trust(settings.oidc_provider_arn, settings.namespace,
                                       GATEWAY_NAME)
        else:
            raise ValueError("a Bedrock plan needs the gateway's identity: run on EKS "
                             "(clusterMode eks, or eksClusterName) or set oidcProviderArn")
        role = aws.iam.Role(f"{name}-bedrock-role", assume_role_policy=trust,
                            description="The llmplan gateway: invoke the planned model only",
                            opts=self._opts)
        policy = aws.iam.Policy(f"{name}-bedrock-invoke", policy=invoke_policy(arns),
                                opts=self._opts)
        aws.iam.RolePolicyAttachment(f"{name}-bedrock-attach", role=role.name,
                                     policy_arn=policy.arn, opts=self._opts)
        self.role_arn = role.arn
        if eks_cluster_name:
            aws.eks.PodIdentityAssociation(
                f"{name}-bedrock-identity", cluster_name=eks_cluster_name,
                namespace=settings.namespace, service_account=GATEWAY_NAME, role_arn=role.arn,
                opts=self._opts)
        else:
            self.web_identity_role = role.arn
        if vpc_id is not None and subnet_ids is not None:
            self._endpoint(name, region, vpc_id, subnet_ids, role_arn=role.arn, arns=arns)
        self._alarms(name, settings, route.model_id)

    def _endpoint(self, name: str, region: str, vpc_id: pulumi.Input[str],
                  subnet_ids: pulumi.Input[list[str]], *, role_arn: pulumi.Output[str],
                  arns: ModelArns) -> None:
        vpc = aws.ec2.get_vpc_output(id=vpc_id, opts=pulumi.InvokeOptions(
            provider=self._provider))
        group = aws.ec2.SecurityGroup(
            f"{name}-bedrock-endpoint", vpc_id=vpc_id,
            description="HTTPS from inside the VPC to the bedrock-runtime endpoint",
            ingress=[{"protocol": "tcp", "from_port": 443, "to_port": 443,
                      "cidr_blocks": [vpc.cidr_block]}], opts=self._opts)
        aws.ec2.VpcEndpoint(
            f"{name}-bedrock-runtime", vpc_id=vpc_id,
            service_name=f"com.amazonaws.{region}.bedrock-runtime",
            vpc_endpoint_type="Interface", private_dns_enabled=True, subnet_ids=subnet_ids,
            security_group_ids=[group.id],
            policy=role_arn.apply(lambda arn: endpoint_policy(arn, arns)), opts=self._opts)

    def _alarms(self, name: str, settings: StackConfig, model_id: str) -> None:
        actions = [settings.alarm_topic_arn] if settings.alarm_topic_arn else []
        common: dict[str, Any] = {
            "namespace": "AWS/Bedrock", "dimensions": {"ModelId": model_id},
            "period": ALARM_PERIOD_S, "evaluation_periods": 3, "datapoints_to_alarm": 2,
            "treat_missing_data": "notBreaching", "alarm_actions": actions,
            "ok_actions": actions}
        aws.cloudwatch.MetricAlarm(
            f"{name}-bedrock-throttles", metric_name="InvocationThrottles", statistic="Sum",
            comparison_operator="GreaterThanOrEqualToThreshold", threshold=1,
            alarm_description=f"Bedrock throttled {model_id} (ThrottlingException, HTTP 429) "
                              "in 2 of 3 five-minute windows: the plan's rate limits are "
                              "too tight for the traffic", **common, opts=self._opts)
        bound = latency_bound_ms(settings.plan.slo, cloud_output_tokens(settings.plan))
        if bound is not None:
            aws.cloudwatch.MetricAlarm(
                f"{name}-bedrock-latency", metric_name="InvocationLatency",
                extended_statistic="p95", comparison_operator="GreaterThanThreshold",
                threshold=round(bound, 1),
                alarm_description=f"p95 Bedrock invocation latency of {model_id} above the "
                                  f"SLO's {bound:.0f} ms per request", **common,
                opts=self._opts)

    def _budget(self, name: str, settings: StackConfig, stack: str) -> None:
        notifications = [
            {"comparison_operator": "GREATER_THAN", "notification_type": kind,
             "threshold": threshold, "threshold_type": "PERCENTAGE",
             "subscriber_email_addresses": list(settings.budget_emails)}
            for kind, threshold in (("ACTUAL", 80.0), ("FORECASTED", 100.0))
        ] if settings.budget_emails else []
        aws.budgets.Budget(
            f"{name}-budget", name=f"llmplan-{stack}", budget_type="COST",
            limit_amount=str(settings.monthly_budget_usd), limit_unit="USD",
            time_unit="MONTHLY",
            cost_filters=[{"name": "TagKeyValue", "values": [f"user:{STACK_TAG}${stack}"]}],
            notifications=notifications, opts=self._opts)
