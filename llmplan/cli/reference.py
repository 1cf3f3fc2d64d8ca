"""`llmplan schema` and `llmplan catalog`: what the planner reads and knows."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from llmplan.cli.options import option_problem
from llmplan.cli.terminal import fail, out
from llmplan.errors import InputError


def schema(
    result: Annotated[bool, typer.Option("--result", help="Schema of result.json.")] = False,
    records: Annotated[bool, typer.Option(
        "--records", help="Schema of a load test's requests.jsonl lines.")] = False,
) -> None:
    """Print the JSON Schema of the scenario file (or of result.json, or of load-test records)."""
    from pydantic import BaseModel

    from llmplan.loadtests.records import RequestRecord
    from llmplan.results import Result
    from llmplan.scenario import Scenario

    if result and records:
        fail(InputError([option_problem("--result/--records", "give at most one")]))
    model: type[BaseModel] = Result if result else RequestRecord if records else Scenario
    sys.stdout.write(json.dumps(model.model_json_schema(by_alias=True), indent=1) + "\n")


def catalog(
    sources: Annotated[bool, typer.Option(
        "--sources", help="Print every entry's source for each number instead.")] = False,
) -> None:
    """List the GPUs, models and cloud models the planner knows, with sources.

    Every number has a source; prices older than 180 days are starred."""
    import datetime

    from llmplan.catalog import builtin_catalog
    from llmplan.render import catalog_tables

    for table in catalog_tables(builtin_catalog(), sources=sources, today=datetime.date.today()):
        out.print(table, width=min(out.width, 100))
