"""Provision the planned stack: a cluster, GPU serving, cloud API access and the gateway."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from llmplan.provision.cloud_access import STACK_TAG, CloudAccess
from llmplan.provision.cluster import ClusterAccess
from llmplan.provision.gateway import LlmGateway
from llmplan.provision.k8s_resources import create
from llmplan.provision.manifests import namespace_manifest
from llmplan.provision.pulumi_config import read_stack_config, read_stack_secrets
from llmplan.provision.serving import GpuServing

settings = read_stack_config()
secrets = read_stack_secrets(settings)
stack = pulumi.get_stack()

aws_provider = None
if settings.uses_aws:
    if not settings.aws_region:
        raise ValueError("this stack uses AWS (EKS or Bedrock): set awsRegion")
    aws_provider = aws.Provider("aws", region=settings.aws_region,
                                default_tags={"tags": {STACK_TAG: stack}})

cluster = ClusterAccess("cluster", settings, aws_provider=aws_provider)
settings = settings.model_copy(update={"storage_class": cluster.storage_class})
on_cluster = pulumi.ResourceOptions(provider=cluster.provider)
namespace = create("namespace", namespace_manifest(settings), on_cluster)
in_namespace = pulumi.ResourceOptions(provider=cluster.provider, depends_on=[namespace])

cloud = None
if aws_provider is not None:
    cloud = CloudAccess("cloud", settings, provider=aws_provider,
                        eks_cluster_name=cluster.eks_cluster_name, vpc_id=cluster.vpc_id,
                        subnet_ids=cluster.subnet_ids, cloud_api_key=secrets.cloud_api_key)

if settings.plan.local is not None:
    serving = GpuServing("serving", settings, hub_token=secrets.hub_token, opts=in_namespace)
    pulumi.export("serving_endpoint", serving.endpoint)

gateway = LlmGateway("gateway", settings, master_key=secrets.master_key,
                     cloud_api_key=secrets.cloud_api_key,
                     web_identity_role=cloud.web_identity_role if cloud is not None else None,
                     opts=in_namespace)
pulumi.export("gateway_endpoint", gateway.endpoint)
pulumi.export("deployment", settings.plan.deployment)
pulumi.export("monthly_budget_usd", settings.monthly_budget_usd)
