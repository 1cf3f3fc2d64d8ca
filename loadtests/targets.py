"""The targets file: every endpoint a load test may hit, and how to authenticate.

Keys are never written here, only the NAME of the environment variable that holds one; the
load test refuses any target not in this file, and any non-loopback address unless the entry
says `allow_remote: true`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import urllib.parse
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmplan.catalog import Catalog
from llmplan.catalog.catalog import LEAST_EFFORT_REASONING_TOKENS
from llmplan.errors import InputError, Problem
from llmplan.urls import secret_part
from llmplan.yamlio.load import load_model

TargetKind = Literal["openai", "llamacpp", "vllm", "ollama", "bedrock"]
#: OpenAI's chat API's reasoning_effort values, lowest first (its API reference,
#: ReasoningEffort: "none" | "minimal" | "low" | "medium" | "high" | "xhigh"; which of them
#: a model takes differs: GPT-5 no "none", GPT-5.1 no "minimal")
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
#: the efforts a plain task's requests may send: the lowest ones, whose hidden tokens the
#: simulation counts (catalog LEAST_EFFORT_REASONING_TOKENS)
PlainEffort = Literal["none", "minimal", "low"]


class Target(BaseModel):
    """One endpoint under test."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TargetKind = Field(description="openai-compatible servers, or AWS Bedrock.")
    base_url: str = Field(description="e.g. http://127.0.0.1:8080 (Bedrock: endpoint URL).")
    model: str = Field(description="Model id sent with each request.")
    api: Literal["chat", "completions"] = "chat"
    api_key_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the API key (never the key).")
    region: str = Field(default="us-east-1", description="Bedrock region.")
    fixed_output_length: bool = Field(
        default=True, description="Ask the server to ignore EOS so outputs have the "
                                  "planned length (ignore_eos / min_tokens).")
    allow_remote: bool = Field(default=False,
                               description="Permit a non-loopback address.")
    request_timeout_s: float = Field(default=120.0, gt=0)
    reasoning_effort: ReasoningEffort | None = Field(
        default=None,
        description="Sent as `reasoning_effort` with each request the plan gives hidden "
                    "reasoning (a task's reasoning_tokens), so the API thinks as planned "
                    "rather than at its model's default (GPT-5: medium; GPT-5.1: none). "
                    "OpenAI-compatible chat APIs only (kind openai, api chat: OpenAI's, "
                    "Azure OpenAI's, a LiteLLM gateway). None: none sent.")
    plain_reasoning_effort: PlainEffort | None = Field(
        default=None,
        description="Sent as `reasoning_effort` with each request of a task that gives no "
                    "reasoning_tokens, its answer's cap raised by the hidden tokens the "
                    "simulation gives that effort (catalog LEAST_EFFORT_REASONING_TOKENS): a "
                    "model that cannot answer without reasoning (GPT-5: minimal at least) "
                    "then thinks as the simulation and the stack's gateway have it, not at "
                    "its default, inside a cap sized for the answer alone. `llmplan "
                    "loadtest` sets it from the catalog's least_reasoning_effort of the model "
                    "the target names on OpenAI's or Azure OpenAI's chat API. None: none sent.")

    bedrock_thinking: bool = Field(
        default=False,
        description="Bedrock's Claude models: each request of a task with reasoning_tokens "
                    "asks for extended thinking (additionalModelRequestFields.thinking), "
                    "its budget the planned reasoning, at least Anthropic's minimum of "
                    "1,024 tokens, and no temperature. Off: Claude answers without thinking.")

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, value: str | None) -> str | None:
        # the message never repeats the value: a key pasted here must not reach a log
        if value is not None and looks_like_a_key(value):
            raise ValueError("this looks like an API key itself; expected the NAME of the "
                             "environment variable holding it (e.g. OPENAI_API_KEY), and "
                             "the key in that variable")
        if value is not None and not ENV_NAME.fullmatch(value):
            raise ValueError("expected an environment variable's name: letters, digits and "
                             "'_', not starting with a digit")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parsed = urlparse(value)
        hidden = secret_part(value)
        if hidden == "user:password@":
            # said without the URL: its user:password part is a secret (scheme or none)
            raise ValueError("the URL carries credentials (user:password@); expected them "
                             "out of the URL, the key in the environment variable "
                             "api_key_env names")
        if hidden is not None:
            # said without the URL: a query may hold a key (?api_key=...)
            raise ValueError("the URL carries a query or fragment (?... or #...); expected "
                             "the API's base URL alone, a key in the environment variable "
                             "api_key_env names")
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ValueError(f"must be http(s)://host[:port], got {value!r}")
        try:
            port = parsed.port
        except ValueError:
            port = -1
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"the port must be 1-65535, got {value!r}")
        return value

    @model_validator(mode="after")
    def _effort_where_it_is_read(self) -> Target:
        # refused rather than dropped: a load test that sends no effort measures the
        # model's default thinking, not the one planned
        for name in ("reasoning_effort", "plain_reasoning_effort"):
            if getattr(self, name) is not None and (self.kind != "openai" or self.api != "chat"):
                raise ValueError(
                    f"{name} is sent to OpenAI-compatible chat APIs only (kind: openai, "
                    f"api: chat), not kind {self.kind}, api {self.api}; expected no "
                    f"{name} on this target"
                    + (" (a Claude on Bedrock thinks with bedrock_thinking: true)"
                       if self.kind == "bedrock" else ""))
        if self.bedrock_thinking and self.kind != "bedrock":
            raise ValueError(f"bedrock_thinking is sent to Bedrock's Claude models only (kind: "
                             f"bedrock), not kind {self.kind}; expected reasoning_effort on "
                             f"an OpenAI-compatible chat API")
        return self

    @property
    def plain_hidden_tokens(self) -> int:
        """The hidden reasoning tokens a plain task's answer gets at plain_reasoning_effort,
        as the simulation has them (0: none sent)."""
        effort = self.plain_reasoning_effort
        return 0 if effort is None else LEAST_EFFORT_REASONING_TOKENS[effort]

    def effort_for(self, item_reasoning_tokens: int) -> str | None:
        """The reasoning_effort a request sends: the target's reasoning_effort where the
        plan gives it hidden reasoning, plain_reasoning_effort where it gives none."""
        return self.reasoning_effort if item_reasoning_tokens > 0 \
            else self.plain_reasoning_effort

    @property
    def is_loopback(self) -> bool:
        host = urlparse(self.base_url).hostname or ""
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def output_cap_field(self) -> str:
        """The request field that caps the answer's tokens. OpenAI's own chat API takes
        `max_completion_tokens`: its reference says `max_tokens` "is now deprecated in favor
        of max_completion_tokens, and is not compatible with o-series models" (they and the
        GPT-5 family answer HTTP 400 "Unsupported parameter: 'max_tokens'"), and its legacy
        completions endpoint has `max_tokens` alone. The engines served on one's own machines
        (llama.cpp, vLLM before its rename, Ollama) read `max_tokens`."""
        return "max_completion_tokens" if self.openai_chat else "max_tokens"

    @property
    def openai_chat(self) -> bool:
        """Whether this is OpenAI's own chat API, whose reasoning models (o-series, GPT-5)
        refuse what other servers take: `max_tokens` (`output_cap_field`) and any
        `temperature` but the default, 1 (HTTP 400 "Unsupported value: 'temperature' does
        not support 0 with this model. Only the default (1) value is supported", as
        reported against o1-mini, o4-mini, gpt-5-mini and gpt-5.4 in public issue threads,
        e.g. agno-agi/agno#9951, cline/cline#341). Azure OpenAI serves the same models with
        the same rules: its reasoning guide says they "will only work with the
        `max_completion_tokens` parameter" and lists `temperature` among the parameters they
        do not support (learn.microsoft.com/azure/ai-foundry/openai/how-to/reasoning)."""
        host = (urlparse(self.base_url).hostname or "").lower()
        openai = host in OPENAI_API_HOSTS or host.endswith(AZURE_OPENAI_HOST_SUFFIXES)
        return openai and self.api == "chat"

    def api_key(self) -> str | None:
        """The key from the environment (read at request time, never stored or logged)."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header its requests carry (none without a key), for the
        server's own endpoints too (/props, /metrics: llama.cpp guards them with the key)."""
        key = self.api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def redact(self, text: str | None) -> str | None:
        """`text` (an error a server sent back) with the key replaced by its variable's
        name: servers that echo the Authorization header in an error would otherwise put
        the key in requests.jsonl and every Locust output."""
        key = self.api_key()
        if text is None or not key:
            return text
        # as sent, and as a server may echo it: case changed, URL- or JSON-escaped
        spellings = {key, urllib.parse.quote(key, safe=""), urllib.parse.quote_plus(key),
                     json.dumps(key)[1:-1]}
        for spelling in sorted(spellings, key=len, reverse=True):
            text = re.sub(re.escape(spelling), f"<{self.api_key_env}>", text,
                          flags=re.IGNORECASE)
        # a text cut short (a body read up to a size) may end inside the key: drop that start
        tail = text.lower()
        for spelling in spellings:
            for size in range(min(len(spelling) - 1, len(text)), MIN_KEY_PART - 1, -1):
                if tail.endswith(spelling[:size].lower()):
                    return text[:-size] + f"<{self.api_key_env}>"
        return text


#: the hosts of OpenAI's own API (see `Target.output_cap_field`)
OPENAI_API_HOSTS = frozenset({"api.openai.com"})
#: the host names Azure OpenAI resources answer at (RESOURCE.openai.azure.com, and the
#: Foundry resources' RESOURCE.cognitiveservices.azure.com and RESOURCE.services.ai.azure.com),
#: whose v1 chat API (base URL https://RESOURCE.openai.azure.com/openai/v1) takes OpenAI's
#: request body
AZURE_OPENAI_HOST_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com",
                              ".services.ai.azure.com")
#: an environment variable's name
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: The shortest start of a key that `Target.redact` takes out of a text's end (a false
#: match costs only the text's last characters).
MIN_KEY_PART = 4
#: how the common API keys and tokens start (OpenAI, Anthropic, GitHub, Hugging Face, AWS,
#: Google)
KEY_PREFIXES = ("sk-", "sk_", "ghp_", "gho_", "github_pat_", "hf_", "AKIA", "ASIA", "AIza",
                "xai-", "gsk_")


def looks_like_a_key(value: str) -> bool:
    """A known key prefix, or a long run of mixed letters and digits no one names a
    variable with (OPENAI_API_KEY is upper case and words)."""
    if value.startswith(KEY_PREFIXES) or "-" in value:
        return True
    return len(value) >= 24 and any(c.isdigit() for c in value) \
        and any(c.islower() for c in value) and any(c.isupper() for c in value)


class TargetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: dict[str, Target] = Field(min_length=1)


def with_catalog_reasoning(target: Target, catalog: Catalog) -> Target:
    """`target` with the plain_reasoning_effort the catalog gives the model it names on
    OpenAI's or Azure OpenAI's chat API (its id or its provider's model id), the one the
    simulation and the stack's gateway give a task that asks for no reasoning; unchanged
    where the targets file sets one, or the model is not in the catalog or takes none."""
    if not target.openai_chat or target.plain_reasoning_effort is not None:
        return target
    spec = next((spec for name, spec in sorted(catalog.cloud_models.items())
                 if spec.provider in {"openai", "azure_openai"}
                 and target.model in {name, spec.model_id}), None)
    if spec is None or spec.least_reasoning_effort is None:
        return target
    return target.model_copy(update={"plain_reasoning_effort": spec.least_reasoning_effort})


def load_target(path: str | Path, name: str) -> Target:
    """The named target from a targets file, or an InputError saying why not."""
    targets = load_model(path, TargetsFile).targets
    if name not in targets:
        raise InputError([Problem(str(path), None, "targets",
                                  f"no target named {name!r}; expected one of: "
                                  f"{', '.join(sorted(targets))} (load tests only hit "
                                  f"targets listed in this file)")])
    target = targets[name]
    if not target.is_loopback and not target.allow_remote:
        raise InputError([Problem(str(path), None, f"targets.{name}.base_url",
                                  f"{target.base_url} is not on this machine; set "
                                  f"allow_remote: true on the target to load-test it")])
    if target.api_key_env:
        key = target.api_key()
        # an empty one would send no Authorization header at all: every request refused
        # (401) after the run began; said by the variable's name, never its value
        state = "is not set" if key is None else "is set but empty" if not key.strip() \
            else None
        if state is not None:
            raise InputError([Problem(str(path), None, f"targets.{name}.api_key_env",
                                      f"environment variable {target.api_key_env} {state}; "
                                      "expected the key exported in the shell that runs "
                                      "llmplan")])
    return target
