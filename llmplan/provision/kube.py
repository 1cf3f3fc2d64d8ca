"""A Kubernetes API client from a kubeconfig, with errors a user can act on.

The kubernetes client does the kubeconfig work (contexts, certificates, tokens, exec
plugins such as `aws eks get-token`); llmplan uses its typed read calls and reads the
objects' fields by their documented names, converting them at this boundary.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from llmplan.errors import InputError, Problem
from llmplan.urls import secret_part, shown_url

T = TypeVar("T")


def api_client(kubeconfig: Path | None, context: str | None) -> Any:
    """An ApiClient for the kubeconfig (default: $KUBECONFIG or ~/.kube/config)."""
    import yaml
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    where = str(kubeconfig) if kubeconfig else default_kubeconfig()
    try:
        client = config.new_client_from_config(
            config_file=str(kubeconfig) if kubeconfig else None, context=context or None,
            persist_config=False)
    except yaml.YAMLError as exc:      # the client parses the file with PyYAML itself
        raise InputError([Problem(where, None, "--kubeconfig",
                                  f"not a kubeconfig (not valid YAML: "
                                  f"{getattr(exc, 'problem', None) or exc})")],
                         title="no cluster to talk to") from None
    except (ConfigException, OSError, AttributeError, TypeError) as exc:
        raise InputError([Problem(where, None, "--context" if context else "--kubeconfig",
                                  f"cannot use this kubeconfig: {exc}")],
                         title="no cluster to talk to") from None
    if secret_part(str(client.configuration.host)) == "query or fragment":
        # said without the URL: the client's errors would repeat it, a token and all
        raise InputError([Problem(where, None, "clusters.cluster.server",
                                  "the server URL carries a query or fragment (?... or #...), "
                                  "which the API paths would be appended to; expected "
                                  "https://host[:port][/path] and the credentials in the "
                                  "kubeconfig's user")], title="no cluster to talk to")
    return client


def default_kubeconfig() -> str:
    """The file(s) the client reads without --kubeconfig, as an error names them:
    $KUBECONFIG (a path list) when set, else ~/.kube/config, expanded."""
    listed = os.environ.get("KUBECONFIG")
    return f"$KUBECONFIG ({listed})" if listed else str(Path("~/.kube/config").expanduser())


def server_of(client: Any) -> str:
    """The API server a client talks to, as a message may name it (a user:password part
    hidden)."""
    return shown_url(str(client.configuration.host))


def call(action: str, request: Callable[[], T]) -> T:
    """Run one API request; unreachable clusters and refusals become InputErrors."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return request()
    except ApiException as exc:
        raise InputError([Problem("<cluster>", None, action,
                                  f"the API server answered {exc.status} {exc.reason}")],
                         title="the cluster refused a request") from None
    except HTTPError as exc:
        raise InputError([Problem("<cluster>", None, action,
                                  f"cannot reach the API server: {exc}")],
                         title="the cluster is unreachable") from None


def quantity(value: object) -> int:
    """A whole-number Kubernetes quantity ("8", 8) as an int; anything else is 0."""
    text = str(value or "0").strip()
    return int(text) if text.isdigit() else 0
