"""The fit is right or says it is not: long and short prompts, one run and several.

The noisy synthetic server (synth.py) has known coefficients; its step times jitter by ~10%
like a shared machine's. On long prompts, steps that carry a prompt are 1-3% of all steps
and have the largest absolute residuals: a fit that trims the worst 5% of all steps drops
every one of them and reports a prompt-token cost of 0 (the failure this file pins down).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from synth import COEF, poisson_workload, serve, write_run
from typer.testing import CliRunner

from llmplan.cli import app
from llmplan.fidelity.calibrate import (
    CalibrationRejectedError,
    calibrate,
    fit_runs,
    read_measurements,
)
from llmplan.fidelity.fit import Fit, KindQuality, kv_split_note
from llmplan.fidelity.timeline import StepSample, steps
from llmplan.fidelity.validate import calibrated_deployment, compare
from llmplan.loadtests.records import RequestRecord
from llmplan.perf.steptime_spec import LinearStepTime


class Workload(NamedTuple):
    n: int
    prompt: tuple[int, int]
    output: tuple[int, int]
    rate: float
    coef: tuple[float, float, float, float]
    noise: float
    prefill_noise: float


# 40 long prompts: ~1% of ~3,000 steps carry a prompt; decode steps jitter 3%, the long
# compute-bound prefill steps 15%
LONG = Workload(40, (400, 1000), (200, 400), 0.6, (0.004, 0.0002, 0.003, 1e-6), 0.03, 0.15)
SHORT = Workload(300, (10, 80), (2, 40), 6.0, COEF, 0.1, 0.1)


def _run(folder: Path, seed: int, spec: Workload) -> Path:
    rows = poisson_workload(seed=seed, n=spec.n, rate=spec.rate, prompt=spec.prompt,
                            output=spec.output, noise=spec.noise,
                            prefill_noise=spec.prefill_noise, coef=spec.coef)
    return write_run(folder, rows)


def _with_slots(run: Path, slots: int) -> Path:
    """The run with llama.cpp's /props as a server of `slots` slots of 512 tokens saved it."""
    (run / "server_props.json").write_text(json.dumps(
        {"total_slots": slots, "default_generation_settings": {"n_ctx": 512},
         "model_path": "m.gguf"}))
    return run


def _close(st: LinearStepTime, coef: tuple[float, ...], rel: float) -> None:
    assert st.fixed_ms == pytest.approx(coef[0] * 1e3, rel=rel)
    assert st.per_prefill_token_us == pytest.approx(coef[1] * 1e6, rel=rel)
    assert st.per_decode_seq_us == pytest.approx(coef[2] * 1e6, rel=rel)


@pytest.mark.parametrize("seed", [3, 7, 9])
def test_long_prompts_keep_their_prefill_steps(tmp_path: Path, seed: int) -> None:
    # seed 7: trimming the worst 5% of all steps left no prefill step (prompt cost 0)
    run = _run(tmp_path / "long", seed, LONG)
    samples, _ = steps(json_rows(run))
    share = sum(1 for s in samples if s.prefill_tokens) / len(samples)
    assert share < 0.03                       # the trap: prompt steps are a small minority
    report = fit_runs(run, slots=64)
    assert report.rejected == [], [str(f) for f in report.rejected]
    _close(report.calibration.step_time, LONG.coef, rel=0.1)
    assert report.fit.r2 > 0.9
    assert report.fit.prefill.kept >= 0.9 * report.fit.prefill.steps


def json_rows(run: Path) -> list[RequestRecord]:
    return read_measurements(run)


@pytest.mark.parametrize("spec", [LONG, SHORT], ids=["long-prompts", "short-prompts"])
def test_several_noisy_runs_fit_together_and_predict_a_held_out_run(
        tmp_path: Path, spec: Workload) -> None:
    runs = [_run(tmp_path / f"r{i}", 20 + i, spec) for i in range(2)]
    calibration = calibrate(runs, slots=64)
    _close(calibration.step_time, spec.coef, rel=0.1)
    held_out = _run(tmp_path / "held-out", 99, spec)
    path = calibration.write(tmp_path / "calibration.yaml")
    result = compare(json_rows(held_out), calibrated_deployment(path))
    for metric in ("ttft_ms", "e2e_ms"):
        assert abs(result.error_pct[metric]["p50"]) < 10, (metric, result.error_pct[metric])


def test_too_few_prompt_steps_is_refused_with_how_to_fix(tmp_path: Path) -> None:
    # three long answers: thousands of decode steps, three steps that carry a prompt
    run = write_run(tmp_path / "few", serve([(0.0, 500, 400), (0.1, 600, 400),
                                             (0.2, 700, 400)]))
    with pytest.raises(CalibrationRejectedError) as caught:
        calibrate(run, slots=4)
    text = caught.value.render()
    assert re.search(r"only [0-3] of [\d,]+ timed steps carried a prompt", text), text
    assert "run a level with more arrivals" in text


def test_one_batch_size_is_refused(tmp_path: Path) -> None:
    # requests one after another: every decode step ran exactly one sequence
    arrivals = [(i * 2.0, 20 + i, 30) for i in range(40)]
    run = write_run(tmp_path / "serial", serve(arrivals))
    with pytest.raises(CalibrationRejectedError) as caught:
        calibrate(run, slots=4)
    assert "decode steps ran only at batch size 1" in caught.value.render()


def test_runs_from_different_server_settings_are_refused(tmp_path: Path) -> None:
    a = _with_slots(_run(tmp_path / "a", 1, SHORT), 4)
    b = _with_slots(_run(tmp_path / "b", 2, SHORT), 8)
    assert calibrate([a], slots=None).server.slots == 4
    with pytest.raises(Exception) as caught:
        calibrate([a, b])
    assert "total_slots" in str(caught.value) and "different server settings" in str(caught.value)


def test_cli_exits_non_zero_with_the_reason_and_writes_nothing(tmp_path: Path) -> None:
    run = write_run(tmp_path / "few", serve([(0.0, 500, 400), (0.1, 600, 400)]))
    out = tmp_path / "calibration.yaml"
    result = CliRunner().invoke(app, ["calibrate", str(run), "--out", str(out)])
    assert result.exit_code == 4, result.output
    assert "steps carried a prompt" in result.output and "Traceback" not in result.output
    assert not out.exists()
    forced = CliRunner().invoke(app, ["calibrate", str(run), "--out", str(out),
                                      "--accept-poor-fit"])
    assert forced.exit_code == 0, forced.output
    assert out.exists() and "not trusted" in forced.output
    # the file keeps the refusal, and a simulation timed by it repeats it
    from llmplan.perf.steptime_spec import Calibration
    assert "steps carried a prompt" in (Calibration.read(out).fit.rejected or "")
    scenario = tmp_path / "timed.yaml"
    scenario.write_text(f"""
name: timed
seed: 1
duration: 30
traffic: {{kind: poisson, rate_per_s: 0.2}}
tasks:
  - {{name: chat, prompt_tokens: {{kind: fixed, tokens: 100}},
     output_tokens: {{kind: fixed, tokens: 10}}}}
deployments:
  cpu: {{gpu: L4, model: SmolLM2-135M, step_time: {{kind: calibrated, file: {out.name}}}}}
""")
    simulated = CliRunner().invoke(app, ["simulate", str(scenario), "--out",
                                         str(tmp_path / "sim"), "--no-plan"])
    assert simulated.exit_code == 0, simulated.output
    assert "a calibration its quality gate refused" in " ".join(simulated.output.split())


def test_prompts_of_nearly_one_length_are_called_an_extrapolation() -> None:
    """Three prompt lengths a token apart (one length in all but name) get the same advice
    as one: vary the prompt lengths; prompts spread over a wide range get none."""
    from llmplan.fidelity.fit import identifiability
    from llmplan.fidelity.timeline import StepSample

    def samples(prompts: list[int]) -> list[StepSample]:
        return [StepSample(0.1, p, 0, 0) for p in prompts] + \
            [StepSample(0.02, 0, d, 100 * d) for d in (1, 2, 3) for _ in range(20)]

    narrow = [f for f in identifiability(samples([107, 108, 109] * 10))[1]
              if f.field == "per_prefill_token_us"]
    assert len(narrow) == 1 and "107-109" in str(narrow[0]) and "vary" in str(narrow[0])
    wide = [f for f in identifiability(samples([60, 140, 300, 620] * 8))[1]
            if f.field == "per_prefill_token_us"]
    assert wide == []


def test_a_poor_fit_on_prompts_of_one_length_is_told_to_vary_them() -> None:
    """When the prompts barely varied, 'run more requests' would repeat the same data:
    a rejected fit's fix then says to vary the prompt lengths first."""
    from dataclasses import replace

    from llmplan.fidelity.fit import fit_step_time, identifiability, quality_gate
    from llmplan.fidelity.timeline import StepSample

    def samples(prompts: list[int]) -> list[StepSample]:
        return [StepSample(0.1 + p * 1e-4, p, 0, 0) for p in prompts] + \
            [StepSample(0.02 + 0.001 * d, 0, d, 100 * d) for d in (1, 2, 3) for _ in range(20)]

    for prompts, told in (([107, 108, 109] * 10, True), ([60, 140, 300, 620] * 8, False)):
        found = samples(prompts)
        blocking, advisory = identifiability(found)
        poor = replace(fit_step_time(found, [], []), r2=0.1)
        reasons, _ = quality_gate(poor, blocking, advisory)
        r2 = [f for f in reasons if f.field == "fit.r2"]
        assert len(r2) == 1 and ("prompt lengths vary" in str(r2[0])) is told


def test_records_of_two_servers_in_one_file_are_refused(tmp_path: Path) -> None:
    """Two runs' records joined into one file would be fitted as one server's steps:
    the records name their target, so a run of several is refused."""
    rows = poisson_workload(seed=3, n=120, rate=3.0, prompt=(20, 60), output=(5, 30),
                            noise=0.05, prefill_noise=0.05, coef=COEF)
    mixed = [r.model_copy(update={"target": "other"}) if i % 3 == 0 else r
             for i, r in enumerate(rows)]
    run = write_run(tmp_path / "mixed", mixed)
    result = CliRunner().invoke(app, ["calibrate", str(run), "--out", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2 and "records of 2 targets" in result.output
    assert not (tmp_path / "c.yaml").exists()


def test_validating_against_another_servers_run_is_refused(tmp_path: Path) -> None:
    """A calibration of a 4-slot server checked against a 2-slot server's run would show
    the servers' difference as the model's error: refused, naming both."""
    a = _with_slots(_run(tmp_path / "a", 1, SHORT), 4)
    b = _with_slots(_run(tmp_path / "b", 2, SHORT), 2)
    calibration = tmp_path / "cal.yaml"
    assert CliRunner().invoke(app, ["calibrate", str(a), "--out", str(calibration)]) \
        .exit_code == 0
    refused = CliRunner().invoke(app, ["validate", str(b), "--calibration", str(calibration),
                                       "--out", str(tmp_path / "v")])
    assert refused.exit_code == 2, refused.output
    assert "slots 2 here, 4 calibrated" in " ".join(refused.output.split())
    same = CliRunner().invoke(app, ["validate", str(a), "--calibration", str(calibration),
                                    "--out", str(tmp_path / "v")])
    assert same.exit_code == 0, same.output
    assert "failed" not in same.output and "still running" not in same.output
    # its own run: the errors measure the fit, not a prediction, and the files say so too
    assert "one the calibration was fitted on" in " ".join(same.output.split())
    written = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert any("fitted on" in note for note in written["notes"])
    assert "fitted on" in (tmp_path / "v" / "validation.html").read_text()
    # the same slots and context, another model: refused too (a moved file is the same one)
    other = _with_slots(_run(tmp_path / "c", 2, SHORT), 4)
    props = json.loads((other / "server_props.json").read_text())
    (other / "server_props.json").write_text(json.dumps({**props,
                                                         "model_path": "/x/llama-70b.gguf"}))
    wrong = CliRunner().invoke(app, ["validate", str(other), "--calibration",
                                     str(calibration), "--out", str(tmp_path / "v3")])
    assert wrong.exit_code == 2, wrong.output
    assert "model file llama-70b.gguf here, m.gguf calibrated" in " ".join(wrong.output.split())
    (other / "server_props.json").write_text(json.dumps({**props, "model_path": "/y/m.gguf"}))
    moved = CliRunner().invoke(app, ["validate", str(other), "--calibration",
                                     str(calibration), "--out", str(tmp_path / "v3")])
    assert moved.exit_code == 0, moved.output
    # requests a --duration cut off are not failures of the server
    cut = tmp_path / "cut"
    shutil.copytree(a, cut)
    lines = (cut / "requests.jsonl").read_text().splitlines()
    for i in range(len(lines) - 3, len(lines)):
        row = json.loads(lines[i])
        row["error_class"], row["error"] = "cancelled", "the run stopped"
        lines[i] = json.dumps(row)
    (cut / "requests.jsonl").write_text("\n".join(lines) + "\n")
    noted = CliRunner().invoke(app, ["validate", str(cut), "--calibration", str(calibration),
                                     "--out", str(tmp_path / "v2")])
    assert noted.exit_code == 0, noted.output
    said = " ".join(noted.output.split())
    assert "3 of" in said and "still running when the run stopped" in said
    assert "failed" not in said and "fitted on" not in said
    written = json.loads((tmp_path / "v2" / "validation.json").read_text())
    assert any("still running" in note for note in written["notes"])


def test_a_run_that_sent_nothing_says_so(tmp_path: Path) -> None:
    run = tmp_path / "empty"
    run.mkdir()
    (run / "requests.jsonl").write_text("")
    result = CliRunner().invoke(app, ["calibrate", str(run), "--out", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2 and "no requests in it" in result.output
    missing = CliRunner().invoke(app, ["calibrate", str(tmp_path / "nope"),
                                       "--out", str(tmp_path / "c.yaml")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_a_run_with_far_longer_contexts_than_the_calibration_says_its_kv_cost_is_extrapolated(
        tmp_path: Path) -> None:
    """Calibrated on prompts of 10-80 tokens, checked on prompts of 400-1,000: the
    per-KV-token cost is then an extrapolation, and validate says so with both contexts;
    so is the prefill (how its cost splits between tokens and attention pairs, measured
    only on short prompts), and validate says so with the run's median prompt and the
    calibration runs' longest, both read here from the records."""
    short = _with_slots(_run(tmp_path / "short", 1, SHORT), 4)
    long = _with_slots(_run(tmp_path / "long", 2, LONG), 4)
    calibration = tmp_path / "cal.yaml"
    assert CliRunner().invoke(app, ["calibrate", str(short), "--out", str(calibration)]) \
        .exit_code == 0
    far = CliRunner().invoke(app, ["validate", str(long), "--calibration", str(calibration),
                                   "--out", str(tmp_path / "v")])
    assert far.exit_code == 0, far.output
    said = " ".join(far.output.split())
    assert "tokens of context (median)" in said and "is extrapolated" in said
    longest = max(r.prompt_tokens or 0 for r in read_measurements(short) if r.ok)
    median = float(np.median([r.prompt_tokens for r in read_measurements(long) if r.ok]))
    assert (f"this run's prompts compute {median:,.0f} tokens (median), "
            f"{median / longest:.1f} times the calibration runs' longest ({longest:,})") \
        in said, said
    near = CliRunner().invoke(app, ["validate", str(short), "--calibration", str(calibration),
                                    "--out", str(tmp_path / "v2")])
    assert "extrapolated" not in " ".join(near.output.split())


def test_a_fit_that_puts_every_sequences_cost_in_its_kv_tokens_says_so() -> None:
    """Batch size and KV tokens moving together (correlation ~0.9) let the fit put a
    sequence's whole cost on its context: a per-sequence cost of 0 is then noted."""
    rng = np.random.default_rng(4)
    samples = []
    for _ in range(400):
        d = int(rng.integers(1, 5))
        k = int(d * rng.uniform(60, 140))
        samples.append(StepSample(duration_s=0.02 + 2e-4 * k, prefill_tokens=0,
                                  decode_seqs=d, kv_tokens=k))
    quality = KindQuality(steps=400, kept=400, median_abs_error_pct=1.0, bias_pct=0.0)
    fit = Fit(coefficients_s=(0.02, 1e-4, 0.0, 2e-4, 0.0), client_overhead_s=0.0,
              samples=400, cold_starts=0, r2=0.9, rmse_ms=1.0, median_abs_error_pct=1.0,
              prefill=quality, decode=quality, median_cold_ttft_s=None)
    note = kv_split_note(fit, samples)
    assert note is not None and "not told apart" in note.problem
    assert "at most" in note.problem
    # with a per-sequence cost found, or contexts that vary apart from the batch, no note
    split = Fit(**{**fit.__dict__, "coefficients_s": (0.02, 1e-4, 3e-3, 2e-4, 0.0)})
    assert kv_split_note(split, samples) is None
    apart = [StepSample(duration_s=s.duration_s, prefill_tokens=0, decode_seqs=s.decode_seqs,
                        kv_tokens=int(rng.integers(50, 600))) for s in samples]
    assert kv_split_note(fit, apart) is None
    # the other way round: a KV read that costs nothing is the fit's guess too
    free_reads = Fit(**{**fit.__dict__, "coefficients_s": (0.02, 1e-4, 3e-3, 0.0, 0.0)})
    note = kv_split_note(free_reads, samples)
    assert note is not None and "cost per KV token 0" in note.problem


def test_a_speed_read_the_kv_cost_cannot_move_to_the_reference_is_not_given() -> None:
    """The run's steps are moved to the calibration's contexts at the fitted KV-token cost;
    when that cost takes a step below nothing (a cost fitted on short contexts, long ones
    here) there is no speed read: a ratio of step times is never negative."""
    from llmplan.fidelity.validate import _measured_speed
    from llmplan.perf.steptime_spec import (
        Calibration,
        CalibrationEngine,
        CalibrationServer,
        FitQuality,
        SpeedPoint,
    )

    def calibration(per_kv_token_ns: float) -> Calibration:
        return Calibration(
            source="t", server=CalibrationServer(slots=4),
            step_time=LinearStepTime(fixed_ms=20, per_prefill_token_us=100,
                                     per_decode_seq_us=0, per_kv_token_ns=per_kv_token_ns),
            engine=CalibrationEngine(max_num_seqs=4, max_num_batched_tokens=512),
            client_overhead_ms=0,
            fit=FitQuality(steps=100, cold_starts=0, r2=0.9, rmse_ms=1, median_abs_error_pct=1,
                           requests=10),
            speed_reference=[SpeedPoint(decode_seqs=2, median_ms=30, median_kv_tokens=200,
                                        steps=50, mean_ms=30, mean_kv_tokens=200)])

    # 2 sequences of 600 tokens each, 29 ms a step
    run = [StepSample(duration_s=0.029, prefill_tokens=0, decode_seqs=2, kv_tokens=1200)] * 60
    assert _measured_speed(run, calibration(5_000)) == pytest.approx(
        (29 - 5e-3 * 1000) / 30)
    assert _measured_speed(run, calibration(214_000)) is None


def test_requests_without_a_prompt_count_are_not_silently_left_out(tmp_path: Path) -> None:
    """A server that sends no usage leaves records without prompt_tokens: the steps they ran
    in cannot be rebuilt, so calibrate says that, not "load the server with concurrent
    requests" or "run more requests"."""
    run = _with_slots(_run(tmp_path / "a", 1, SHORT), 4)
    lines = (run / "requests.jsonl").read_text().splitlines()
    for i in range(0, len(lines), 2):          # half of them
        row = json.loads(lines[i])
        row["prompt_tokens"] = None
        lines[i] = json.dumps(row)
    (run / "requests.jsonl").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["calibrate", str(run), "--out", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "finished requests carry no prompt token count" in said
    assert not (tmp_path / "c.yaml").exists()


def test_the_runs_a_calibration_was_fitted_on_are_found_as_folders_or_files(
        tmp_path: Path) -> None:
    from llmplan.cli.calibration import _fitted_runs
    calibration = tmp_path / "cal" / "calibration.yaml"
    found = _fitted_runs("../runs/a, ../runs/b (vLLM /metrics)", calibration)
    runs = (tmp_path / "runs").resolve()
    assert {runs / "a", runs / "a" / "requests.jsonl", runs / "b"} <= found


def test_a_run_whose_every_request_failed_is_refused_as_such(tmp_path: Path) -> None:
    """Every request refused (HTTP 400): the reason is the failures, not a lack of load."""
    rows = [r.model_copy(update={"status": 400, "error_class": "http_4xx", "ttft_ms": None,
                                 "itl_ms": [], "e2e_ms": 3.0, "output_tokens": None})
            for r in serve([(i * 0.1, 500, 40) for i in range(6)])]
    run = write_run(tmp_path / "refused", rows)
    result = CliRunner().invoke(app, ["calibrate", str(run), "--out",
                                      str(tmp_path / "c.yaml")])
    assert result.exit_code != 0
    said = " ".join(result.output.split())
    assert "no request of this run finished (http_4xx: 6)" in said, said
    assert "load the server" not in said


def test_steps_too_long_to_be_decode_steps_stay_out_of_the_speed_reference() -> None:
    """Twenty one-sequence decode steps of about 27 ms and three of 0.9-2.1 s (prompt steps
    the timeline could not place): the reference's mean is the decode steps', not 241 ms,
    and a later run with the same three reads as fast as its decode steps say."""
    from llmplan.fidelity.calibrate import speed_reference
    from llmplan.fidelity.timeline import StepSample

    decodes = [StepSample(duration_s=0.027 + 0.0001 * i, prefill_tokens=0, decode_seqs=1,
                          kv_tokens=300) for i in range(20)]
    strays = [StepSample(duration_s=t, prefill_tokens=0, decode_seqs=1, kv_tokens=300)
              for t in (0.894, 1.552, 2.132)]
    [point] = speed_reference(decodes + strays) or []
    assert point.steps == 20
    assert point.mean_ms == pytest.approx(27.95, abs=0.01)


DATA = Path(__file__).parent / "data"


def test_the_gate_judges_the_token_table_it_keeps_not_the_line_it_beat() -> None:
    """A real llama.cpp run (SmolLM2-135M, 4 slots, one CPU thread): the kept token table
    charges 4 tokens 44 ms and 166 tokens 1,006 ms, while the line it beat put every
    prompt's cost in its prefill pairs (a prompt-token cost of 0). The line's 0 once
    refused the table's good fit."""
    report = fit_runs(DATA / "llamacpp_quick1")
    fit = report.fit
    assert fit.table is not None and fit.coefficients_s[1] == 0.0     # the trap
    # refused only because its prompts were all of one length (a quick run's), which
    # leaves a prompt token's cost and its attention's one number: not for the line's 0
    assert [f.field for f in report.rejected] == ["per_prefill_pair_ns"], \
        [str(f) for f in report.rejected]
    assert fit.prompt_token_s() > 1e-3                     # ms a prompt token, as measured
    assert abs(fit.prefill.bias_pct or 0.0) < 1 and fit.r2 > 0.9


def _table_fit(step_ms: tuple[float, ...], *, line: tuple[float, ...],
               per_pair_s: float = 0.0) -> Fit:
    from llmplan.fidelity.fit import TokenTable

    quality = KindQuality(steps=100, kept=95, median_abs_error_pct=5.0, bias_pct=0.0)
    table = TokenTable(tokens=(1, 2, 3, 4, 53, 166), step_s=tuple(v / 1e3 for v in step_ms),
                       per_kv_token_s=0.0, per_pair_s=per_pair_s, decode_points=4)
    return Fit(coefficients_s=line, client_overhead_s=0.0,  # type: ignore[arg-type]
               samples=200, cold_starts=0, r2=0.9, rmse_ms=1.0, median_abs_error_pct=5.0,
               prefill=quality, decode=quality, median_cold_ttft_s=None, table=table)


def test_a_kept_table_without_a_prompt_cost_is_still_refused() -> None:
    """The gate reads the kept table: steps that carried a prompt costing no more than the
    largest decode batch (flat above it) are a prompt-token cost of 0, whatever the line
    said; one that rises passes though its line put the cost in the pairs."""
    from llmplan.fidelity.fit import quality_gate

    rising = _table_fit((21, 28, 41, 44, 384, 1006), line=(0.012, 0.0, 0.009, 0.0, 1.2e-4))
    assert not [f for f in quality_gate(rising, [])[0] if f.field == "per_prefill_token_us"]
    flat = _table_fit((21, 28, 41, 44, 44, 44), line=(0.012, 3e-4, 0.009, 0.0, 0.0))
    [reason] = [f for f in quality_gate(flat, [])[0] if f.field == "per_prefill_token_us"]
    assert "token table's prompt-token cost is 0" in str(reason)
    # a table that charges a step of one sequence nothing is no step model either
    free = _table_fit((0, 28, 41, 44, 384, 1006), line=(0.012, 3e-4, 0.009, 0.0, 0.0))
    assert [f for f in quality_gate(free, [])[0] if f.field == "fixed_ms"]


def test_a_server_whose_prompts_cost_nothing_is_refused_through_its_table() -> None:
    """End to end: decode steps that no line fits (22, 47, 72, 76 ms for 1-4 sequences)
    keep the table, and steps that carried a prompt took what their decodes alone take:
    the table is flat above the decode sizes and the fit is refused for it."""
    h = {1: 0.022, 2: 0.047, 3: 0.072, 4: 0.076}
    rng = np.random.default_rng(1)
    samples = [StepSample(h[d] * float(rng.uniform(0.98, 1.02)), 0, d, 60 * d)
               for d in (1, 2, 3, 4) for _ in range(40)]
    samples += [StepSample(h[d], int(p), d, 60 * d, int(p) * (int(p) + 1) // 2)
                for d, p in zip(rng.integers(1, 4, 40), rng.integers(20, 300, 40),
                                strict=True)]
    from llmplan.fidelity.fit import fit_step_time, identifiability, quality_gate

    fit = fit_step_time(samples, [], [])
    assert fit.table is not None
    reasons, _ = quality_gate(fit, *identifiability(samples))
    assert [f for f in reasons if f.field == "per_prefill_token_us"
            and "prompt-token cost is 0" in str(f)], [str(f) for f in reasons]


def test_a_bias_either_way_says_more_or_less() -> None:
    from dataclasses import replace

    from llmplan.fidelity.fit import quality_gate

    fit = _table_fit((21, 28, 41, 44, 384, 1006), line=(0.012, 0.0, 0.009, 0.0, 0.0))
    for bias, said in ((16.0, "take 16% less time"), (-16.0, "take 16% more time")):
        odd = replace(fit, decode=replace(fit.decode, bias_pct=bias))
        [reason] = [f for f in quality_gate(odd, [])[0] if f.field == "fit.decode"]
        assert said in str(reason) and "-16%" not in str(reason), str(reason)


def test_prompts_prefilled_on_an_idle_server_are_not_called_missing(tmp_path: Path) -> None:
    """One request at a time: every prompt is prefilled alone, a step with no previous
    step's end, so none of the timed steps carries one; the message says where they went
    rather than that there were none."""
    arrivals = [(i * 2.0, 60 + 10 * i, 30) for i in range(12)]
    run = write_run(tmp_path / "serial", serve(arrivals))
    with pytest.raises(CalibrationRejectedError) as caught:
        calibrate(run, slots=4)
    said = " ".join(caught.value.render().split())
    assert re.search(r"only 0 of [\d,]+ timed steps carried a prompt", said), said
    assert "12 more prompts were prefilled on an idle server" in said


def test_slots_below_the_batches_the_steps_held_are_refused(tmp_path: Path) -> None:
    """--slots below the concurrency the rebuilt steps show (many steps of it) describes
    another server: refused like a KV cache smaller than a request, not just noted."""
    run = _with_slots(_run(tmp_path / "a", 1, SHORT), 64)
    samples, _ = steps(json_rows(run))
    sizes: dict[int, int] = {}
    for sample in samples:
        sizes[sample.decode_seqs] = sizes.get(sample.decode_seqs, 0) + 1
    often = max(d for d, n in sizes.items() if n >= 5)
    result = CliRunner().invoke(app, ["calibrate", str(run), "--slots", str(often - 1),
                                      "--out", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert f"--slots: {often - 1}, but" in said and f"{often} or more" in said, said
    assert not (tmp_path / "c.yaml").exists()
    assert fit_runs(run, slots=often).calibration.engine.max_num_seqs == often


def _with_target(run: Path, kind: str, model: str, url: str) -> Path:
    (run / "config.json").write_text(json.dumps(
        {"target": {"kind": kind, "model": model, "base_url": url}}))
    return run


def test_runs_of_different_engines_or_models_are_refused_naming_each(tmp_path: Path) -> None:
    """A llama.cpp run and a vLLM run have no setting in common to differ in: their
    engines and models tell them apart, and the refusal names each run's."""
    llama = _with_target(_with_slots(_run(tmp_path / "llama", 1, SHORT), 4), "llamacpp",
                         "smol", "http://127.0.0.1:1")
    vllm = _with_target(_run(tmp_path / "vllm", 2, SHORT), "vllm", "fake", "http://127.0.0.1:2")
    result = CliRunner().invoke(app, ["calibrate", str(vllm), str(llama), "--accept-poor-fit",
                                      "--out", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "the runs come from different servers" in said
    assert f"{vllm}: engine vllm, model fake, at http://127.0.0.1:2" in said, said
    assert f"{llama}: engine llama.cpp, model m.gguf, at http://127.0.0.1:1" in said, said
    assert not (tmp_path / "c.yaml").exists()
    # two vLLM runs serving different models
    other = _with_target(_run(tmp_path / "other", 3, SHORT), "vllm", "big", "http://127.0.0.1:2")
    with pytest.raises(Exception, match="different servers"):
        fit_runs([vllm, other], slots=64)
    # llama.cpp answers to any model name: its model file decides
    renamed = _with_target(_with_slots(_run(tmp_path / "renamed", 4, SHORT), 4), "llamacpp",
                           "another-name", "http://127.0.0.1:3")
    assert fit_runs([llama, renamed]).calibration.server.model_file == "m.gguf"


def test_prompts_of_one_length_cannot_split_a_token_from_its_attention(tmp_path: Path) -> None:
    """Every quick run sends prompts of one length: their attention pairs are then a fixed
    multiple of their tokens (here 100 computed after a 24-token cached template: 74.5
    pairs a token), and the fit splits one cost per token between the two coefficients by
    guess, which a longer prompt's prefill is extrapolated on. Refused, saying so; the
    same run fitted with one of 400-token prompts measures both (the server's own
    coefficients, known here, are recovered)."""
    coef = (0.004, 0.0004, 0.003, 1e-6, 2e-6)    # fixed, token, sequence, KV token, pair

    def run(name: str, prompt: int, seed: int) -> Path:
        rng = np.random.default_rng(seed)
        times = np.cumsum(rng.exponential(1 / 3.0, 160))
        rows = serve([(float(t), prompt + 24, int(rng.integers(10, 40))) for t in times],
                     coef=coef, cached=24, noise=0.05, seed=seed)
        return write_run(tmp_path / name, rows)

    short = run("short", 100, 1)
    with pytest.raises(CalibrationRejectedError) as caught:
        calibrate(short, slots=64)
    text = " ".join(caught.value.render().split())
    assert "per_prefill_pair_ns" in text and "attention's share nowhere" in text, text
    assert "about 74 (query, key) pairs" in text, text      # 24 + 101 / 2 a token
    assert "calibrate run-a run-b" in text

    st = calibrate([short, run("long", 400, 2)], slots=64).step_time
    assert isinstance(st, LinearStepTime)
    assert st.per_prefill_token_us == pytest.approx(coef[1] * 1e6, rel=0.2)
    assert st.per_prefill_pair_ns == pytest.approx(coef[4] * 1e9, rel=0.2)


def test_a_simulation_with_far_longer_prompts_than_the_calibration_says_so(
        tmp_path: Path) -> None:
    """A deployment timed by a calibration of 10-80-token prompts, simulated on 600-token
    ones: its prefill is extrapolated, and simulate says so with both figures, as validate
    does of a measured run. Prompts as short as the calibration's, or long only by a shared
    prefix the deployment caches, get no such note."""
    short = _with_slots(_run(tmp_path / "short", 1, SHORT), 4)
    calibration = tmp_path / "cal.yaml"
    assert CliRunner().invoke(app, ["calibrate", str(short), "--out", str(calibration)]) \
        .exit_code == 0
    longest = max(r.prompt_tokens or 0 for r in read_measurements(short) if r.ok)

    def simulated(name: str, prompt: str, caching: str = "vllm") -> str:
        scenario = tmp_path / f"{name}.yaml"
        scenario.write_text(f"""
name: {name}
seed: 1
duration: 30
traffic: {{kind: poisson, rate_per_s: 0.2}}
tasks:
  - {{name: chat, {prompt}, output_tokens: {{kind: fixed, tokens: 10}}}}
deployments:
  cpu: {{gpu: L4, model: SmolLM2-135M, engine: {{prefix_caching: {caching}}},
        step_time: {{kind: calibrated, file: {calibration.name}}}}}
""")
        result = CliRunner().invoke(app, ["simulate", str(scenario), "--out",
                                          str(tmp_path / name), "--no-plan"])
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    far = simulated("far", "prompt_tokens: {kind: fixed, tokens: 600}")
    assert (f"deployment 'cpu' is timed by cal.yaml, whose runs computed prompts of at most "
            f"{longest:,} tokens, and this scenario's prompts compute 600 tokens (median), "
            f"{600 / longest:.1f} times as many") in far, far
    assert "is extrapolated; calibrate with prompts as long as these" in far
    near = simulated("near", "prompt_tokens: {kind: fixed, tokens: 40}")
    assert "whose runs computed prompts" not in near
    prefixed = ("prompt_tokens: {kind: fixed, tokens: 40}, "
                "shared_prefix: {groups: 1, tokens: {kind: fixed, tokens: 560}}")
    assert "whose runs computed prompts" not in simulated("cached", prefixed)
    uncached = simulated("uncached", prefixed, caching="off")
    assert "this scenario's prompts compute 600 tokens (median)" in uncached, uncached
