"""`llmplan import-trace`, `import-usage` and `import-records`: other tools' and providers'
files turned into traces, traffic sections and load-test records."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal

import typer

from llmplan.cli.options import check_out_file, check_out_folder, option_problem, writing
from llmplan.cli.terminal import console, fail, out
from llmplan.errors import InputError, Problem


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
        fail(InputError([Problem(str(source), None, "", "file not found")]))
    if out_file.resolve() == source.resolve():
        fail(InputError([option_problem("--out", f"{out_file} is the trace being read; "
                                                   "expected another file")]))
    check_out_file(out_file)
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
        with writing(out_file):
            path = write_trace(rows, out_file)
    except InputError as exc:
        fail(exc)
    except UnicodeDecodeError:
        fail(InputError([Problem(str(source), None, "", f"not a text file; expected the "
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
        fail(InputError([option_problem("--csv/--bedrock-model", "give exactly one source")]))
    check_out_folder(out_dir)
    if task and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", task):
        fail(InputError([option_problem("--task", f"got '{task}'; expected a task name a "
                                                    "scenario accepts: letters, digits, "
                                                    "_ . - (not first)")]))
    if csv_file is not None and (start is not None or end is not None):
        fail(InputError([option_problem("--start/--end", "apply to --bedrock-model only: a "
                                                         "usage CSV is read whole; expected "
                                                         "them left out (or the CSV cut to "
                                                         "the window)")]))
    if not math.isfinite(hours) or hours <= 0 or hours > 24 * 366:
        fail(InputError([option_problem("--hours", f"got {hours:g}; expected hours above 0, "
                                                     "at most a year")]))
    try:
        window = None
        if csv_file is not None:
            periods = read_usage_csv(csv_file)
        else:
            if start is None:
                fail(InputError([option_problem("--start", "required with --bedrock-model")]))
            begin, finish = parse_window(start, end, hours)
            # CloudWatch leaves out the minutes without calls: the window is what was read
            window = begin, finish
            periods = read_cloudwatch(str(cloudwatch_model), begin, finish, region=region,
                                      endpoint_url=endpoint_url)
        with writing(out_dir):
            imported = write_usage(periods, out_dir, task, window)
    except InputError as error:
        fail(error)
    except UnicodeDecodeError:
        fail(InputError([Problem(str(csv_file), None, "", "not a text file; expected a "
                                  "usage CSV")]))
    except ValueError as exc:
        fail(InputError([option_problem("--start/--end", str(exc))]))
    console.print(f"wrote {imported.trace} ({imported.requests:,} requests over "
                  f"{imported.hours:.1f} h, mean prompt {imported.mean_prompt_tokens:.0f} / "
                  f"output {imported.mean_output_tokens:.0f} tokens) and {imported.snippet}")


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
        fail(InputError([option_problem("--out", f"{out_dir} already holds files (a run's "
                                                   "records?); expected a new or empty "
                                                   "folder")]))
    try:
        with writing(out_dir):
            written = write_imported(export, out_dir, fmt)
    except InputError as error:
        fail(error)
    except UnicodeDecodeError:
        fail(InputError([Problem(str(export), None, "", "not a text file; expected AIPerf, "
                                  "GuideLLM or vllm bench JSON")]))
    for folder, rows in written:
        ok = sum(1 for r in rows if r.ok)
        console.print(f"wrote {folder / 'requests.jsonl'}: {len(rows):,} requests "
                      f"({ok:,} finished, {len(rows) - ok:,} failed)")
