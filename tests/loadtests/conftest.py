"""Load-test fixtures: a real llama.cpp server and a scenario file."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from lt_helpers import SCENARIO

from llmplan.loadtests.llamacpp_server import LlamaCppServer


@pytest.fixture(scope="session")
def llamacpp() -> Iterator[LlamaCppServer]:
    with LlamaCppServer(parallel=4, ctx_per_slot=512) as server:
        yield server


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(SCENARIO))
    return path
