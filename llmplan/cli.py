"""`llmplan`: the command line. Each command reads like its sentence: load, run, report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmplan.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Local GPUs, cloud APIs, or both? Simulate, load-test, decide.")
console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 160)


def _fail(error: InputError) -> None:
    console.print(f"[bold red]error:[/] {error.render()}", highlight=False)
    raise typer.Exit(code=2)


@app.command()
def simulate(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where result.json goes.")] = Path("out"),
    seed: Annotated[int | None, typer.Option(help="Override the scenario seed.")] = None,
    mode: Annotated[str | None, typer.Option(help="fast (default) or reference.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Simulate every deployment of SCENARIO and write OUT/result.json."""
    from llmplan.results import write_result
    from llmplan.scenario import load_scenario
    from sim.run import simulate_scenario

    if mode not in (None, "fast", "reference"):
        _fail(InputError([_option_problem("--mode", "expected 'fast' or 'reference'")]))
    try:
        loaded = load_scenario(scenario)
    except InputError as error:
        _fail(error)
        return
    duration = loaded.scenario.duration_s
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console,
                  disable=quiet or not console.is_terminal, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(name: str, t: float) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"simulating {name}", total=duration)
            bar.update(tasks[name], completed=min(t, duration))

        result = simulate_scenario(loaded, seed=seed, mode=mode, progress=progress)  # type: ignore[arg-type]
    path = write_result(result, out_dir)
    out.print(summary_table(result))
    console.print(f"wrote {path}")


def _option_problem(option: str, message: str) -> Any:
    from llmplan.errors import Problem

    return Problem("<command line>", None, option, message)


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def summary_table(result: dict[str, Any]) -> Table:
    """One row per deployment: the figures a capacity planner looks at first."""
    meta = result["scenario"]
    table = Table(title=f"{meta['name']}: {meta['requests']:,} requests over "
                        f"{meta['duration_s'] / 3600:.2f} h (seed {meta['seed']})")
    for column in ("deployment", "GPUs", "TTFT p50/p95 ms", "TPOT p50/p95 ms", "E2E p95 s",
                   "req/s", "out tok/s", "goodput", "SLO", "KV use", "preempt", "refused"):
        table.add_column(column, justify="left" if column == "deployment" else "right")
    for name, dep in result["deployments"].items():
        lat, req = dep["latency"], dep["requests"]
        e2e = lat["e2e_ms"]["p95"]
        goodput = dep["slo"]["goodput_fraction"]
        table.add_row(
            name, f"{dep['gpus']}x {dep['gpu']}",
            f"{_fmt(lat['ttft_ms']['p50'])} / {_fmt(lat['ttft_ms']['p95'])}",
            f"{_fmt(lat['tpot_ms']['p50'], 1)} / {_fmt(lat['tpot_ms']['p95'], 1)}",
            _fmt(None if e2e is None else e2e / 1e3, 1),
            _fmt(dep["throughput"]["requests_per_s"], 2),
            _fmt(dep["throughput"]["output_tokens_per_s"]),
            "-" if goodput is None else f"{goodput:.1%}",
            "[green]met[/]" if dep["slo"]["met"] else "[red]missed[/]",
            f"{dep['utilisation']['kv_cache_mean_fraction']:.0%}",
            f"{req['preemptions']:,}",
            f"{req['rejected'] + req['timed_out'] + req['too_long'] + req['unfinished']:,}",
        )
    return table


@app.command()
def schema() -> None:
    """Print the JSON Schema of the scenario file."""
    from llmplan.scenario import Scenario

    sys.stdout.write(json.dumps(Scenario.model_json_schema(by_alias=True), indent=1) + "\n")


@app.command()
def catalog() -> None:
    """List the GPUs and models the planner knows (every number has a source)."""
    from llmplan.catalog import builtin_catalog

    cat = builtin_catalog()
    gpus = Table(title="GPUs")
    for column in ("id", "memory GB", "bf16 TFLOP/s", "GB/s", "W", "buy $", "rent $/h"):
        gpus.add_column(column)
    for key, g in cat.gpus.items():
        gpus.add_row(key, f"{g.memory_gb:g}", f"{g.bf16_dense_tflops:g}",
                     f"{g.memory_bandwidth_gb_per_s:g}", f"{g.tdp_w:g}", f"{g.purchase_usd:,.0f}",
                     f"{g.rental_usd_per_gpu_hour:.2f}")
    models = Table(title="Models")
    for column in ("id", "params B", "layers", "kv heads", "head dim", "KiB KV/token (bf16)"):
        models.add_column(column)
    for key, m in cat.models.items():
        models.add_row(key, f"{m.params_b:g}", str(m.layers), str(m.kv_heads), str(m.head_dim),
                       f"{m.kv_bytes_per_token('bf16') / 1024:g}")
    out.print(gpus)
    out.print(models)


def main() -> None:  # pragma: no cover - console entry point alias
    app()
