"""The gateway's guard: restricted tasks stay on owned hardware whatever the client sends.

LiteLLM loads this file from beside its config.yaml (`litellm_settings.callbacks:
[llmplan_guard.guard]`); it imports nothing from llmplan, because it runs inside the LiteLLM
image. The restricted model groups come from the environment (`LLMPLAN_RESTRICTED_GROUPS`,
comma-separated), set by the gateway's Deployment from the plan.

Router fall-backs never name a restricted group (router_config.py), but a client can ask for
its own: `fallbacks`, `api_base`, a per-request `user_config` router and the like. On a
restricted group the guard refuses such a request outright (HTTP 400), and when the local
fleet fails it turns LiteLLM's error into one that says why nothing else was tried.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import HTTPException
from litellm.integrations.custom_logger import CustomLogger

RESTRICTED_ENV = "LLMPLAN_RESTRICTED_GROUPS"
#: Request fields that would let a client route a request somewhere else than its group.
ROUTING_FIELDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks",
                  "api_base", "base_url", "api_key", "user_config", "model_list",
                  "mock_testing_fallbacks", "deployment_id")


def restricted_groups() -> frozenset[str]:
    raw = os.environ.get(RESTRICTED_ENV, "")
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


class RestrictedStaysLocal(CustomLogger):
    """Refuse client-side routing on restricted groups; explain their failures."""

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict[str, Any],
                                  call_type: Any) -> dict[str, Any]:
        group = data.get("model")
        if group in restricted_groups():
            asked = sorted(f for f in ROUTING_FIELDS if data.get(f) not in (None, "", [], {}))
            if asked:
                raise HTTPException(status_code=400, detail={"error": (
                    f"'{group}' is a restricted task: it is served only by the owned GPU "
                    f"fleet, so the request may not carry {', '.join(asked)}")})
        return data

    async def async_post_call_failure_hook(self, request_data: dict[str, Any],
                                           original_exception: Exception,
                                           user_api_key_dict: Any,
                                           traceback_str: str | None = None,
                                           ) -> HTTPException | None:
        group = request_data.get("model")
        if group not in restricted_groups() or isinstance(original_exception, HTTPException):
            return None
        status = getattr(original_exception, "status_code", None)
        if not isinstance(status, int) or (status < 500 and status not in (408, 429)):
            return None     # refused before any backend was tried (LiteLLM's own checks)
        reason = str(original_exception).splitlines()[0][:300] if str(original_exception) \
            else type(original_exception).__name__
        return HTTPException(status_code=503, detail={"error": (
            f"'{group}' is a restricted task: only the owned GPU fleet may serve it, and it "
            f"failed ({type(original_exception).__name__}: {reason}). The request was not "
            f"sent to any cloud API.")})


guard = RestrictedStaysLocal()
