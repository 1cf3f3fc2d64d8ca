"""Pulumi program that provisions what `llmplan` recommended.

`__main__.py` only composes components; `config.py` reads the stack configuration (written by
`llmplan stack`); `manifests.py` renders plain Kubernetes manifests (validated against the
official schemas in tests); `serving.py` (vLLM on GPUs) and `gateway.py` (a LiteLLM router in
front of local and cloud models) are ComponentResources.
"""
