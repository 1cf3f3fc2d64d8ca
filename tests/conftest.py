"""Fixtures shared by every test folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from filelock import FileLock
from helpers import ROOT, ExampleResult

from llmplan.results import Result


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def example_result(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> ExampleResult:
    """Each bundled example evaluated once for the whole run, whichever xdist worker asks
    first (the others wait for it and read its result.json back): the decision tests, the
    stacks and the report all read the same deterministic evaluation, and the long ones (a
    day of bulk extraction, the retail fleet) took most of a minute each time."""
    from llmplan.pipeline import evaluate
    from llmplan.scenario import load_scenario

    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent           # the workers' base folders sit side by side
    mine: dict[tuple[str, bool], Result] = {}

    def get(name: str, planning: bool = False) -> Result:
        if (name, planning) not in mine:
            path = shared / f"example-{name}-{'planning' if planning else 'decision'}.json"
            with FileLock(f"{path}.lock"):
                if path.exists():
                    result = Result.model_validate_json(path.read_text(encoding="utf-8"))
                else:
                    result = evaluate(load_scenario(ROOT / "examples" / f"{name}.yaml"),
                                      planning=planning)
                    path.write_text(result.model_dump_json(), encoding="utf-8")
            mine[name, planning] = result
        return mine[name, planning]
    return get


# What times a real server or a load generator's pace: another test running beside it on the
# second core would be read as the server's latency or the generator's lag. scripts/test.sh
# runs these alone, after the rest has run on both cores. The other load tests (records on
# disk, refusals, signals, redaction, cache counts, sessions' order) assert nothing a busy
# machine can change and run in the parallel part, each worker with its own server.
SERIAL = (
    "tests/fidelity/test_heldout_llamacpp.py",
    "tests/fidelity/test_prefix_hits_llamacpp.py",
    # latency against the run before it, an SLO's goodput
    "tests/loadtests/test_cache_and_recipe.py::test_running_the_same_load_test_twice_measures_the_same",
    "tests/loadtests/test_cache_and_recipe.py::test_the_readme_recipe_gives_goodput",
    # the generator's own timing: sends on schedule, stops within a fraction of a second,
    # keeps its users busy, holds the stages it was given, finds where a server saturates
    "tests/loadtests/test_llamacpp.py::test_replays_the_scenario_and_measures_every_request",
    "tests/loadtests/test_faults.py::test_stop_means_stop",
    "tests/loadtests/test_faults.py::test_duration_is_a_hard_stop",
    "tests/loadtests/test_modes.py::test_closed_loop_keeps_the_users_busy_until_the_duration",
    "tests/loadtests/test_modes.py::test_stages_change_the_number_of_users",
    "tests/loadtests/test_modes.py::test_sweep_raises_the_rate_until_saturation",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(SERIAL):
            item.add_marker(pytest.mark.serial)
