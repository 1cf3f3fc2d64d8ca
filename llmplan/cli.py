"""`llmplan`: the command line. Each command reads like its sentence: load, run, report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmplan.errors import InputError

if TYPE_CHECKING:
    from llmplan.scenario import LoadedScenario, LocalDeployment

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Local GPUs, cloud APIs, or both? Simulate, load-test, decide.")
console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 160)


def _fail(error: InputError) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(error.render())}", highlight=False)
    raise typer.Exit(code=2)


def _load_with_local(scenario: Path, wanted: str | None,
                     option: str) -> tuple[LoadedScenario, str, LocalDeployment]:
    """The scenario, and the local deployment `wanted` (default: the first) or a clear error."""
    from llmplan.errors import Problem
    from llmplan.scenario import LocalDeployment, load_scenario

    try:
        loaded = load_scenario(scenario)
    except InputError as error:
        _fail(error)
    local = [n for n, d in loaded.scenario.deployments.items() if isinstance(d, LocalDeployment)]
    name = wanted or (local[0] if local else None)
    if name not in local:
        _fail(InputError([Problem(str(scenario), None, "deployments",
                                  f"{option} must name a local deployment; expected one of: "
                                  f"{', '.join(local) or '(none)'}")]))
    dep = loaded.scenario.deployments[str(name)]
    assert isinstance(dep, LocalDeployment)
    return loaded, str(name), dep


@app.command()
def simulate(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where result.json goes.")] = Path("out"),
    seed: Annotated[int | None, typer.Option(help="Override the scenario seed.")] = None,
    mode: Annotated[str | None, typer.Option(help="fast (default) or reference.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    plan: Annotated[bool, typer.Option(
        "--plan/--no-plan", help="Search replicas and rates, test the ranking's stability.")
    ] = True,
    requests: Annotated[bool, typer.Option(
        "--requests/--no-requests", help="Also write OUT/requests/<deployment>.csv.")] = True,
) -> None:
    """Simulate every deployment of SCENARIO; write OUT/result.json and OUT/report.html."""
    from llmplan.results import write_result
    from llmplan.scenario import load_scenario
    from sim.run import simulate_scenario

    if mode not in (None, "fast", "reference"):
        _fail(InputError([_option_problem("--mode", "expected 'fast' or 'reference'")]))
    try:
        loaded = load_scenario(scenario)
    except InputError as error:
        _fail(error)
    duration = loaded.scenario.duration_s
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console,
                  disable=quiet or not console.is_terminal, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(name: str, t: float) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"simulating {name}", total=duration)
            bar.update(tasks[name], completed=min(t, duration))

        result = simulate_scenario(loaded, seed=seed, mode=mode,  # type: ignore[arg-type]
                                   progress=progress, planning=plan,
                                   requests_dir=out_dir / "requests" if requests else None)
    path = write_result(result, out_dir)
    from llmplan.report import write_report

    report = write_report(result, out_dir)
    out.print(summary_table(result))
    rec = result["recommendation"]
    winner = rec["deployment"] or "none"
    out.print(f"[bold]recommendation: {winner}[/] - {escape(rec['reason'])}", highlight=False)
    for case in result.get("planning", {}).get("sensitivity", []):
        if case["winner"] != rec["deployment"]:
            out.print(f"  flips to {case['winner'] or 'no feasible candidate'} if "
                      f"{case['change']}", highlight=False)
    console.print(f"wrote {path} and {report}")


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
    for column in ("deployment", "serving", "TTFT p50/p95 ms", "TPOT p50/p95 ms", "E2E p95 s",
                   "req/s", "out tok/s", "goodput", "SLO", "KV use", "preempt", "not served",
                   "$/month", "$/useful", "feasible"):
        table.add_column(column, justify="left" if column == "deployment" else "right")
    for name, dep in result["deployments"].items():
        lat, req = dep["latency"], dep["requests"]
        e2e = lat["e2e_ms"]["p95"]
        goodput = dep["slo"]["goodput_fraction"]
        if dep["kind"] == "local":
            serving = f"{dep['gpus']}x {dep['gpu']}"
        elif dep["kind"] == "cloud":
            serving = f"API {dep['cloud']['model']}"
        else:
            serving = f"{dep['gpus']}x {dep['gpu']} + {dep['cloud']['model']}"
        kv = dep.get("utilisation", {}).get("kv_cache_mean_fraction")
        refused = req["total"] - req["completed"]
        table.add_row(
            name, serving,
            f"{_fmt(lat['ttft_ms']['p50'])} / {_fmt(lat['ttft_ms']['p95'])}",
            f"{_fmt(lat['tpot_ms']['p50'], 1)} / {_fmt(lat['tpot_ms']['p95'], 1)}",
            _fmt(None if e2e is None else e2e / 1e3, 1),
            _fmt(dep["throughput"]["requests_per_s"], 2),
            _fmt(dep["throughput"]["output_tokens_per_s"]),
            "-" if goodput is None else f"{goodput:.1%}",
            "[green]met[/]" if dep["slo"]["met"] else "[red]missed[/]",
            "-" if kv is None else f"{kv:.0%}",
            f"{req['preemptions']:,}",
            f"{refused:,}",
            _fmt(dep.get("cost", {}).get("monthly_usd")),
            _fmt(dep.get("cost", {}).get("usd_per_useful_result"), 4),
            "[green]yes[/]" if dep.get("feasible") else "[red]no[/]",
        )
    return table


def _loadtest_table(summary: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    for column in ("sent", "ok", "429", "other errors", "req/s requested", "req/s achieved",
                   "TTFT p50/p95 ms", "TPOT p50 ms", "ITL p50 ms", "E2E p50/p95 ms",
                   "goodput", "sched. delay p99 ms"):
        table.add_column(column, justify="right")
    req, lat, thr = summary["requests"], summary["latency"], summary["throughput"]
    errors = req["errors_by_class"]
    goodput = summary["slo"]["goodput_fraction"]
    table.add_row(
        str(req["sent"]), str(req["ok"]), str(errors["http_429"]),
        str(req["failed"] - errors["http_429"]), _fmt(thr["requested_rate_per_s"], 2),
        _fmt(thr["achieved_rate_per_s"], 2),
        f"{_fmt(lat['ttft_ms']['p50'])} / {_fmt(lat['ttft_ms']['p95'])}",
        _fmt(lat["tpot_ms"]["p50"], 1), _fmt(lat["itl_ms"]["p50"], 1),
        f"{_fmt(lat['e2e_ms']['p50'])} / {_fmt(lat['e2e_ms']['p95'])}",
        "-" if goodput is None else f"{goodput:.1%}",
        _fmt(summary["schedule_delay_ms"]["p99"], 1))
    return table


@app.command()
def loadtest(
    scenario: Annotated[Path, typer.Argument(
        help="Scenario whose traffic and tasks to replay.")],
    targets: Annotated[Path, typer.Option(
        help="Targets YAML (endpoints, key variable names).")],
    target: Annotated[str, typer.Option(help="Name of the target in the targets file.")],
    duration: Annotated[str, typer.Option(help="Hard limit of the run, e.g. 60s, 10m.")],
    users: Annotated[int, typer.Option(min=1, help="Concurrency cap (closed loop: users).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("loadtest-out"),
    time_scale: Annotated[float, typer.Option(
        help="Multiply arrival times (0.1 = 10x faster).")] = 1.0,
    max_requests: Annotated[int | None, typer.Option(help="Send at most this many.")] = None,
    max_output_tokens: Annotated[int | None, typer.Option(
        help="Cap planned output lengths.")] = None,
    max_prompt_tokens: Annotated[int | None, typer.Option(
        help="Cap planned prompt lengths.")] = None,
    closed: Annotated[bool, typer.Option(
        "--closed", help="Closed loop: users send back to back.")] = False,
    workers: Annotated[int, typer.Option(min=0, help="Locust workers (0: one process).")] = 0,
    test_set: Annotated[Path | None, typer.Option(help="JSONL prompts with answer checks.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the scenario seed.")] = None,
    sweep: Annotated[str | None, typer.Option(
        help="Comma-separated request rates (req/s): open-loop levels until saturation.")
    ] = None,
    stages: Annotated[str | None, typer.Option(
        help="Closed-loop stages 'seconds:users:spawn_rate,...' (a Locust LoadTestShape).")
    ] = None,
) -> None:
    """Load-test a real endpoint with SCENARIO's traffic; writes JSONL, summary and reports."""
    from llmplan.scenario import load_scenario
    from llmplan.units import parse_duration_s
    from loadtests.checks import load_test_set
    from loadtests.plan import build_plan
    from loadtests.report import write_report
    from loadtests.runner import LoadTestSettings, run_load_test
    from loadtests.targets import load_target

    try:
        duration_s = parse_duration_s(duration)
    except ValueError as exc:
        _fail(InputError([_option_problem("--duration", str(exc))]))
    try:
        loaded = load_scenario(scenario)
        endpoint = load_target(targets, target)
        items = load_test_set(test_set) if test_set is not None else None
        rates = [float(r) for r in sweep.split(",")] if sweep else [None]
    except InputError as error:
        _fail(error)
    except ValueError:
        _fail(InputError([_option_problem("--sweep", "expected numbers such as 0.5,1,2")]))
    try:
        stage_list = tuple((float(a), int(b), float(c)) for a, b, c in
                           (part.split(":") for part in stages.split(","))) if stages else ()
    except ValueError:
        _fail(InputError([_option_problem("--stages", "expected seconds:users:rate,...")]))
    mode: Literal["open", "closed"] = "closed" if closed or stage_list else "open"
    base_rate = loaded.scenario.traffic.expected_rate_per_s(loaded.scenario.duration_s)
    levels = []
    for rate in rates:
        scale = time_scale if rate is None else base_rate / rate
        plan = build_plan(loaded, seed=seed, time_scale=scale, duration_s=duration_s,
                          max_requests=max_requests, max_output_tokens=max_output_tokens,
                          max_prompt_tokens=max_prompt_tokens, test_set=items)
        if not plan:
            _fail(InputError([_option_problem("--duration", "the plan is empty: no request "
                                              "arrives within the duration")]))
        level_dir = out_dir if rate is None else out_dir / f"rate-{rate:g}"
        settings = LoadTestSettings(users=users, duration_s=duration_s, mode=mode,
                                    workers=workers, stages=stage_list)
        console.print(f"load test: {len(plan)} requests to {target} ({endpoint.kind}), "
                      f"{mode} loop, up to {users} in flight, at most {duration_s:g} s")
        result = run_load_test(target, endpoint, plan, settings, level_dir, loaded=loaded)
        write_report(result.summary, result.rows, level_dir / "report.html",
                     title=f"{loaded.scenario.name} -> {target}")
        title = f"{target}: {level_dir}" if rate is None else f"{target} at {rate:g} req/s"
        out.print(_loadtest_table(result.summary, title))
        levels.append((rate, result))
        if result.interrupted:
            console.print("[yellow]interrupted: finished requests are in "
                          f"{level_dir / 'requests.jsonl'}[/]")
            raise typer.Exit(code=130)
        if result.target_down:
            console.print(f"[bold red]error:[/] {result.target_down}; "
                          f"finished requests are in {level_dir / 'requests.jsonl'}")
            raise typer.Exit(code=3)
        if rate is not None and _saturated(result.summary, rate,
                                           loaded.scenario.slo.min_goodput_fraction):
            console.print(f"saturated at {rate:g} req/s")
            break
    if sweep:
        _write_sweep(levels, out_dir)


def _saturated(summary: dict[str, Any], rate: float, min_goodput: float) -> bool:
    """Achieved under 90% of what the plan offered (its own arrivals), or the SLO broke."""
    offered = summary["throughput"]["requested_rate_per_s"] or rate
    achieved = summary["throughput"]["achieved_rate_per_s"]
    goodput = summary["slo"]["goodput_fraction"] or 0.0
    return achieved < 0.9 * offered or goodput < min_goodput


def _write_sweep(levels: list[tuple[float | None, Any]], out_dir: Path) -> None:
    rows = [{"requested_rate_per_s": rate,
             "offered_rate_per_s": r.summary["throughput"]["requested_rate_per_s"],
             "achieved_rate_per_s": r.summary["throughput"]["achieved_rate_per_s"],
             "goodput_fraction": r.summary["slo"]["goodput_fraction"],
             "ttft_p50_ms": r.summary["latency"]["ttft_ms"]["p50"],
             "e2e_p95_ms": r.summary["latency"]["e2e_ms"]["p95"]} for rate, r in levels]
    (out_dir / "sweep.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")


@app.command()
def calibrate(
    measurements: Annotated[list[Path], typer.Argument(
        help="Load-test output folders (or JSONL) of one server; several are fitted together.")],
    out_file: Annotated[Path, typer.Option("--out", help="Calibration file to write.")] = Path(
        "calibration.yaml"),
    slots: Annotated[int | None, typer.Option(
        help="Concurrent sequences of the server (default: from its /props, or observed).")
    ] = None,
    max_batched_tokens: Annotated[int | None, typer.Option(
        help="Tokens per step of the server (llama.cpp n_batch, vLLM max_num_batched_tokens).")
    ] = None,
    kv_cache_tokens: Annotated[int | None, typer.Option(
        help="KV-cache capacity in tokens (default: slots x context per slot).")] = None,
) -> None:
    """Fit the simulator's step-time model to a load test of a real server."""
    from llmplan.fidelity.calibrate import calibrate as fit
    from llmplan.fidelity.calibrate import write_calibration

    try:
        calibration = fit(measurements, slots=slots, max_batched_tokens=max_batched_tokens,
                          kv_cache_tokens=kv_cache_tokens)
    except InputError as error:
        _fail(error)
    write_calibration(calibration, out_file)
    table = Table(title=f"calibration from {', '.join(map(str, measurements))}")
    for column in ("fixed ms", "per prefill token us", "per decode seq us", "per KV token ns",
                   "client overhead ms", "slots", "steps fitted", "R2", "median |err| %"):
        table.add_column(column, justify="right")
    st, f = calibration["step_time"], calibration["fit"]
    table.add_row(f"{st['overhead_ms']:.3f}", f"{st['per_prefill_token_us']:.1f}",
                  f"{st['per_decode_seq_us']:.1f}", f"{st['per_kv_token_ns']:.1f}",
                  f"{calibration['client_overhead_ms']:.2f}",
                  str(calibration["engine"]["max_num_seqs"]), str(f["steps"]),
                  f"{f['r2']:.3f}", f"{f['median_abs_error_pct']:.1f}")
    out.print(table)
    console.print(f"wrote {out_file}")


@app.command()
def validate(
    measurements: Annotated[Path, typer.Argument(help="Load-test output folder (or JSONL).")],
    calibration: Annotated[Path, typer.Option(help="File written by `llmplan calibrate`.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where validation.json/html go.")] = Path(
        "validation"),
) -> None:
    """Replay measured requests through the calibrated simulator; predicted vs measured."""
    from llmplan.fidelity.validate import calibrated_deployment, compare, load_rows
    from llmplan.fidelity.validate import write_validation as save

    try:
        rows = load_rows(measurements)
        dep = calibrated_deployment(calibration)
        result = compare(rows, dep)
    except InputError as error:
        _fail(error)
    except (OSError, ValueError) as exc:
        from llmplan.errors import Problem

        _fail(InputError([Problem(str(calibration), None, "", str(exc))]))
    save(result, rows, dep, out_dir)
    table = Table(title=f"{result['requests']} measured requests replayed through the simulator")
    for column in ("metric", "measured p50", "predicted p50", "err %", "measured p95",
                   "predicted p95", "err %", "measured p99", "predicted p99", "err %"):
        table.add_column(column, justify="right")
    for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        m, p, e = (result[k][metric] for k in ("measured", "predicted", "error_pct"))
        cells = [metric]
        for q in ("p50", "p95", "p99"):
            cells += [_fmt(m.get(q), 1), _fmt(p.get(q), 1), _fmt(e.get(q), 1)]
        table.add_row(*cells)
    thr = result["error_pct"]["throughput"]["requests_per_s"]
    out.print(table)
    console.print(f"throughput error {thr:+.1f}%; wrote {out_dir / 'validation.json'} and "
                  f"{out_dir / 'validation.html'}")


@app.command()
def stack(
    scenario: Annotated[Path, typer.Argument(help="Scenario file.")],
    deployment: Annotated[str, typer.Option(help="Local deployment to provision.")],
    stack_name: Annotated[str, typer.Option("--stack", help="Pulumi stack name.")] = "dev",
    cloud_model: Annotated[str | None, typer.Option(
        help="Also route to this cloud model (LiteLLM id, e.g. openai/gpt-4o-mini).")] = None,
    cloud_key_env: Annotated[str | None, typer.Option(
        help="Variable name the gateway reads the cloud API key from.")] = None,
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace.")] = "llm",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder of Pulumi.yaml.")] = Path("."),
) -> None:
    """Write Pulumi.<stack>.yaml so `pulumi up` deploys DEPLOYMENT as simulated."""
    from infra.config import GatewaySettings
    from infra.from_scenario import serving_from_deployment, stack_values, write_stack_file

    loaded, _, dep = _load_with_local(scenario, deployment, "--deployment")
    serving = serving_from_deployment(deployment, dep, loaded.catalog)
    gateway = None
    secrets = []
    if cloud_model:
        gateway = GatewaySettings(local_service=serving.name, local_model=serving.served_name,
                                  cloud_model=cloud_model,
                                  cloud_api_key_env=cloud_key_env or "CLOUD_API_KEY")
        secrets = ["gatewayMasterKey", "cloudApiKey"]
    values = stack_values("hybrid" if gateway else "local", serving, gateway, namespace)
    path = write_stack_file(out_dir / f"Pulumi.{stack_name}.yaml", values, secrets)
    console.print(f"wrote {path}: {serving.replicas} x {serving.tp} {serving.gpu} serving "
                  f"{serving.model_id}" + (f", gateway with fall-back to {cloud_model}"
                                            if cloud_model else ""))


@app.command()
def sweep(
    scenario: Annotated[Path, typer.Argument(help="Scenario file.")],
    base: Annotated[str | None, typer.Option(
        help="Local deployment to vary (default: the first).")] = None,
    gpus: Annotated[str | None, typer.Option(help="Comma-separated GPU ids.")] = None,
    replicas: Annotated[str, typer.Option(help="Comma-separated replica counts.")] = "1,2,4",
    routers: Annotated[str, typer.Option(help="Comma-separated routers.")] = "least_outstanding",
    scales: Annotated[str, typer.Option(help="Comma-separated traffic multipliers.")] = "1",
    workers: Annotated[int, typer.Option(min=1, help="Local worker processes.")] = 2,
    ray: Annotated[str | None, typer.Option(
        help="Run on Ray: a cluster address, or 'local' for a local instance.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where sweep.json goes.")] = Path(
        "sweep-out"),
) -> None:
    """Simulate a grid (GPU x replicas x router x traffic scale); table and Pareto front."""
    from llmplan.decide.sweep import grid, pareto_front, run_grid
    from llmplan.results import dumps_result
    from sim.router import ROUTERS

    loaded, name, base_dep = _load_with_local(scenario, base, "--base")
    try:
        gpu_list = gpus.split(",") if gpus else [base_dep.gpu]
        points = grid(gpu_list, [int(r) for r in replicas.split(",")], routers.split(","),
                      [float(x) for x in scales.split(",")])
    except ValueError as exc:
        _fail(InputError([_option_problem("--replicas/--scales", f"expected numbers: {exc}")]))
    unknown = [g for g in gpu_list if g not in loaded.catalog.gpus] + \
        [r for r in routers.split(",") if r not in ROUTERS]
    if unknown:
        _fail(InputError([_option_problem("--gpus/--routers", f"unknown: {', '.join(unknown)}")]))
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console, disable=not console.is_terminal, transient=True) as bar:
        task = bar.add_task(f"sweeping {name}", total=len(points))
        rows = run_grid(loaded, name, points, workers=workers, ray_address=ray,
                        on_done=lambda _: bar.advance(task))
    front = pareto_front(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sweep.json").write_text(dumps_result({"base": name, "points": rows,
                                                      "pareto_front": front}))
    table = Table(title=f"sweep of {name}: {len(points)} points (* = Pareto front)")
    for column in ("point", "SLO", "goodput", "TTFT p95 ms", "E2E p95 ms", "$/month",
                   "$/useful"):
        table.add_column(column, justify="right")
    on_front = {r["name"] for r in front}
    for r in rows:
        if r.get("error"):
            table.add_row(r["name"], "-", "-", "-", "-", "-", escape(r["error"][:40]))
            continue
        table.add_row(("* " if r["name"] in on_front else "") + r["name"],
                      "met" if r["slo_met"] else "missed", f"{r['goodput_fraction']:.1%}",
                      _fmt(r["ttft_p95_ms"]), _fmt(r["e2e_p95_ms"]), _fmt(r["monthly_usd"]),
                      _fmt(r["usd_per_useful_result"], 4))
    out.print(table)
    console.print(f"wrote {out_dir / 'sweep.json'}")


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
    import yaml

    from llmplan.usage import (
        parse_window,
        read_cloudwatch,
        read_usage_csv,
        traffic_sections,
        write_trace,
    )

    if (csv_file is None) == (cloudwatch_model is None):
        _fail(InputError([_option_problem("--csv/--bedrock-model", "give exactly one source")]))
    try:
        if csv_file is not None:
            periods = read_usage_csv(csv_file)
        else:
            if start is None:
                _fail(InputError([_option_problem("--start", "required with --bedrock-model")]))
            begin, finish = parse_window(start, end, hours)
            periods = read_cloudwatch(str(cloudwatch_model), begin, finish, region=region,
                                      endpoint_url=endpoint_url)
        out_dir.mkdir(parents=True, exist_ok=True)
        trace = out_dir / "usage-trace.csv"
        count = write_trace(periods, trace, task)
    except InputError as error:
        _fail(error)
    except ValueError as exc:
        _fail(InputError([_option_problem("--start/--end", str(exc))]))
    sections = traffic_sections(trace, periods)
    (out_dir / "traffic.yaml").write_text(
        "# Paste one of these as the scenario's traffic (trace: replay; diurnal: plan ahead)\n"
        + yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")
    rec = sections["recorded"]
    console.print(f"wrote {trace} ({count:,} requests over {rec['hours']:.1f} h, mean prompt "
                  f"{rec['mean_prompt_tokens']:.0f} / output {rec['mean_output_tokens']:.0f} "
                  f"tokens) and {out_dir / 'traffic.yaml'}")


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
