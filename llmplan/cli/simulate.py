"""`llmplan simulate`: evaluate a scenario, write result.json and report.html, print the
summary and the recommendation."""

from __future__ import annotations

import datetime
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from llmplan.cli.loading import load_or_fail
from llmplan.cli.options import check_out_folder, option_problem, writing
from llmplan.cli.terminal import console, fail, hanging, out
from llmplan.errors import InputError
from llmplan.scenario.models import SimulationMode

if TYPE_CHECKING:
    from llmplan.results import Result


#: where `simulate --requests` writes its CSVs until its result is written beside them
STAGED_CSVS = ".requests.partial"


@contextmanager
def _staged_csvs(out_dir: Path, wanted: bool) -> Iterator[Path | None]:
    """A folder for this run's per-request CSVs (None without --requests), in OUT so they
    move into OUT/requests by a rename; gone afterwards however the run ended."""
    staging = out_dir / STAGED_CSVS
    if wanted:
        shutil.rmtree(staging, ignore_errors=True)      # a killed run's leftovers
    try:
        yield staging if wanted else None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_csvs(folder: Path, staged: Path | None) -> None:
    """OUT/requests holds this run's CSVs only: the earlier run's go, the staged ones move
    in (none staged: none kept)."""
    for old_csv in sorted(folder.glob("*.csv")):
        old_csv.unlink()
    if staged is not None and staged.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        for new_csv in sorted(staged.glob("*.csv")):
            new_csv.replace(folder / new_csv.name)



def simulate(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    out_dir: Annotated[Path, typer.Option(
        "--out", help="Folder for result.json and report.html (and requests/ with "
                      "--requests).")] = Path("out"),
    seed: Annotated[int | None, typer.Option(help="Override the scenario seed.", min=0,
                                             max=2**63 - 1)] = None,
    mode: Annotated[SimulationMode | None, typer.Option(
        help="fast (default: the scenario's) or reference (one event per step).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    plan: Annotated[bool, typer.Option(
        "--plan/--no-plan", help="Search replicas and rates, test the ranking's stability.")
    ] = True,
    requests: Annotated[bool, typer.Option(
        "--requests/--no-requests", help="Also write a CSV per deployment in OUT/requests "
                                         "(one row per simulated request).")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print result.json to stdout instead of the summary.")] = False,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 when no candidate can be recommended (none feasible and "
                         "buildable), for a CI job to fail on; the files are written "
                         "first.")] = False,
) -> None:
    """Simulate every deployment of SCENARIO; write OUT/result.json and OUT/report.html."""
    from llmplan.decide.resilience import single_replica_risks
    from llmplan.decide.retirement import retiring_cloud_models, retiring_under
    from llmplan.pipeline import evaluate, scenario_notes, used_stale_prices
    from llmplan.render import api_limits, exclusions, not_served, one_sided, summary_table
    from llmplan.report.page import write_decision_report
    from llmplan.results import dumps_canonical, write_result

    check_out_folder(out_dir)
    if requests and (out_dir / "requests").exists() and not (out_dir / "requests").is_dir():
        fail(InputError([option_problem("--requests", f"{out_dir / 'requests'} is a file; "
                                                        "expected a folder for the CSVs")]))
    loaded = load_or_fail(scenario)
    duration = loaded.scenario.duration_s
    if mode == SimulationMode.REFERENCE:
        from llmplan.scenario import LocalDeployment
        from llmplan.scenario.loader import REFERENCE_FIXED_FLEETS

        dynamic = [n for n, d in loaded.scenario.deployments.items()
                   if isinstance(d, LocalDeployment)
                   and (d.failures is not None or d.autoscaling is not None)]
        if dynamic:
            fail(InputError([option_problem("--mode", f"{REFERENCE_FIXED_FLEETS} "
                                                        f"({', '.join(dynamic)} has them)")]))
    # this run's CSVs are written aside and replace the earlier run's only beside this run's
    # result: a run that fails or is interrupted leaves the earlier one whole
    with _staged_csvs(out_dir, requests) as staging:
        # a stage of unknown length shows no percentage (TaskProgressColumn), and a stage is
        # finished (its clock stopped) as soon as the next one starts
        with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                      TimeElapsedColumn(), console=console,
                      disable=quiet or not console.is_terminal, transient=True) as bar:
            tasks: dict[str, TaskID] = {}

            def finish_all() -> None:
                for task in bar.tasks:
                    if not task.finished:
                        bar.update(task.id, total=task.total or 1, completed=task.total or 1)

            def progress(name: str, t: float) -> None:
                if name not in tasks:
                    finish_all()                # deployments are simulated one after another
                    tasks[name] = bar.add_task(f"simulating {name}", total=duration)
                bar.update(tasks[name], completed=min(t, duration))

            def stage(text: str) -> None:
                finish_all()
                tasks[text] = bar.add_task(text, total=None)

            try:
                result = evaluate(loaded, seed, mode=mode, progress=progress, planning=plan,
                                  requests_dir=staging, stage=stage)
            except InputError as error:     # what only the drawn requests show (none at all)
                bar.stop()
                fail(error)
            except KeyboardInterrupt:
                bar.stop()
                console.print(f"[yellow]interrupted:[/] nothing written to "
                              f"{escape(str(out_dir))} (a simulation's result is whole or "
                              "not at all; --no-plan skips planning, the longer part)",
                              highlight=False)
                raise typer.Exit(code=130) from None
        today = datetime.date.today()
        stale = used_stale_prices(loaded, today)
        retiring = retiring_cloud_models(loaded, today)
        risks = retiring_under(loaded, today, result.recommendation.deployment)
        risks += single_replica_risks(loaded, result)
        said = scenario_notes(loaded, seed)
        notes = [*one_sided(result), *said]
        with writing(out_dir):
            path = write_result(result, out_dir)
            report = write_decision_report(result, out_dir, stale, retiring, risks,
                                           notes=notes)
            # an earlier run's per-request CSVs would sit beside this run's result as its own
            _replace_csvs(out_dir / "requests", staging)
    warnings = stale + [line for line in retiring if line not in risks]
    if as_json:
        sys.stdout.write(dumps_canonical(result))
        _exit_if_none(result, strict)
        return
    out.print(summary_table(result, loaded.scenario.bounded_latencies()))
    for line in not_served(result):
        hanging("not answered:", escape(line))
    if (limits := api_limits(result)) is not None:
        hanging("API limits:", escape(limits))
    for line in one_sided(result):
        hanging("one side only:", escape(line))
    answers = result.first_answer_tokens()
    if answers:
        hanging("answer starts:", escape("; ".join(answers) + " (p95 of the first "
                                          "answer token, after the hidden reasoning; TTFT "
                                          "is the first token of any kind)"))
    rec = result.recommendation
    hanging("[bold]recommendation:[/]", f"[bold]{escape(result.headline())}[/] - "
             f"{escape(rec.reason)}", indent="")
    for driver in rec.drivers:
        hanging("because", f"{escape(driver.text)} [dim]({escape(driver.basis)})[/]")
    for risk in risks:
        hanging("risk:", escape(risk))
    right_sized = result.right_sized_line()
    if right_sized is not None:
        hanging("right-sized:", escape(right_sized))
    for line in result.break_even_lines():
        hanging("break-even:", escape(line))
    for line in exclusions(result):
        hanging("excluded", escape(line))
    if result.planning is not None:
        for note in result.planning.notes:
            hanging("planning:", escape(note))
        for case in result.planning.sensitivity:
            if case.winner != rec.deployment:
                hanging("flips to", escape(f"{case.winner or 'no feasible candidate'} if "
                                            f"{case.change}"))
        held = [c.change for c in result.planning.sensitivity if c.winner == rec.deployment]
        if held and rec.deployment is not None:
            hanging("holds if", escape("; ".join(held)))
    for warning in [*warnings, *said]:
        hanging("[yellow]note:[/]", escape(warning), indent="", to=console)
    console.print(f"wrote {path} and {report}")
    _exit_if_none(result, strict)


def _exit_if_none(result: Result, strict: bool) -> None:
    """--strict: exit 1 when there is no recommendation (what a CI job fails on)."""
    if strict and result.recommendation.deployment is None:
        console.print("[bold red]no candidate can be recommended[/] (--strict)")
        raise typer.Exit(code=1)
