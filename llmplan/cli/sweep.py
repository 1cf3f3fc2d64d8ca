"""`llmplan sweep`: a grid of fleets and traffic scales, simulated on local workers or Ray."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from llmplan.cli.loading import load_with_local
from llmplan.cli.options import check_out_folder, option_problem, writing
from llmplan.cli.terminal import console, fail, out
from llmplan.errors import InputError, did_you_mean


def sweep(
    scenario: Annotated[Path, typer.Argument(help="Scenario file.")],
    base: Annotated[str | None, typer.Option(
        help="Local deployment to vary (default: the first).")] = None,
    gpus: Annotated[str | None, typer.Option(help="Comma-separated GPU ids.")] = None,
    replicas: Annotated[str, typer.Option(help="Comma-separated replica counts.")] = "1,2,4",
    routers: Annotated[str | None, typer.Option(
        help="Comma-separated routers (default: the deployment's own).")] = None,
    scales: Annotated[str, typer.Option(help="Comma-separated traffic multipliers.")] = "1",
    layouts: Annotated[str | None, typer.Option(
        help="Comma-separated layouts of a replica's GPUs: tp (one tensor-parallel "
             "group), pp (pipeline stages of one GPU each) and, for a mixture of experts, "
             "dp (a data-parallel rank per GPU, the experts spread: "
             "engine.data_parallel_attention). Default: the deployment's own.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Local worker processes.")] = 2,
    ray: Annotated[str | None, typer.Option(
        help="Run on Ray: a cluster address, or 'local' for a local instance.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where sweep.json goes.")] = Path(
        "sweep-out"),
) -> None:
    """Simulate a grid (GPU x replicas x router x traffic scale, and layout when asked);
    table and Pareto front."""
    from typing import cast, get_args

    from llmplan.decide.sweep import LAYOUTS, grid, run_grid
    from llmplan.render import sweep_table
    from llmplan.results import write_result
    from llmplan.scenario.models import RouterName
    from llmplan.scenario.names import unknown_gpu

    check_out_folder(out_dir)
    replica_counts, traffic_scales = _replica_counts(replicas), _traffic_scales(scales)
    loaded, name, base_dep = load_with_local(scenario, base, "--base")
    # a value named twice is one point, not two twins on the front
    gpu_list = list(dict.fromkeys(gpus.split(","))) if gpus else [base_dep.gpu]
    router_list = list(dict.fromkeys(routers.split(","))) if routers else [base_dep.router]
    layout_list = list(dict.fromkeys(layouts.split(","))) if layouts else []
    unknown = [option_problem("--gpus", unknown_gpu(value, loaded.catalog))
               for value in gpu_list if value not in loaded.catalog.gpus]
    unknown += [option_problem(option, f"unknown {kind} '{value}'{did_you_mean(value, known)}; "
                                f"expected one of: {', '.join(sorted(known))}")
                for option, kind, values, known in (
                    ("--routers", "router", router_list, list(get_args(RouterName))),
                    ("--layouts", "layout", layout_list, list(LAYOUTS)))
                for value in values if value not in known]
    if ray is not None and importlib.util.find_spec("ray") is None:
        unknown.append(option_problem("--ray", "Ray is not installed in this environment; "
                                                "expected `pip install ray` (or the project's "
                                                "dev extra), or local workers (--workers)"))
    if unknown:
        fail(InputError(unknown))
    points = grid(gpu_list, replica_counts,
                  [cast(RouterName, r) for r in router_list],  # checked above
                  traffic_scales, [*layout_list] or None)
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console, disable=not console.is_terminal, transient=True) as bar:
        task = bar.add_task(f"sweeping {name}", total=len(points))
        result = run_grid(loaded, name, points, workers=workers, ray_address=ray,
                          on_done=lambda _: bar.advance(task))
    if result.points_not_run and not result.points:
        console.print(f"[yellow]interrupted:[/] no point ran; nothing written to "
                      f"{escape(str(out_dir))} (a sweep.json there is the previous one)",
                      highlight=False)
        raise typer.Exit(code=130)
    with writing(out_dir):
        path = write_result(result, out_dir, "sweep.json")
    out.print(sweep_table(result))
    if result.points_not_run:
        console.print(f"[yellow]interrupted:[/] {len(result.points):,} of "
                      f"{len(points):,} points ran; {escape(str(path))} holds them",
                      highlight=False)
        raise typer.Exit(code=130)
    if base_dep.autoscaling is not None:
        out.print(f"note: {name}'s autoscaling is left out: each point is a fixed fleet of "
                  "the replicas it names (simulate prices the autoscaled one)", highlight=False)
    console.print(f"wrote {path}")
    if result.points and all(p.error for p in result.points):
        # nothing was simulated: a CI job running the sweep must not pass on it
        console.print("[bold red]no point of the grid could be simulated[/] (each row says "
                      "why)")
        raise typer.Exit(code=1)


def _replica_counts(text: str) -> list[int]:
    """--replicas: whole numbers from 1 up, or a clear error naming the option."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    from llmplan.scenario import LocalDeployment

    most = LocalDeployment.model_fields["replicas"].metadata
    limit = next((m.le for m in most if getattr(m, "le", None) is not None), 4096)
    if not counts or any(count < 1 or count > limit for count in counts):
        fail(InputError([option_problem("--replicas", f"got '{text}'; expected whole "
                                                        f"numbers from 1 to {limit}, e.g. "
                                                        "1,2,4")]))
    return list(dict.fromkeys(counts))


def _traffic_scales(text: str) -> list[float]:
    """--scales: finite multipliers above 0, or a clear error naming the option."""
    try:
        scales = [float(part) for part in text.split(",")]
    except ValueError:
        scales = []
    if not scales or not all(math.isfinite(scale) and scale > 0 for scale in scales):
        fail(InputError([option_problem("--scales", f"got '{text}'; expected numbers "
                                                      "above 0, e.g. 0.5,1,2")]))
    return list(dict.fromkeys(scales))
