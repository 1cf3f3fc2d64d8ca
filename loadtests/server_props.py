"""What a server says about itself: server_props.json, and the limits a load test obeys.

The load test saves llama.cpp's `/props` answer as `server_props.json` in its output folder.
Calibration reads the slot count and context per slot from it; `llmplan loadtest` reads the
same before sending, to refuse or cap prompts that cannot fit a slot. For another server,
write the file by hand with the fields below (anything else is kept and ignored):

    {"total_slots": 64, "default_generation_settings": {"n_ctx": 4096},
     "model_path": "Llama-3.1-8B-Instruct", "build_info": "vllm 0.11.0"}
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmplan.errors import InputError, Problem

PROPS_FILE = "server_props.json"


class GenerationSettings(BaseModel):
    model_config = ConfigDict(extra="allow")

    n_ctx: int | None = Field(default=None, gt=0,
                              description="Context of one slot, in tokens (prompt + output).")


class ServerProps(BaseModel):
    """server_props.json: llama.cpp's /props as saved by the load test (other keys kept)."""

    model_config = ConfigDict(extra="allow")

    total_slots: int | None = Field(default=None, gt=0,
                                    description="Sequences the server runs at once.")
    default_generation_settings: GenerationSettings = Field(default_factory=GenerationSettings)
    model_path: str | None = Field(default=None, description="The model file served.")
    build_info: str | None = Field(default=None, description="Server build.")

    @property
    def n_ctx_per_slot(self) -> int | None:
        return self.default_generation_settings.n_ctx

    def settings(self) -> dict[str, str]:
        """What must match for two runs to describe the same server."""
        values = {"total_slots": self.total_slots, "n_ctx": self.n_ctx_per_slot,
                  "model_path": self.model_path, "build_info": self.build_info}
        return {k: str(v) for k, v in values.items() if v is not None}


def parse_props(data: object, source: str) -> ServerProps:
    try:
        return ServerProps.model_validate(data)
    except ValidationError as exc:
        raise InputError([Problem(source, None, ".".join(str(p) for p in err["loc"]),
                                  err["msg"]) for err in exc.errors()],
                         title="invalid server_props.json") from None


def read_props(folder: Path) -> ServerProps | None:
    """The server_props.json of a load-test folder (or of a records file's folder)."""
    path = (folder if folder.is_dir() else folder.parent) / PROPS_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError([Problem(str(path), None, "", f"not JSON: {exc}")]) from None
    return parse_props(data, str(path))


def fetch_props(base_url: str, timeout_s: float = 5.0, *,
                headers: dict[str, str] | None = None) -> tuple[ServerProps, bytes] | None:
    """llama.cpp's /props (and the raw answer), or None when the server has none."""
    request = urllib.request.Request(f"{base_url.rstrip('/')}/props", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            raw: bytes = resp.read()
        return parse_props(json.loads(raw), f"{base_url}/props"), raw
    except (OSError, ValueError, InputError):
        return None
