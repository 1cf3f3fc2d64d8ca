"""`llmplan calibrate` and `llmplan validate`: fit the step-time model to a real server's
load test, and replay a run through it to compare predicted and measured."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from llmplan.cli.options import not_an_input, option_problem, writing
from llmplan.cli.terminal import console, fail, out
from llmplan.errors import InputError, Problem


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
        fail(InputError([option_problem("--source", "expected records or vllm-metrics")]))
    not_an_input(out_file, measurements, "calibration.yaml")
    try:
        report = fit_runs(measurements, slots=slots, max_batched_tokens=max_batched_tokens,
                          kv_cache_tokens=kv_cache_tokens,
                          source="records" if source == "records" else "vllm-metrics")
    except InputError as error:
        fail(error)
    except UnicodeDecodeError:
        fail(InputError([Problem(", ".join(str(m) for m in measurements), None, "",
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
    with writing(out_file):
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
        fail(InputError([Problem(str(measurements), None, "server_props.json",
                                  f"another server than the calibration's ({'; '.join(differ)});"
                                  " expected a run of the calibrated server, or a calibration "
                                  "of this one")], title="nothing to validate"))


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
        fail(error)
    try:
        dep = calibrated_deployment(calibration)
    except (OSError, ValueError) as exc:
        fail(InputError([Problem(str(calibration), None, "", str(exc))]))
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
        fail(InputError([Problem(str(measurements), None, "", str(exc))]))
    measured = result.step_time_ratio_measured
    ratio = result.step_time_ratio or 1.0
    if result.step_time_ratio_range is not None and result.error_pct_at_run_speed is not None \
            and measured is not None and abs(ratio / measured - 1.0) > SPEED_AGREEMENT:
        notes.append(f"the same-size steps of the calibration's own runs read {measured:.3f}, "
                     f"not {ratio:.3f}: the model mispredicts this run's steps, and the errors "
                     f"at the run's speed hide it")
    result = result.model_copy(update={"notes": notes})
    with writing(out_dir):
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
