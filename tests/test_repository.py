"""The repository holds sources, not what the tool writes when it runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: the folders the README's commands write by default (`simulate --out out`, `loadtest`'s
#: `--out`, `validate`'s `--out`)
RUN_OUTPUT = ("out/", "loadtest-out/", "validation/")


def test_no_run_output_is_tracked() -> None:
    """A run's folder in git is a stale answer on every clone: a load test of a server that
    was not running (48 connect errors) once sat in loadtest-out/, the folder `calibrate`
    and `validate` read in the README's recipe, and each new run there left the tree
    modified."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", *RUN_OUTPUT], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.split()
    assert tracked == []
    # exits 1 when it ignores none of them: the assertion says which
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *RUN_OUTPUT], cwd=ROOT,
                             check=False, capture_output=True, text=True).stdout.split()
    assert sorted(ignored) == sorted(RUN_OUTPUT)
