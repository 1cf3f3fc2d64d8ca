"""Fixtures shared by every test folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ROOT


@pytest.fixture
def root() -> Path:
    return ROOT


# What times a real server or runs a load generator: another test running beside it on the
# second core would be read as the server's latency. scripts/test.sh runs these alone, after
# the rest has run on both cores.
SERIAL_PATHS = (
    "tests/loadtests/",
    "tests/fidelity/test_heldout_llamacpp.py",
    "tests/fidelity/test_prefix_hits_llamacpp.py",
    "tests/infra/test_router_live.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.relative_to(ROOT).as_posix()
        if where.startswith(SERIAL_PATHS):
            item.add_marker(pytest.mark.serial)
