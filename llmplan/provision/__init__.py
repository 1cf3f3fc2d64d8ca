"""Provisioning: the planned deployment as a Pulumi stack, and checks of what was deployed.

- `stack_config.py` types every key of Pulumi.<stack>.yaml (and the typed `config:` block of
  Pulumi.yaml); `stack.py` writes it from a decided scenario (`llmplan stack`) and reads it
  back into the simulated deployment;
- `router_config.py` is the one generator of the gateway's LiteLLM config from the
  scenario's routing rules; `litellm_guard.py` is the guard LiteLLM loads beside it;
  `balancer.py` is the nginx sidecar that routes the gateway's local requests to the fleet's
  pods as the simulated router does;
- `manifests.py`, `serving_manifests.py`, `gateway_manifests.py` render the Kubernetes
  objects (plain dicts, schema-validated in tests); `images.py` pins their images,
  `gpu_nodes.py` maps catalog GPUs to node resources, labels and EC2 types, and
  `vllm_build.py` picks the checkpoint and drafter vLLM serves as simulated (or refuses);
- Pulumi components: `cluster.py` (existing kubeconfig cluster or new EKS), `serving.py`
  (the vLLM fleet), `gateway.py` (the router), `cloud_access.py` (Bedrock IAM, endpoint,
  alarms; provider keys in Secrets Manager; the budget, with `bedrock_access.py` for the
  documents); `pulumi_config.py` reads a stack's config inside `pulumi up`; the program in
  the repository's `infra/` folder only composes them;
- `policies.py`: the policy pack's rules (`infra/policy/`);
- `inventory.py` (`llmplan import-cluster`) and `verify.py` (`llmplan verify`) read a live
  cluster through `kube.py`.
"""
