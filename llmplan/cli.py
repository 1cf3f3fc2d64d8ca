"""`llmplan`: the command line. Each command parses, calls one entry point and renders."""

from __future__ import annotations

import datetime
import importlib.util
import inspect
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from llmplan.errors import InputError, Problem, did_you_mean
from llmplan.scenario.models import SimulationMode

if TYPE_CHECKING:
    from llmplan.loadtests.plan import PlanItem
    from llmplan.results import Result
    from llmplan.scenario import LoadedScenario, LocalDeployment

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Local GPUs, cloud APIs, or both? Simulate, load-test, decide.")
PIPED_WIDTH = 100        # piped (and no COLUMNS): the product's widest, never cut to 80


class _Console(Console):
    """The terminal's width; when piped (and no COLUMNS), PIPED_WIDTH, read at each print."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # rich fixes COLUMNS and LINES as they are when the console is made (at import):
        # a width set later (a test runner's, a resized terminal's) would go unread
        if "width" not in kwargs:
            self._width = None
        if "height" not in kwargs:
            self._height = None

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if not self.is_terminal and "COLUMNS" not in os.environ:
            return ConsoleDimensions(PIPED_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = _Console(stderr=True)
out = _Console()


def _fail(error: InputError) -> NoReturn:
    """Print the problems once each (a scenario can trip one rule on several paths) and exit 2."""
    unique = list(dict.fromkeys(error.problems))
    shown = error if len(unique) == len(error.problems) else InputError(unique, error.title)
    # soft_wrap: the terminal wraps it; no newline cuts a path or a field name in two
    console.print(f"[bold red]error:[/] {escape(shown.render())}", highlight=False,
                  soft_wrap=True)
    raise typer.Exit(code=2)


def _hanging(label: str, markup: str, indent: str = "  ", to: Console | None = None) -> None:
    """`  label text...` with the text's wrapped lines under its first word, not at the
    margin, so the labels down the left stay readable (`label` may hold markup)."""
    to = to or out
    lead = Text.from_markup(f"{indent}{label} ")
    lines = Text.from_markup(markup).wrap(to, max(20, to.size.width - lead.cell_len))
    for i, line in enumerate(lines):
        line.rstrip()
        to.print((lead if i == 0 else Text(" " * lead.cell_len)) + line, highlight=False,
                  soft_wrap=True)


def _option_problem(option: str, message: str) -> Problem:
    return Problem("<command line>", None, option, message)


#: what Pulumi takes as a stack name (and so as the file Pulumi.<stack>.yaml beside the
#: project): letters, digits, '-', '_' and '.', an optional org/project/ prefix excluded
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _check_stack_name(name: str) -> None:
    """Pulumi's rule (sdk/go/common/tokens: at most 100 characters of letters, digits, '-',
    '_' and '.'), and no leading '-', which `pulumi stack select` would read as a flag."""
    if not STACK_NAME.fullmatch(name) or name in (".", "..") or name.startswith("-") \
            or len(name) > 100:
        _fail(InputError([_option_problem("--stack", f"'{name}' is no Pulumi stack name; "
                                                     "expected at most 100 letters, digits, "
                                                     "'-', '_' and '.', not starting with "
                                                     "'-' (e.g. dev, prod-eu)")]))


def _check_out_file(path: Path) -> None:
    """--out names a file to write: not a folder, in a folder that exists or can be made."""
    if path.is_dir():
        _fail(InputError([_option_problem("--out", f"{path} is a folder; expected a file to "
                                                   "write")]))
    _check_out_folder(path.parent)


def _check_out_folder(folder: Path) -> None:
    """--out names a folder that exists or can be made: checked before any long run."""
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        what = "" if existing == folder else f" (in {folder})"
        _fail(InputError([_option_problem("--out", f"{existing} is a file{what}; expected a "
                                                   "folder, existing or new")]))
    if not os.access(existing, os.W_OK | os.X_OK):
        _fail(InputError([_option_problem("--out", f"cannot write in {existing}")]))


@contextmanager
def _writing(out_dir: Path) -> Iterator[None]:
    """Writes into --out that the disk or the folder refuses (full, read-only, a folder
    where a file goes): one line naming the path and why, not a traceback."""
    try:
        yield
    except OSError as error:
        where = error.filename or out_dir
        _fail(InputError([_option_problem("--out", f"cannot write {where}: "
                                                   f"{error.strerror or error}")]))


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


def _not_an_input(out_file: Path, inputs: list[Path], example: str) -> None:
    """Refuse an --out that is one of the files the command reads: an input named, or a
    file in an input folder other than a calibration (YAML) of its own."""
    target = out_file.resolve()
    for given in inputs:
        folder = given.resolve()
        if target == folder or (folder.is_dir() and target.parent == folder
                                and target.exists() and target.suffix not in (".yaml", ".yml")):
            _fail(InputError([_option_problem("--out", f"{out_file} is {given}'s own input "
                                                       "(it would be overwritten); expected "
                                                       f"another file, e.g. {example}")]))


def _load(scenario: Path) -> LoadedScenario:
    from llmplan.scenario import load_scenario

    try:
        return load_scenario(scenario)
    except InputError as error:
        _not_a_result(scenario)
        _fail(error)


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


def _load_with_local(scenario: Path, wanted: str | None,
                     option: str) -> tuple[LoadedScenario, str, LocalDeployment]:
    """The scenario, and the local deployment `wanted` (default: the first) or a clear error."""
    from llmplan.scenario import LocalDeployment

    loaded = _load(scenario)
    local = [n for n, d in loaded.scenario.deployments.items() if isinstance(d, LocalDeployment)]
    name = wanted or (local[0] if local else None)
    if wanted is not None and wanted in loaded.unbuildable:
        _fail(InputError([Problem(str(scenario), None, "deployments",
                                  f"{option} {wanted} cannot be built as written: "
                                  f"{loaded.unbuildable[wanted]}")]))
    if not local:
        kinds = [f"{n} (kind: {d.kind})" for n, d in loaded.scenario.deployments.items()]
        kinds += [f"{n} (cannot be built: {why})" for n, why in loaded.unbuildable.items()]
        _fail(InputError([Problem(str(scenario), None, "deployments",
                                  f"no local deployment to vary: this scenario has "
                                  f"{', '.join(kinds)}; expected one with gpu: and model: "
                                  f"(kind: local, the default)")]))
    if name not in local:
        _fail(InputError([Problem(str(scenario), None, "deployments",
                                  f"{option} must name a local deployment; expected one of: "
                                  f"{', '.join(local)}")]))
    dep = loaded.scenario.deployments[str(name)]
    assert isinstance(dep, LocalDeployment)
    return loaded, str(name), dep


@app.command()
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

    _check_out_folder(out_dir)
    if requests and (out_dir / "requests").exists() and not (out_dir / "requests").is_dir():
        _fail(InputError([_option_problem("--requests", f"{out_dir / 'requests'} is a file; "
                                                        "expected a folder for the CSVs")]))
    loaded = _load(scenario)
    duration = loaded.scenario.duration_s
    if mode == SimulationMode.REFERENCE:
        from llmplan.scenario import LocalDeployment
        from llmplan.scenario.loader import REFERENCE_FIXED_FLEETS

        dynamic = [n for n, d in loaded.scenario.deployments.items()
                   if isinstance(d, LocalDeployment)
                   and (d.failures is not None or d.autoscaling is not None)]
        if dynamic:
            _fail(InputError([_option_problem("--mode", f"{REFERENCE_FIXED_FLEETS} "
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
                _fail(error)
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
        with _writing(out_dir):
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
        _hanging("not answered:", escape(line))
    if (limits := api_limits(result)) is not None:
        _hanging("API limits:", escape(limits))
    for line in one_sided(result):
        _hanging("one side only:", escape(line))
    answers = result.first_answer_tokens()
    if answers:
        _hanging("answer starts:", escape("; ".join(answers) + " (p95 of the first "
                                          "answer token, after the hidden reasoning; TTFT "
                                          "is the first token of any kind)"))
    rec = result.recommendation
    _hanging("[bold]recommendation:[/]", f"[bold]{escape(result.headline())}[/] - "
             f"{escape(rec.reason)}", indent="")
    for driver in rec.drivers:
        _hanging("because", f"{escape(driver.text)} [dim]({escape(driver.basis)})[/]")
    for risk in risks:
        _hanging("risk:", escape(risk))
    right_sized = result.right_sized_line()
    if right_sized is not None:
        _hanging("right-sized:", escape(right_sized))
    for line in result.break_even_lines():
        _hanging("break-even:", escape(line))
    for line in exclusions(result):
        _hanging("excluded", escape(line))
    if result.planning is not None:
        for note in result.planning.notes:
            _hanging("planning:", escape(note))
        for case in result.planning.sensitivity:
            if case.winner != rec.deployment:
                _hanging("flips to", escape(f"{case.winner or 'no feasible candidate'} if "
                                            f"{case.change}"))
        held = [c.change for c in result.planning.sensitivity if c.winner == rec.deployment]
        if held and rec.deployment is not None:
            _hanging("holds if", escape("; ".join(held)))
    for warning in [*warnings, *said]:
        _hanging("[yellow]note:[/]", escape(warning), indent="", to=console)
    console.print(f"wrote {path} and {report}")
    _exit_if_none(result, strict)


def _exit_if_none(result: Result, strict: bool) -> None:
    """--strict: exit 1 when there is no recommendation (what a CI job fails on)."""
    if strict and result.recommendation.deployment is None:
        console.print("[bold red]no candidate can be recommended[/] (--strict)")
        raise typer.Exit(code=1)


@app.command()
def loadtest(
    scenario: Annotated[Path | None, typer.Argument(
        help="Scenario whose traffic and tasks to replay (none: a quick run, see "
             "--prompt-tokens).")] = None,
    target: Annotated[str, typer.Option(help="Name of the target in the targets file.")] = "",
    targets: Annotated[Path, typer.Option(
        help="Targets YAML (endpoints, key variable names).")] = Path("targets.yaml"),
    duration: Annotated[str, typer.Option(
        help="Hard limit of each run, counted from its first send (Locust's start-up "
             "is not counted), e.g. 60s, 10m.")] = "10m",
    users: Annotated[int | None, typer.Option(
        min=1, help="Concurrency cap (closed loop: users). Default 64.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("loadtest-out"),
    time_scale: Annotated[float, typer.Option(
        min=1e-6, help="Multiply arrival times (0.1 = 10x faster).")] = 1.0,
    max_requests: Annotated[int | None, typer.Option(
        "--max-requests", min=1,
        help="Measured requests to send (closed loop: stop after this many); also "
             "--requests.")] = None,
    requests: Annotated[int | None, typer.Option(
        "--requests", min=1, hidden=True, help="Same as --max-requests.")] = None,
    max_output_tokens: Annotated[int | None, typer.Option(
        min=1, help="Cap planned output lengths.")] = None,
    max_prompt_tokens: Annotated[int | None, typer.Option(
        min=1, help="Cap planned prompt lengths.")] = None,
    closed: Annotated[bool, typer.Option(
        "--closed", help="Closed loop: users send back to back.")] = False,
    concurrency: Annotated[int | None, typer.Option(
        min=1, help="Closed loop with this many users (same as --closed --users N).")] = None,
    prompt_tokens: Annotated[int | None, typer.Option(
        min=1, help="Quick run without a scenario: prompt tokens of every request.")] = None,
    output_tokens: Annotated[int | None, typer.Option(
        min=1, help="Quick run: output tokens of every request.")] = None,
    rate: Annotated[float | None, typer.Option(
        min=1e-6, help="Quick run: open-loop Poisson arrivals at this many requests/s.")
    ] = None,
    workers: Annotated[int, typer.Option(min=0, help="Locust workers (0: one process).")] = 0,
    test_set: Annotated[Path | None, typer.Option(help="JSONL prompts with answer checks.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the scenario seed.", min=0,
                                             max=2**63 - 1)] = None,
    sweep: Annotated[str | None, typer.Option(
        help="Comma-separated request rates (req/s): open-loop levels until saturation.")
    ] = None,
    stages: Annotated[str | None, typer.Option(
        help="Closed-loop stages, comma-separated, each seconds:users:rate (users started "
             "per second; a Locust LoadTestShape).")
    ] = None,
    warmup: Annotated[int, typer.Option(
        min=0, help="Warm-up requests sent first and kept out of the statistics.")] = 0,
    grace: Annotated[str, typer.Option(
        help="At a stop (Ctrl-C, --duration), how long requests in flight may finish before "
             "they are cancelled.")] = "5s",
    repeat: Annotated[int, typer.Option(
        min=1, help="Run the plan N times; report 95% confidence intervals of p50/p95.")] = 1,
) -> None:
    """Load-test a real endpoint with SCENARIO's traffic (or a quick fixed workload).

    Writes requests.jsonl, summary.json/.csv, metrics.prom and report.html per run."""
    from llmplan.loadtests.checks import load_test_set
    from llmplan.loadtests.levels import SATURATED_SHARE, run_levels
    from llmplan.loadtests.plan import build_plan
    from llmplan.loadtests.repeats import summarise_repeats
    from llmplan.loadtests.report import write_loadtest_report
    from llmplan.loadtests.runner import LoadTestSettings, out_folder_problem
    from llmplan.loadtests.server_props import fetch_props
    from llmplan.loadtests.targets import load_target, with_catalog_reasoning
    from llmplan.loadtests.workload import (
        check_api,
        check_context,
        load_workload,
        quick_workload,
    )
    from llmplan.render import loadtest_table, repeat_table
    from llmplan.units import parse_duration_s

    if not target:
        _fail(InputError([_option_problem("--target", "required: the target to load-test")]))
    _check_out_folder(out_dir)
    if (problem := out_folder_problem(out_dir)) is not None:
        _fail(InputError([_option_problem("--out", problem)]))
    quick_only = [name for name, value in (("--rate", rate), ("--prompt-tokens", prompt_tokens),
                                           ("--output-tokens", output_tokens))
                  if value is not None]
    if scenario is not None and quick_only:
        _fail(InputError([_option_problem("/".join(quick_only), "for a quick run only: the "
                                          "scenario gives the traffic and the lengths (use "
                                          "--sweep for other rates, --time-scale to speed "
                                          "it up)")]))
    if rate is not None and (concurrency is not None or closed):
        _fail(InputError([_option_problem("--rate/--concurrency", "an open loop at a rate "
                                          "or a closed loop of users: give one")]))
    if requests is not None and max_requests is not None and requests != max_requests:
        _fail(InputError([_option_problem("--max-requests/--requests", "the same option; "
                                          "give one")]))
    max_requests = max_requests if max_requests is not None else requests
    try:
        duration_s = parse_duration_s(duration)
        grace_s = parse_duration_s(grace)
    except ValueError as exc:
        _fail(InputError([_option_problem("--duration/--grace", str(exc))]))
    quick = scenario is None
    if quick and (prompt_tokens is None or output_tokens is None):
        _fail(InputError([_option_problem("--prompt-tokens/--output-tokens",
                                          "give a scenario file, or both --prompt-tokens and "
                                          "--output-tokens for a quick run")]))
    if quick and rate is None and concurrency is None and not closed and not sweep:
        _fail(InputError([_option_problem("--rate/--concurrency", "a quick run needs a rate "
                                          "(open loop), a --sweep of rates, or a concurrency "
                                          "(closed loop)")]))
    try:
        if scenario is None:
            loaded = quick_workload(prompt_tokens=int(prompt_tokens or 0),
                                    output_tokens=int(output_tokens or 0), rate_per_s=rate,
                                    requests=max_requests, seed=seed or 1)
        else:
            loaded = load_workload(scenario)
        # a plain task on a model that cannot answer without reasoning: sent the lowest
        # effort the simulation and the stack's gateway give it
        endpoint = with_catalog_reasoning(load_target(targets, target), loaded.catalog)
        check_api(loaded, endpoint.api, target)
        items = load_test_set(test_set) if test_set is not None else None
        if items is not None and test_set is not None:
            known = [t.name for t in loaded.scenario.tasks]
            unknown = sorted({i.task for i in items} - set(known))
            if unknown:
                raise InputError([Problem(str(test_set), None, "task", (
                    f"{', '.join(map(repr, unknown))} not a task of "
                    f"{'this quick run' if quick else str(scenario)}; expected one of: "
                    f"{', '.join(known)} (its items would never be sent)"))])
        rates: list[float | None] = [float(r) for r in sweep.split(",")] if sweep else [None]
        if any(r is not None and not r > 0 for r in rates):
            raise ValueError("a rate of 0 or less")
    except InputError as error:
        _fail(error)
    except ValueError:
        _fail(InputError([_option_problem("--sweep", "expected rates above 0 such as "
                                          "0.5,1,2")]))
    try:
        stage_list = tuple((float(a), int(b), float(c)) for a, b, c in
                           (part.split(":") for part in stages.split(","))) if stages else ()
    except ValueError:
        _fail(InputError([_option_problem("--stages", "expected seconds:users:rate,...")]))
    mode: Literal["open", "closed"] = "closed" if closed or concurrency or stage_list \
        else "open"
    base_rate = loaded.scenario.traffic.expected_rate_per_s(loaded.scenario.duration_s)
    settings = LoadTestSettings(users=concurrency or users or 64, duration_s=duration_s,
                                mode=mode, workers=workers, stages=stage_list, grace_s=grace_s,
                                max_requests=(max_requests + warmup
                                              if mode == "closed" and max_requests else None))
    fetched = fetch_props(endpoint.base_url, headers=endpoint.auth_headers()) \
        if endpoint.kind == "llamacpp" else None
    props = fetched[0] if fetched is not None else None
    if props is not None:
        console.print(f"server: {props.total_slots or '?'} slots, "
                      f"{props.n_ctx_per_slot or '?'} tokens of context per slot (/props)")
    run_id = f"{int(time.time() * 1000) % 10**9:09d}"

    def plans(repeat_index: int) -> Callable[[float | None, int], list[PlanItem]]:
        def plan_for(level_rate: float | None, level: int) -> list[PlanItem]:
            scale = time_scale if level_rate is None else base_rate / level_rate
            plan = build_plan(loaded, seed=seed, time_scale=scale,
                              duration_s=None if mode == "closed" else duration_s,
                              max_requests=max_requests, max_output_tokens=max_output_tokens,
                              max_prompt_tokens=max_prompt_tokens, test_set=items,
                              salt=f"{run_id}-L{level}-R{repeat_index}", warmup=warmup)
            if not plan:
                _fail(InputError([_option_problem("--duration", "the plan is empty: no "
                                                  "request arrives within the duration")]))
            try:
                check_context(plan, props, f"{endpoint.base_url}/props")
            except InputError as error:
                _fail(error)
            console.print(f"load test: {len(plan)} requests to {target} ({endpoint.kind}), "
                          f"{mode} loop, up to {settings.users} in flight, at most "
                          f"{duration_s:g} s")
            return plan
        return plan_for

    finished = []
    for repeat_index in range(repeat):
        run_dir = out_dir if repeat == 1 else out_dir / f"repeat-{repeat_index + 1}"
        for level in run_levels(loaded, target, endpoint, rates=rates,
                                plan_for=plans(repeat_index), settings=settings,
                                out_dir=run_dir):
            level_rate, level_dir, result = level.rate, level.folder, level.result
            write_loadtest_report(result.summary, result.rows, level_dir / "report.html",
                                  title=f"{loaded.scenario.name} -> {target}",
                                  slo_by_task={t.name: loaded.scenario.slo_for(t)
                                               for t in loaded.scenario.tasks})
            title = f"{target}: {level_dir}" if level_rate is None else \
                f"{target} at {level_rate:g} req/s"
            out.print(loadtest_table(result.summary, title))
            cache = result.summary.cache
            if cache is not None and cache.warning:
                console.print(f"[yellow]warning:[/] {escape(cache.warning)}", highlight=False)
            if result.interrupted:
                if result.complete:
                    console.print(f"[yellow]interrupted: every request sent is in "
                                  f"{level_dir / 'requests.jsonl'}[/]")
                else:
                    console.print(f"[yellow]interrupted: a load generator process ended "
                                  f"before it recorded its requests in flight; "
                                  f"{level_dir / 'requests.jsonl'} holds the "
                                  f"{len(result.rows):,} it recorded, and requests sent may "
                                  f"be missing from it and from the counts[/]")
                raise typer.Exit(code=130)
            if result.target_down:
                console.print(f"[bold red]error:[/] {escape(result.target_down)}; "
                              f"records are in {level_dir / 'requests.jsonl'}", highlight=False)
                raise typer.Exit(code=3)
            failed = [code for code in result.exit_codes if code]
            if not result.rows and result.summary.requests.planned and failed:
                # the senders died before sending: not a target's answer, and not a pass
                console.print(f"[bold red]error:[/] the load generator sent nothing: Locust "
                              f"exited with code {', '.join(map(str, failed))}; its output "
                              f"is in {escape(str(level_dir / 'locust.log'))}",
                              highlight=False)
                raise typer.Exit(code=3)
            if level.saturated:
                console.print(f"saturated at {level_rate:g} req/s")
            elif level_rate is None and settings.mode == "open":
                offered = result.summary.throughput.requested_rate_per_s
                achieved = result.summary.throughput.achieved_rate_per_s
                if offered and achieved < SATURATED_SHARE * offered:
                    console.print(f"[yellow]note:[/] the target finished {achieved:.3g} of the "
                                  f"{offered:.3g} requests/s offered: it was saturated, and "
                                  f"these figures measure its queue, not its service; send "
                                  f"less (a larger --time-scale, or --rate)", highlight=False)
            finished.append(result.summary)
    if repeat > 1:
        repeats = summarise_repeats(finished)
        (out_dir / "repeats.json").write_text(repeats.model_dump_json(indent=1),
                                              encoding="utf-8")
        out.print(repeat_table(repeats))


@app.command()
def calibrate(
    measurements: Annotated[list[Path], typer.Argument(
        help="Load-test output folders (or JSONL) of one server; several are fitted together.")],
    out_file: Annotated[Path, typer.Option("--out", help="Calibration file to write.")] = Path(
        "calibration.yaml"),
    slots: Annotated[int | None, typer.Option(
        min=1, help="Concurrent sequences of the server (default: from its /props, or "
                    "observed).")
    ] = None,
    max_batched_tokens: Annotated[int | None, typer.Option(
        min=1, help="Tokens per step of the server (llama.cpp n_batch, vLLM "
                    "max_num_batched_tokens).")
    ] = None,
    kv_cache_tokens: Annotated[int | None, typer.Option(
        min=1, help="KV-cache capacity in tokens (default: slots x context per slot).")
    ] = None,
    accept_poor_fit: Annotated[bool, typer.Option(
        "--accept-poor-fit", help="Write the calibration even when the quality gate fails.")
    ] = False,
    source: Annotated[str, typer.Option(
        help="records (rebuild steps from per-token times) or vllm-metrics (the vLLM "
             "server's /metrics scraped during the load test).")] = "records",
) -> None:
    """Fit the simulator's step-time model to a load test of a real server.

    Exits 4, writing nothing, when the data cannot support a trustworthy fit (too few steps
    that carried a prompt, one batch size only, R2 or held-in error out of bounds); the
    message says what is missing and how to get it.
    """
    from llmplan.fidelity.calibrate import fit_runs
    from llmplan.render import calibration_table, fit_kind_table

    if source not in ("records", "vllm-metrics"):
        _fail(InputError([_option_problem("--source", "expected records or vllm-metrics")]))
    _not_an_input(out_file, measurements, "calibration.yaml")
    try:
        report = fit_runs(measurements, slots=slots, max_batched_tokens=max_batched_tokens,
                          kv_cache_tokens=kv_cache_tokens,
                          source="records" if source == "records" else "vllm-metrics")
    except InputError as error:
        _fail(error)
    except UnicodeDecodeError:
        _fail(InputError([Problem(", ".join(str(m) for m in measurements), None, "",
                                  "not a text file; expected a load test's records "
                                  "(requests.jsonl) or vLLM metrics text")]))
    out.print(calibration_table(report.calibration))
    out.print(fit_kind_table(report.fit))
    for finding in report.advisory:
        console.print(f"[yellow]note:[/] {escape(str(finding))}", highlight=False)
    if report.rejected:
        from llmplan.fidelity.calibrate import CalibrationRejectedError

        rejection = CalibrationRejectedError(report)
        if not accept_poor_fit:
            console.print(f"[bold red]error:[/] {escape(rejection.render())}", highlight=False)
            console.print(f"nothing written; --accept-poor-fit writes {out_file} anyway")
            raise typer.Exit(code=4)
        console.print(f"[yellow]warning: this calibration is not trusted:[/] "
                      f"{escape(rejection.render())}", highlight=False)
    calibration = report.calibration
    if report.rejected:   # the file says so, and so does everything that reads it
        calibration = calibration.model_copy(update={"fit": calibration.fit.model_copy(
            update={"rejected": rejection.render()})})
    with _writing(out_file):
        calibration.write(out_file)
    console.print(f"wrote {out_file}")


def _same_server_as_calibrated(measurements: Path, calibration: Path) -> None:
    """Refuse to validate a calibration against another server's run (its slots, context or
    model file differ): the errors would be the servers' difference, not the model's."""
    from llmplan.fidelity.server import model_file, server_info
    from llmplan.perf.steptime_spec import Calibration

    run = server_info(measurements)
    calibrated = Calibration.read(calibration).server
    differ = [f"{name} {mine} here, {theirs} calibrated"
              for name, mine, theirs in (("slots", run.slots, calibrated.slots),
                                         ("context per slot", run.n_ctx_per_slot,
                                          calibrated.n_ctx_per_slot),
                                         ("model file", model_file(run),
                                          calibrated.model_file))
              if mine is not None and theirs is not None and mine != theirs]
    if differ:
        _fail(InputError([Problem(str(measurements), None, "server_props.json",
                                  f"another server than the calibration's ({'; '.join(differ)});"
                                  " expected a run of the calibrated server, or a calibration "
                                  "of this one")], title="nothing to validate"))


@app.command()
def validate(
    measurements: Annotated[Path, typer.Argument(help="Load-test output folder (or JSONL).")],
    calibration: Annotated[Path, typer.Option(help="File written by `llmplan calibrate`.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where validation.json/html go.")] = Path(
        "validation"),
) -> None:
    """Replay measured requests through the calibrated simulator; predicted vs measured."""
    from llmplan.fidelity.validate import (
        SPEED_AGREEMENT,
        calibrated_deployment,
        context_extrapolation,
        load_rows,
        prompt_extrapolation,
        replay_and_compare,
        write_validation,
    )
    from llmplan.loadtests.records import warmup_records
    from llmplan.perf.steptime_spec import Calibration
    from llmplan.render import validation_table

    try:
        rows = load_rows(measurements)
    except InputError as error:
        _fail(error)
    try:
        dep = calibrated_deployment(calibration)
    except (OSError, ValueError) as exc:
        _fail(InputError([Problem(str(calibration), None, "", str(exc))]))
    _same_server_as_calibrated(measurements, calibration)
    failed = sum(1 for r in rows if not r.ok and r.error_class != "cancelled")
    cut = sum(1 for r in rows if r.error_class == "cancelled")
    notes = []
    if failed:
        notes.append(f"{failed:,} of {len(rows):,} requests in this run failed; the replay "
                     "has only the answered ones, so a server that was dying or refusing "
                     "makes the comparison meaningless")
    if cut:
        notes.append(f"{cut:,} of {len(rows):,} requests were still running when the run "
                     "stopped (--duration or Ctrl-C); the replay leaves them out")
    calibrated = Calibration.read(calibration)
    if calibrated.fit.rejected:
        notes.append(f"this calibration's quality gate refused it "
                     f"({calibrated.fit.rejected}); it was written with --accept-poor-fit")
    for extrapolated in (context_extrapolation(rows, calibrated),
                         prompt_extrapolation(rows, calibrated)):
        if extrapolated is not None:
            notes.append(extrapolated)
    if measurements.resolve() in _fitted_runs(calibrated.source, calibration):
        notes.append("this run is one the calibration was fitted on: its errors say how "
                     "well the fit matches its own data, not how well it predicts; validate "
                     "on a run it has not seen")
    warm = warmup_records(measurements)
    if warm:
        notes.append(f"{len(warm):,} warm-up requests ran before the measured ones and may "
                     "still have been running beside the first of them; the replay starts "
                     "without them, on an idle server")
    answered = sum(1 for r in rows if r.ok)
    if 0 < answered < FEW_REQUESTS:
        notes.append(f"{answered:,} answered requests: their p95 and p99 rest on the last "
                     "one or two of them; read the p50s")
    try:
        result, replay = replay_and_compare(rows, dep)
    except ValueError as exc:
        _fail(InputError([Problem(str(measurements), None, "", str(exc))]))
    measured = result.step_time_ratio_measured
    ratio = result.step_time_ratio or 1.0
    if result.step_time_ratio_range is not None and result.error_pct_at_run_speed is not None \
            and measured is not None and abs(ratio / measured - 1.0) > SPEED_AGREEMENT:
        notes.append(f"the same-size steps of the calibration's own runs read {measured:.3f}, "
                     f"not {ratio:.3f}: the model mispredicts this run's steps, and the errors "
                     f"at the run's speed hide it")
    result = result.model_copy(update={"notes": notes})
    with _writing(out_dir):
        write_validation(result, replay, out_dir)
    out.print(validation_table(result))
    thr = result.error_pct["throughput"]["requests_per_s"]
    console.print(f"throughput error {thr:+.1f}%; wrote {out_dir / 'validation.json'} and "
                  f"{out_dir / 'validation.html'}")
    if result.step_time_ratio_range is not None and result.error_pct_at_run_speed is not None:
        fastest, slowest = result.step_time_ratio_range
        fast = result.error_pct_at_run_speed
        console.print(
            f"the run's steps took {result.step_time_ratio:.3f} x the calibration's "
            f"({fastest:.3f}-{slowest:.3f} over {result.speed_parts} parts; a server slower or "
            f"faster than when calibrated moves every latency). Replayed on the run's own "
            f"clock, each part at its speed: "
            f"TTFT p50 {fast['ttft_ms'].get('p50', 0.0):+.1f}%, E2E p50 "
            f"{fast['e2e_ms'].get('p50', 0.0):+.1f}%, E2E p95 "
            f"{fast['e2e_ms'].get('p95', 0.0):+.1f}%, throughput "
            f"{fast['throughput'].get('requests_per_s', 0.0):+.1f}%")
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


#: answered requests below which a run's tail percentiles rest on one or two of them
FEW_REQUESTS = 20


def _fitted_runs(source: str, calibration: Path) -> set[Path]:
    """The runs a calibration was fitted on, as folders and files, read from its `source`
    (paths as given to calibrate: relative to where it ran, which may be the calibration
    file's folder or here; vLLM-metrics runs carry a suffix)."""
    found: set[Path] = set()
    for part in source.split(", "):
        path = Path(part.removesuffix(" (vLLM /metrics)"))
        for base in (Path.cwd(), calibration.resolve().parent):
            run = (base / path).resolve()
            found |= {run, run / "requests.jsonl"} if run.suffix != ".jsonl" else {run,
                                                                                     run.parent}
    return found


@app.command()
def stack(
    scenario: Annotated[Path, typer.Argument(help="Scenario file.")],
    stack_name: Annotated[str, typer.Option("--stack", help="Pulumi stack name.")] = "dev",
    deployment: Annotated[str | None, typer.Option(
        help="Deployment to provision (default: the recommended one).")] = None,
    namespace: Annotated[str | None, typer.Option(help="Kubernetes namespace.")] = None,
    cluster_mode: Annotated[str | None, typer.Option(
        help="kubeconfig (an existing cluster) or eks (create one).")] = None,
    aws_region: Annotated[str | None, typer.Option(help="AWS region of AWS resources.")] = None,
    eks_gpu_instance_type: Annotated[str | None, typer.Option(
        help="With --cluster-mode eks: the GPU nodes' EC2 instance type (default: the "
             "smallest llmplan knows carrying one replica).")] = None,
    eks_gpus_per_node: Annotated[int | None, typer.Option(
        help="GPUs on --eks-gpu-instance-type.")] = None,
    vllm_image: Annotated[str | None, typer.Option(
        help="The fleet's vLLM image, pinned (default: vLLM's own image of the simulated "
             "release); on AMD GPUs it sets vllmRocmImage.")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder of Pulumi.yaml (default: the current folder if it is llmplan's "
                      "Pulumi project, else the project llmplan came with).")] = None,
) -> None:
    """Write Pulumi.<stack>.yaml so `pulumi up` deploys the deployment as simulated.

    The stack file goes next to the project's Pulumi.yaml, where the pulumi commands it
    prints must run."""
    from llmplan.pipeline import evaluate
    from llmplan.provision.stack import is_project_dir, project_dir, stack_folder, write_stack

    _check_stack_name(stack_name)
    if out_dir is not None:
        _check_out_folder(out_dir)
    if cluster_mode not in (None, "kubeconfig", "eks"):
        _fail(InputError([_option_problem("--cluster-mode", f"got '{cluster_mode}'; expected "
                                                            "kubeconfig or eks")]))
    if eks_gpus_per_node is not None and not 1 <= eks_gpus_per_node <= 64:
        _fail(InputError([_option_problem("--eks-gpus-per-node", f"got {eks_gpus_per_node}; "
                                          "expected the GPUs of one node, 1 to 64")]))
    if eks_gpus_per_node is not None and eks_gpu_instance_type is None:
        _fail(InputError([_option_problem("--eks-gpus-per-node", "it counts the GPUs of "
                                          "--eks-gpu-instance-type; expected that too")]))
    loaded = _load(scenario)
    result = evaluate(loaded)
    settings = {"namespace": namespace, "cluster_mode": cluster_mode, "aws_region": aws_region,
                "eks_gpu_instance_type": eks_gpu_instance_type,
                "eks_gpus_per_node": eks_gpus_per_node, "serving_image": vllm_image}
    try:
        folder = stack_folder(out_dir)
        with _writing(folder):
            written = write_stack(folder / f"Pulumi.{stack_name}.yaml", loaded, result,
                                  deployment, settings)
    except InputError as error:
        _fail(error)
    plan, candidate = written.config.plan, written.candidate
    verb = "wrote" if written.changed else "unchanged:"
    console.print(f"{verb} {written.path}: deployment '{plan.deployment}' ({plan.chosen.kind}), "
                  f"planned at ${plan.simulated.monthly_usd:,.0f} per month", highlight=False)
    if not candidate.feasible:
        console.print(f"[bold yellow]warning:[/] '{plan.deployment}' was not feasible: "
                      f"{escape('; '.join(candidate.infeasible_because))}", highlight=False)
    for note in written.notes:
        console.print(f"[bold yellow]note:[/] {escape(note)}", highlight=False)
    project = folder if is_project_dir(folder) else project_dir()
    steps = []
    if project != folder:
        where = f"the project folder {project}" if project is not None else \
            "the folder of llmplan's Pulumi.yaml and infra/"
        console.print(f"[bold yellow]warning:[/] {escape(str(folder.resolve()))} has no "
                      f"Pulumi.yaml of this project; the pulumi commands run in "
                      f"{escape(where)}, with "
                      f"{written.path.name} beside Pulumi.yaml", highlight=False)
        if project is not None:
            steps.append(f"cp {written.path} {project}/")
    if project is not None and project.resolve() != Path.cwd().resolve():
        steps.append(f"cd {project}")
    steps.append(f"pulumi stack select {stack_name} --create")
    steps += [f"pulumi config set --secret {s.key} <value>" + ("    # already set"
              if s.already_set else f"    # {s.why}") for s in written.secrets]
    steps += ["pulumi preview --policy-pack infra/policy", "pulumi up"]
    # commands to copy: the terminal wraps them (soft_wrap), rich never cuts one in two
    out.print("next:\n" + "\n".join(f"  {escape(step)}" for step in steps), highlight=False,
              soft_wrap=True)


@app.command()
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

    _check_out_folder(out_dir)
    replica_counts, traffic_scales = _replica_counts(replicas), _traffic_scales(scales)
    loaded, name, base_dep = _load_with_local(scenario, base, "--base")
    # a value named twice is one point, not two twins on the front
    gpu_list = list(dict.fromkeys(gpus.split(","))) if gpus else [base_dep.gpu]
    router_list = list(dict.fromkeys(routers.split(","))) if routers else [base_dep.router]
    layout_list = list(dict.fromkeys(layouts.split(","))) if layouts else []
    unknown = [_option_problem("--gpus", unknown_gpu(value, loaded.catalog))
               for value in gpu_list if value not in loaded.catalog.gpus]
    unknown += [_option_problem(option, f"unknown {kind} '{value}'{did_you_mean(value, known)}; "
                                f"expected one of: {', '.join(sorted(known))}")
                for option, kind, values, known in (
                    ("--routers", "router", router_list, list(get_args(RouterName))),
                    ("--layouts", "layout", layout_list, list(LAYOUTS)))
                for value in values if value not in known]
    if ray is not None and importlib.util.find_spec("ray") is None:
        unknown.append(_option_problem("--ray", "Ray is not installed in this environment; "
                                                "expected `pip install ray` (or the project's "
                                                "dev extra), or local workers (--workers)"))
    if unknown:
        _fail(InputError(unknown))
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
    with _writing(out_dir):
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
        _fail(InputError([_option_problem("--replicas", f"got '{text}'; expected whole "
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
        _fail(InputError([_option_problem("--scales", f"got '{text}'; expected numbers "
                                                      "above 0, e.g. 0.5,1,2")]))
    return list(dict.fromkeys(scales))


@app.command("import-trace")
def import_trace(
    fmt: Annotated[Literal["azure", "burstgpt", "mooncake", "sharegpt"], typer.Argument(
        metavar="FORMAT", help="azure | burstgpt | mooncake | sharegpt")],
    source: Annotated[Path, typer.Argument(help="The published trace file.")],
    out_file: Annotated[Path, typer.Option(
        "--out", help="The trace CSV to write (timestamp, prompt_tokens, output_tokens, "
                      "task, and what the source carries: hash_ids, prefix_group and "
                      "prefix_tokens, session, turn and think_s).")] = Path("trace.csv"),
    include_failed: Annotated[bool, typer.Option(
        "--include-failed",
        help="burstgpt: keep failed requests (0 response tokens) as 1-token answers.")] = False,
    sessions_per_s: Annotated[float, typer.Option(
        min=1e-9, help="sharegpt: conversations starting per second (Poisson).")] = 0.1,
    think_s: Annotated[float, typer.Option(
        min=0, max=86_400, help="sharegpt: seconds between a conversation's turns.")] = 30.0,
    chars_per_token: Annotated[float, typer.Option(
        min=0.1, help="sharegpt: characters per token when estimating counts.")] = 4.0,
) -> None:
    """Convert a public trace (Azure, BurstGPT, Mooncake, ShareGPT) for `kind: trace`."""
    from llmplan.traffic.imports import (
        ShareGptOptions,
        read_azure,
        read_burstgpt,
        read_mooncake,
        read_sharegpt,
        write_trace,
    )

    if not source.is_file():
        _fail(InputError([Problem(str(source), None, "", "file not found")]))
    if out_file.resolve() == source.resolve():
        _fail(InputError([_option_problem("--out", f"{out_file} is the trace being read; "
                                                   "expected another file")]))
    _check_out_file(out_file)
    try:
        if fmt == "azure":
            rows = read_azure(source)
        elif fmt == "burstgpt":
            rows = read_burstgpt(source, include_failed)
        elif fmt == "mooncake":
            rows = read_mooncake(source)
        else:
            rows = read_sharegpt(source, ShareGptOptions(sessions_per_s, think_s,
                                                          chars_per_token))
        if not rows:
            raise InputError([Problem(str(source), None, "", "no usable requests in it (every "
                                      "row was empty or failed; burstgpt: --include-failed "
                                      "keeps failed ones)")])
        with _writing(out_file):
            path = write_trace(rows, out_file)
    except InputError as exc:
        _fail(exc)
    except UnicodeDecodeError:
        _fail(InputError([Problem(str(source), None, "", f"not a text file; expected the "
                                                         f"{fmt} trace's CSV or JSON")]))
    span = max(r.timestamp_s for r in rows) - min(r.timestamp_s for r in rows)
    tasks = sorted({r.task for r in rows if r.task})
    out.print(f"wrote {path}: {len(rows):,} requests over {span:,.0f} s")
    out.print("traffic section for the scenario:", highlight=False)
    out.print(f"  traffic: {{kind: trace, path: {path.resolve()}}}  # or the path from the "
              f"scenario's folder", highlight=False)
    if tasks:
        out.print(f"  tasks named in the trace (declare each under tasks:): {', '.join(tasks)}",
                  highlight=False)


@app.command("import-usage")
def import_usage(
    out_dir: Annotated[Path, typer.Option(
        "--out", help="Folder for the trace and snippet.")] = Path("usage"),
    csv_file: Annotated[Path | None, typer.Option(
        "--csv", help="A provider's usage export (time, requests, input/output tokens).")] = None,
    cloudwatch_model: Annotated[str | None, typer.Option(
        "--bedrock-model", help="Read AWS/Bedrock CloudWatch metrics of this ModelId.")] = None,
    start: Annotated[str | None, typer.Option(help="Window start (ISO time, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end (default start + --hours).")] = None,
    hours: Annotated[float, typer.Option(help="Window length when --end is not given.")] = 24.0,
    region: Annotated[str, typer.Option(help="AWS region.")] = "us-east-1",
    endpoint_url: Annotated[str | None, typer.Option(help="CloudWatch endpoint override.")] = None,
    task: Annotated[str, typer.Option(help="Task name written on every request.")] = "",
) -> None:
    """Build a replayable trace and a traffic section from real usage (Bedrock or CSV)."""
    from llmplan.usage import import_usage as write_usage
    from llmplan.usage import parse_window, read_cloudwatch, read_usage_csv

    if (csv_file is None) == (cloudwatch_model is None):
        _fail(InputError([_option_problem("--csv/--bedrock-model", "give exactly one source")]))
    _check_out_folder(out_dir)
    if task and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", task):
        _fail(InputError([_option_problem("--task", f"got '{task}'; expected a task name a "
                                                    "scenario accepts: letters, digits, "
                                                    "_ . - (not first)")]))
    if csv_file is not None and (start is not None or end is not None):
        _fail(InputError([_option_problem("--start/--end", "apply to --bedrock-model only: a "
                                                         "usage CSV is read whole; expected "
                                                         "them left out (or the CSV cut to "
                                                         "the window)")]))
    if not math.isfinite(hours) or hours <= 0 or hours > 24 * 366:
        _fail(InputError([_option_problem("--hours", f"got {hours:g}; expected hours above 0, "
                                                     "at most a year")]))
    try:
        window = None
        if csv_file is not None:
            periods = read_usage_csv(csv_file)
        else:
            if start is None:
                _fail(InputError([_option_problem("--start", "required with --bedrock-model")]))
            begin, finish = parse_window(start, end, hours)
            # CloudWatch leaves out the minutes without calls: the window is what was read
            window = begin, finish
            periods = read_cloudwatch(str(cloudwatch_model), begin, finish, region=region,
                                      endpoint_url=endpoint_url)
        with _writing(out_dir):
            imported = write_usage(periods, out_dir, task, window)
    except InputError as error:
        _fail(error)
    except UnicodeDecodeError:
        _fail(InputError([Problem(str(csv_file), None, "", "not a text file; expected a "
                                  "usage CSV")]))
    except ValueError as exc:
        _fail(InputError([_option_problem("--start/--end", str(exc))]))
    console.print(f"wrote {imported.trace} ({imported.requests:,} requests over "
                  f"{imported.hours:.1f} h, mean prompt {imported.mean_prompt_tokens:.0f} / "
                  f"output {imported.mean_output_tokens:.0f} tokens) and {imported.snippet}")


@app.command("import-records")
def import_records(
    export: Annotated[Path, typer.Argument(
        help="AIPerf profile_export.jsonl, GuideLLM benchmarks.json, or `vllm bench serve "
             "--save-detailed` JSON.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder to write.")] = Path(
        "imported"),
    fmt: Annotated[str | None, typer.Option(
        "--format", help="aiperf | guidellm | vllm-bench (default: from the content).")
    ] = None,
) -> None:
    """Convert another load tool's per-request export into llmplan's records.

    Writes requests.jsonl and summary.json per run, so `calibrate`, `validate` and reports
    can use it."""
    from llmplan.fidelity.imports import write_imported

    if out_dir.is_dir() and any(out_dir.iterdir()):
        # a run's records would be replaced, or sit beside another tool's under one server
        _fail(InputError([_option_problem("--out", f"{out_dir} already holds files (a run's "
                                                   "records?); expected a new or empty "
                                                   "folder")]))
    try:
        with _writing(out_dir):
            written = write_imported(export, out_dir, fmt)
    except InputError as error:
        _fail(error)
    except UnicodeDecodeError:
        _fail(InputError([Problem(str(export), None, "", "not a text file; expected AIPerf, "
                                  "GuideLLM or vllm bench JSON")]))
    for folder, rows in written:
        ok = sum(1 for r in rows if r.ok)
        console.print(f"wrote {folder / 'requests.jsonl'}: {len(rows):,} requests "
                      f"({ok:,} finished, {len(rows) - ok:,} failed)")


@app.command("import-cluster")
def import_cluster(
    kubeconfig: Annotated[Path | None, typer.Option(
        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context.")] = None,
    model: Annotated[str, typer.Option(
        help="Catalog model the proposed deployments serve.")] = "Llama-3.1-8B",
    tp: Annotated[int, typer.Option(min=1, help="GPUs per replica.")] = 1,
    out_path: Annotated[Path, typer.Option("--out", help="Inventory file to write.")] = Path(
        "inventory.yaml"),
) -> None:
    """Read an existing cluster's GPU nodes into deployments a scenario can use."""
    from llmplan.catalog import builtin_catalog
    from llmplan.provision.gpu_nodes import sliced
    from llmplan.provision.inventory import import_cluster as read_cluster
    from llmplan.provision.inventory import write_inventory

    if kubeconfig is not None:
        _not_an_input(out_path, [kubeconfig], "inventory.yaml")
    models = builtin_catalog().models
    if model not in models:
        _fail(InputError([_option_problem("--model", f"unknown model '{model}'"
                                                     f"{did_you_mean(model, models)}; expected "
                                                     f"one of: {', '.join(sorted(models))}")]))
    try:
        inventory = read_cluster(kubeconfig, context, model, tp)
    except InputError as error:
        _fail(error)
    for pool in inventory.pools:
        out.print(f"{pool.gpu} ({pool.product}): {len(pool.nodes)} nodes, "
                  f"{pool.allocatable_gpus} GPUs allocatable, {pool.usable_nodes} nodes ready "
                  "and schedulable", highlight=False)
    for product, gpus in inventory.unknown_products.items():
        if sliced(product):
            out.print(f"{product}: {gpus} GPU slices (MIG or time-shared), not whole GPUs: "
                      "left out (a model's replica needs whole cards)", highlight=False)
            continue
        out.print(f"{product}: {gpus} GPUs, not in the catalog (add it under the scenario's "
                  "`catalog: gpus:`)", highlight=False)
    for gpu, most in inventory.too_small.items():
        out.print(f"{gpu}: no ready node has {tp} of them (--tp); the most on one node is "
                  f"{most}: no deployment", highlight=False)
    for gpu, why in inventory.cannot_serve.items():
        out.print(f"{gpu}: {model} with --tp {tp} cannot be served there ({escape(why)}): no "
                  f"deployment", highlight=False)
    for name, dep in inventory.deployments.items():
        out.print(f"deployment {name}: {dep.replicas} x {dep.gpus_per_replica} {dep.gpu} serving "
                  f"{dep.model}",
                  highlight=False)
    with _writing(out_path):
        console.print(f"wrote {write_inventory(inventory, out_path)}")


@app.command()
def verify(
    stack_name: Annotated[str, typer.Option("--stack", help="Pulumi stack name.")],
    stack_dir: Annotated[Path, typer.Option(
        "--dir", help="Folder of Pulumi.<stack>.yaml.")] = Path("."),
    kubeconfig: Annotated[Path | None, typer.Option(
        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")] = None,
    context: Annotated[str | None, typer.Option(
        help="kubeconfig context (default: the stack's kubeContext, else current).")] = None,
) -> None:
    """After `pulumi up`: the fleet rolled out with its GPUs and the gateway answers."""
    from llmplan.provision.verify import verify_stack

    _check_stack_name(stack_name)
    try:
        report = verify_stack(stack_dir / f"Pulumi.{stack_name}.yaml", kubeconfig, context)
    except InputError as error:
        _fail(error)
    out.print(f"stack {report.stack} on {report.server}:", highlight=False)
    for check in report.checks:
        mark = "[green]ok[/]  " if check.ok else "[bold red]FAIL[/]"
        out.print(f"  {mark} {escape(check.name)}: {escape(check.detail)}", highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)


@app.command()
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
        _fail(InputError([_option_problem("--result/--records", "give at most one")]))
    model: type[BaseModel] = Result if result else RequestRecord if records else Scenario
    sys.stdout.write(json.dumps(model.model_json_schema(by_alias=True), indent=1) + "\n")


@app.command()
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
