"""Provisioning: the recommended deployment as Kubernetes manifests and Pulumi components.

`stack.py` turns a simulated deployment into stack configuration (what `llmplan stack`
writes); `config.py` reads it back; `manifests.py` renders plain Kubernetes manifests
(validated against the official schemas in tests); `serving.py` (vLLM on GPUs) and
`gateway.py` (a LiteLLM router in front of local and cloud models) are ComponentResources.
The Pulumi program in the repository's `infra/` folder only composes them.
"""
