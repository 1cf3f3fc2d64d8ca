"""`llmplan loadtest`: a real endpoint under a scenario's traffic (or a quick fixed
workload), level by level and repeat by repeat."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape

from llmplan.cli.options import check_out_folder, option_problem
from llmplan.cli.terminal import console, fail, out
from llmplan.errors import InputError, Problem

if TYPE_CHECKING:
    from llmplan.loadtests.plan import PlanItem


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
        fail(InputError([option_problem("--target", "required: the target to load-test")]))
    check_out_folder(out_dir)
    if (problem := out_folder_problem(out_dir)) is not None:
        fail(InputError([option_problem("--out", problem)]))
    quick_only = [name for name, value in (("--rate", rate), ("--prompt-tokens", prompt_tokens),
                                           ("--output-tokens", output_tokens))
                  if value is not None]
    if scenario is not None and quick_only:
        fail(InputError([option_problem("/".join(quick_only), "for a quick run only: the "
                                          "scenario gives the traffic and the lengths (use "
                                          "--sweep for other rates, --time-scale to speed "
                                          "it up)")]))
    if rate is not None and (concurrency is not None or closed):
        fail(InputError([option_problem("--rate/--concurrency", "an open loop at a rate "
                                          "or a closed loop of users: give one")]))
    if requests is not None and max_requests is not None and requests != max_requests:
        fail(InputError([option_problem("--max-requests/--requests", "the same option; "
                                          "give one")]))
    max_requests = max_requests if max_requests is not None else requests
    try:
        duration_s = parse_duration_s(duration)
        grace_s = parse_duration_s(grace)
    except ValueError as exc:
        fail(InputError([option_problem("--duration/--grace", str(exc))]))
    quick = scenario is None
    if quick and (prompt_tokens is None or output_tokens is None):
        fail(InputError([option_problem("--prompt-tokens/--output-tokens",
                                          "give a scenario file, or both --prompt-tokens and "
                                          "--output-tokens for a quick run")]))
    if quick and rate is None and concurrency is None and not closed and not sweep:
        fail(InputError([option_problem("--rate/--concurrency", "a quick run needs a rate "
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
        fail(error)
    except ValueError:
        fail(InputError([option_problem("--sweep", "expected rates above 0 such as "
                                          "0.5,1,2")]))
    try:
        stage_list = tuple((float(a), int(b), float(c)) for a, b, c in
                           (part.split(":") for part in stages.split(","))) if stages else ()
    except ValueError:
        fail(InputError([option_problem("--stages", "expected seconds:users:rate,...")]))
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
                fail(InputError([option_problem("--duration", "the plan is empty: no "
                                                  "request arrives within the duration")]))
            try:
                check_context(plan, props, f"{endpoint.base_url}/props")
            except InputError as error:
                fail(error)
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
            if result.summary.history_note:
                console.print(f"[yellow]note:[/] {escape(result.summary.history_note)}",
                              highlight=False)
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
