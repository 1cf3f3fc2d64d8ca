"""The scenario a command reads, or one clear line on why it cannot: its problems, a
result.json passed in its place, no local deployment to vary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from llmplan.cli.terminal import console, fail
from llmplan.errors import InputError, Problem

if TYPE_CHECKING:
    from llmplan.scenario import LoadedScenario, LocalDeployment


def load_or_fail(scenario: Path) -> LoadedScenario:
    from llmplan.scenario import load_scenario

    try:
        return load_scenario(scenario)
    except InputError as error:
        _not_a_result(scenario)
        fail(error)


#: top-level keys of `simulate`'s result.json that no scenario has
RESULT_KEYS = frozenset({"recommendation", "decision_table", "break_even"})


def _not_a_result(path: Path) -> None:
    """A result.json passed where a scenario belongs: say so in one line (exit 2)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return
    if not isinstance(data, dict) or not RESULT_KEYS.issubset(data):
        return
    scenario = data.get("scenario")
    name = scenario.get("name") if isinstance(scenario, dict) else None
    source = f" (scenario '{name}')" if isinstance(name, str) and name else ""
    console.print(f"[bold red]error:[/] {escape(str(path))}: this is a simulation result "
                  f"(result.json), not a scenario; pass the scenario file it came "
                  f"from{escape(source)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def load_with_local(scenario: Path, wanted: str | None,
                     option: str) -> tuple[LoadedScenario, str, LocalDeployment]:
    """The scenario, and the local deployment `wanted` (default: the first) or a clear error."""
    from llmplan.scenario import LocalDeployment

    loaded = load_or_fail(scenario)
    local = [n for n, d in loaded.scenario.deployments.items() if isinstance(d, LocalDeployment)]
    name = wanted or (local[0] if local else None)
    if wanted is not None and wanted in loaded.unbuildable:
        fail(InputError([Problem(str(scenario), None, "deployments",
                                  f"{option} {wanted} cannot be built as written: "
                                  f"{loaded.unbuildable[wanted]}")]))
    if not local:
        kinds = [f"{n} (kind: {d.kind})" for n, d in loaded.scenario.deployments.items()]
        kinds += [f"{n} (cannot be built: {why})" for n, why in loaded.unbuildable.items()]
        fail(InputError([Problem(str(scenario), None, "deployments",
                                  f"no local deployment to vary: this scenario has "
                                  f"{', '.join(kinds)}; expected one with gpu: and model: "
                                  f"(kind: local, the default)")]))
    if name not in local:
        fail(InputError([Problem(str(scenario), None, "deployments",
                                  f"{option} must name a local deployment; expected one of: "
                                  f"{', '.join(local)}")]))
    dep = loaded.scenario.deployments[str(name)]
    assert isinstance(dep, LocalDeployment)
    return loaded, str(name), dep
