"""Writing a file whole or not at all."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` whole or not at all: written beside it (same folder,
    same permissions), then renamed over it. A write the disk refuses (full, quota) or a
    Ctrl-C leaves the earlier file as it was, and no half file behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        if path.exists():
            shutil.copymode(path, tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
