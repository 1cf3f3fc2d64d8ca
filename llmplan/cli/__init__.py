"""`llmplan`: the command line. Each command parses, calls one entry point and renders.

One module a command family: `simulate`, `loadtest`, `calibration` (calibrate, validate),
`cluster` (stack, import-cluster, verify), `sweep`, `imports` (import-trace, -usage,
-records) and `reference` (schema, catalog), on `loading` (the scenario or one line on
why not), `options` (--out and the stack name checked before any long run) and `terminal`
(the consoles and `fail`). Registered here, in the order `--help` lists them.
"""

from __future__ import annotations

import inspect

import typer

from llmplan.cli import calibration, cluster, imports, loadtest, reference, simulate, sweep

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Local GPUs, cloud APIs, or both? Simulate, load-test, decide.")
app.command()(simulate.simulate)
app.command()(loadtest.loadtest)
app.command()(calibration.calibrate)
app.command()(calibration.validate)
app.command()(cluster.stack)
app.command()(sweep.sweep)
app.command("import-trace")(imports.import_trace)
app.command("import-usage")(imports.import_usage)
app.command("import-records")(imports.import_records)
app.command("import-cluster")(cluster.import_cluster)
app.command()(cluster.verify)
app.command()(reference.schema)
app.command()(reference.catalog)


def flowing(doc: str) -> str:
    """A docstring's paragraphs, each on one line: rich help keeps a single newline as a line
    break, which cut the text mid-sentence in a narrow terminal."""
    return "\n\n".join(" ".join(paragraph.split())
                       for paragraph in inspect.cleandoc(doc).split("\n\n"))


for _command in app.registered_commands:
    if _command.help is None and _command.callback is not None and _command.callback.__doc__:
        _command.help = flowing(_command.callback.__doc__)


def main() -> None:  # pragma: no cover - console entry point alias
    app()
