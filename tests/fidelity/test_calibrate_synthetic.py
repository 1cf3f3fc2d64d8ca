"""Calibration recovers known step-time coefficients from records a known server produced.

The records come from a tiny continuous-batching server written here (not the simulator):
every step prefills the prompts that arrived, decodes one token for each running request,
and lasts fixed + per_prefill x P + per_decode x D + per_kv x K; the client sees each token
`overhead` later. Fitting its records must give the coefficients back, and the calibrated
simulator must then predict the same latencies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from synth import COEF, OVERHEAD_S, poisson_workload, serve, write_run

from llmplan.fidelity.calibrate import calibrate
from llmplan.fidelity.fit import fit_step_time
from llmplan.fidelity.timeline import ColdStart, first_tokens, steps
from llmplan.fidelity.validate import calibrated_deployment, compare
from llmplan.loadtests.records import RequestRecord


def _workload(seed: int = 3, n: int = 300, rate: float = 6.0) -> list[RequestRecord]:
    return poisson_workload(seed=seed, n=n, rate=rate, prompt=(10, 80), output=(2, 40))


def test_steps_are_rebuilt_from_client_timings() -> None:
    samples, cold = steps(_workload())
    assert len(samples) > 500 and len(cold) >= 3
    for s in samples[:200]:
        expected = COEF[0] + COEF[1] * s.prefill_tokens + COEF[2] * s.decode_seqs \
            + COEF[3] * s.kv_tokens
        assert s.duration_s == pytest.approx(expected, rel=1e-9)


def test_a_late_first_token_stays_in_its_step() -> None:
    # the first chunk arrives 4 ms after the step's other tokens (past the 2 ms a step's
    # tokens cluster in, as on a loaded llama.cpp server): the step is not split in two
    # and keeps its prompt
    arrivals = poisson_workload(seed=5, n=200, rate=6.0, prompt=(10, 80), output=(2, 40))
    on_time = steps(arrivals)[0]
    rng_free = [(r.send_ts - 1000.0, r.prompt_tokens or 0, r.output_tokens or 0)
                for r in sorted(arrivals, key=lambda r: r.id)]
    late = steps(serve(rng_free, first_token_lag_s=0.004))[0]
    assert len(late) == len(on_time) > 300
    assert sum(s.prefill_tokens for s in late) == sum(s.prefill_tokens for s in on_time)
    exact = 0
    for s in late:
        expected = COEF[0] + COEF[1] * s.prefill_tokens + COEF[2] * s.decode_seqs \
            + COEF[3] * s.kv_tokens
        # a step after one that only prefilled (the server had nothing else running) is
        # timed from that step's late first token: short by the lag, never more
        assert expected - 0.004 - 1e-9 <= s.duration_s <= expected + 1e-9
        exact += s.duration_s == pytest.approx(expected, rel=1e-9)
    assert exact > 0.95 * len(late)


def _write_records(folder: Path, rows: list[RequestRecord]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requests.jsonl").write_text("".join(r.to_line() for r in rows))
    return folder


def test_calibration_recovers_the_coefficients_and_overhead(tmp_path: Path) -> None:
    rows = _workload()
    _write_records(tmp_path, rows)
    calibration = calibrate(tmp_path, slots=64)
    st = calibration.step_time
    assert st.fixed_ms == pytest.approx(COEF[0] * 1e3, rel=1e-4)
    assert st.per_prefill_token_us == pytest.approx(COEF[1] * 1e6, rel=1e-4)
    assert st.per_decode_seq_us == pytest.approx(COEF[2] * 1e6, rel=1e-4)
    assert st.per_kv_token_ns == pytest.approx(COEF[3] * 1e9, rel=1e-4)
    assert calibration.client_overhead_ms == pytest.approx(OVERHEAD_S * 1e3, rel=1e-3)
    assert calibration.fit.r2 > 0.9999
    # the calibrated simulator replays those requests to the same latencies
    path = calibration.write(tmp_path / "calibration.yaml")
    result = compare(rows, calibrated_deployment(path))
    for metric in ("ttft_ms", "e2e_ms", "tpot_ms"):
        for q, err in result.error_pct[metric].items():
            assert abs(err) < 0.5, (metric, q, err)


def test_several_runs_are_fitted_together(tmp_path: Path) -> None:
    """Two runs at different rates, each rebuilt on its own clock, one fit over both."""
    from typer.testing import CliRunner

    from llmplan.cli import app

    first = _write_records(tmp_path / "a", _workload(seed=3, n=150, rate=4.0))
    second = _write_records(tmp_path / "b", _workload(seed=5, n=150, rate=9.0))
    alone = [calibrate(run, slots=64).fit.steps for run in (first, second)]
    both = calibrate([first, second], slots=64)
    assert both.fit.steps == sum(alone)
    assert both.fit.requests == 300
    assert both.step_time.per_decode_seq_us == pytest.approx(COEF[2] * 1e6, rel=1e-4)
    result = CliRunner().invoke(app, ["calibrate", str(first), str(second), "--slots", "64",
                                      "--out", str(tmp_path / "c.yaml")])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert written["fit"]["steps"] == sum(alone)
    assert str(first) in written["source"] and str(second) in written["source"]


def test_cached_prompt_tokens_are_not_counted_as_computed(tmp_path: Path) -> None:
    """A server that serves a 30-token template from its cache: the fit prices computed
    tokens, and the replay feeds the simulator what the server computed. (The simulator has
    no prompt cache, so the cached prefix's KV reads are left out of the replay: this server
    reads KV cheaply, as GPUs do, so that is negligible here.)"""
    import numpy as np
    from synth import serve

    coef = (0.004, 0.0002, 0.003, 1e-7)
    rng = np.random.default_rng(8)
    times = np.cumsum(rng.exponential(1 / 6.0, 300))
    rows = serve([(float(t), int(rng.integers(40, 110)), int(rng.integers(2, 40)))
                  for t in times], cached=30, coef=coef)
    _write_records(tmp_path, rows)
    calibration = calibrate(tmp_path, slots=64)
    assert calibration.step_time.per_prefill_token_us == pytest.approx(coef[1] * 1e6, rel=1e-4)
    result = compare(rows, calibrated_deployment(calibration.write(tmp_path / "c.yaml")))
    # (the KV reads left out shift a few arrivals by one ~10 ms step: a few % at p90)
    for metric in ("ttft_ms", "e2e_ms"):
        for q, err in result.error_pct[metric].items():
            assert abs(err) < 5, (metric, q, err)
    assert abs(result.error_pct["e2e_ms"]["p50"]) < 2


def test_prefill_attention_over_a_cached_prefix_is_fitted(tmp_path: Path) -> None:
    """A server whose prompts find 400 tokens in its cache and compute 10-60 more: the new
    tokens attend to the whole prefix (n x 400 + n (n + 1) / 2 pairs). The fit recovers the
    per-pair cost next to the others (the simulator's side: tests/sim/test_single_request)."""
    coef = (0.004, 0.0002, 0.003, 0.000001, 0.000002)
    rng = np.random.default_rng(5)
    times = np.cumsum(rng.exponential(1 / 2.0, 400))
    rows = serve([(float(t), 400 + int(rng.integers(10, 60)), int(rng.integers(2, 40)))
                  for t in times], coef=coef, cached=400)
    calibration = calibrate(write_run(tmp_path / "hits", rows), slots=64)
    st = calibration.step_time
    assert st.per_prefill_pair_ns == pytest.approx(coef[4] * 1e9, rel=0.05)
    assert st.per_prefill_token_us == pytest.approx(coef[1] * 1e6, rel=0.1)
    assert st.per_kv_token_ns == pytest.approx(coef[3] * 1e9, rel=0.1)
    assert st.fixed_ms == pytest.approx(coef[0] * 1e3, rel=0.1)
    # a server without that cost gets none
    plain = serve([(float(t), 400 + int(rng.integers(10, 60)), int(rng.integers(2, 40)))
                   for t in times], coef=coef[:4], cached=400)
    assert calibrate(write_run(tmp_path / "plain", plain), slots=64).step_time \
        .per_prefill_pair_ns == pytest.approx(0.0, abs=0.05 * coef[4] * 1e9)


def test_calibrate_prints_every_coefficient_within_100_columns(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from llmplan.cli import app

    folder = write_run(tmp_path / "run", poisson_workload(
        seed=1, n=300, rate=6.0, prompt=(10, 80), output=(2, 40), noise=0.05))
    result = CliRunner().invoke(app, ["calibrate", str(folder), "--out",
                                      str(tmp_path / "c.yaml")], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    for name in ("fixed", "per prompt token", "per decoding sequence", "per KV token read",
                 "per prefill pair", "client overhead", "R2"):
        assert name in result.output, name
    assert max(len(line) for line in result.output.splitlines()) <= 100


def test_a_few_slow_cold_starts_cannot_claim_an_overhead_faster_requests_rule_out() -> None:
    """Two cold starts whose first tokens came 150 ms late (machine noise, a prefill the fit
    underestimates) once set the client overhead to 155 ms on a server whose fastest
    requests left no room for it; every request bounds it: none comes sooner than the
    overhead plus its own prefill."""
    rows = _workload()
    samples, cold = steps(rows)
    noisy = [ColdStart(c.ttft_s + 0.15, c.prompt_tokens, c.prefill_pairs) for c in cold[:2]]
    assert fit_step_time(samples, noisy).client_overhead_s == pytest.approx(OVERHEAD_S + 0.15,
                                                                            rel=1e-6)
    bounded = fit_step_time(samples, noisy, first_tokens(rows)).client_overhead_s
    assert bounded == pytest.approx(OVERHEAD_S, rel=1e-3)
    # enough cold starts: their median stands, even where one request came sooner (the
    # smallest of hundreds of leftovers sits in the prefill's noise)
    assert len(cold) >= 5
    late = [ColdStart(c.ttft_s + 0.02, c.prompt_tokens, c.prefill_pairs) for c in cold]
    median = fit_step_time(samples, late, first_tokens(rows)).client_overhead_s
    assert median == pytest.approx(OVERHEAD_S + 0.02, rel=1e-6)


def test_a_step_time_that_is_not_linear_in_its_tokens_is_tabulated(tmp_path: Path) -> None:
    """A server whose steps cost what llama.cpp's one-thread CPU steps do: about the same
    per token for one to three decodes, four for the price of three, then less per token
    for prompts. A straight line cannot follow it; the table replaces it, and the
    calibrated simulator replays the requests to their latencies."""
    import numpy as np
    from synth import _on_points, serve

    truth = [(1, 0.0022), (2, 0.0046), (3, 0.0069), (4, 0.0072), (40, 0.045), (400, 0.39)]
    rng = np.random.default_rng(11)
    times = np.cumsum(rng.exponential(1 / 3.0, 400))
    rows = serve([(float(t), int(rng.integers(20, 200)), int(rng.integers(2, 30)))
                  for t in times], coef=(0.0, 0.0, 0.0, 2e-7), tokens_s=truth)
    _write_records(tmp_path, rows)
    calibration = calibrate(tmp_path, slots=64)
    st = calibration.step_time
    assert st.kind == "tabulated", st
    # a point on each batch size seen, and at the prompt steps' terciles: the truth's own
    # bend at 40 tokens falls between two of them (24 and ~100), so 24 carries some of it
    assert [t for t, _ in st.tokens_ms][:7] == [1, 2, 3, 4, 5, 6, 7]
    for tokens, ms in st.tokens_ms:
        assert ms == pytest.approx(_on_points(truth, tokens) * 1e3, rel=0.05), tokens
    assert st.per_kv_token_ns == pytest.approx(200, rel=0.1)
    assert calibration.fit.r2 > 0.999
    assert calibration.client_overhead_ms == pytest.approx(OVERHEAD_S * 1e3, abs=0.5)
    path = calibration.write(tmp_path / "calibration.yaml")
    assert yaml.safe_load(path.read_text())["step_time"]["kind"] == "tabulated"
    result = compare(rows, calibrated_deployment(path))
    for metric in ("ttft_ms", "e2e_ms"):
        for q, err in result.error_pct[metric].items():
            assert abs(err) < 3, (metric, q, err)
    # the same requests on a server that is linear keep the linear model
    linear = serve([(float(t), int(p), int(o)) for t, p, o in
                    zip(times, rng.integers(20, 200, 400), rng.integers(2, 30, 400),
                        strict=True)])
    _write_records(tmp_path / "linear", linear)
    assert calibrate(tmp_path / "linear", slots=64).step_time.kind == "linear"


def test_a_tabulated_calibration_prints_reads_and_rejects_what_it_should(tmp_path: Path) -> None:
    import numpy as np
    from synth import serve
    from typer.testing import CliRunner

    from llmplan.cli import app
    from llmplan.perf.steptime_spec import Calibration

    truth = [(1, 0.0022), (2, 0.0046), (3, 0.0069), (4, 0.0072), (40, 0.045), (400, 0.39)]
    rng = np.random.default_rng(12)
    times = np.cumsum(rng.exponential(1 / 3.0, 300))
    folder = write_run(tmp_path / "run", serve(
        [(float(t), int(rng.integers(20, 200)), int(rng.integers(2, 30))) for t in times],
        coef=(0.0, 0.0, 0.0, 2e-7), tokens_s=truth, noise=0.03, seed=4))
    out = tmp_path / "c.yaml"
    result = CliRunner().invoke(app, ["calibrate", str(folder), "--out", str(out)],
                                env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    for name in ("step of 1 token", "step of 2 tokens", "per KV token read",
                 "per prefill pair", "client overhead", "R2"):
        assert name in result.output, name
    assert max(len(line) for line in result.output.splitlines()) <= 100
    assert Calibration.read(out).step_time.kind == "tabulated"
    # a file written before the table (no kind) still reads as the linear model
    old = yaml.safe_load(out.read_text())
    old["step_time"] = {"fixed_ms": 4.0, "per_prefill_token_us": 200.0,
                        "per_decode_seq_us": 3000.0, "per_kv_token_ns": 10.0}
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(old))
    assert Calibration.read(tmp_path / "old.yaml").step_time.kind == "linear"
    # points out of order are named
    bad = yaml.safe_load(out.read_text())
    bad["step_time"]["tokens_ms"] = [[4, 7.0], [2, 4.6]]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=r"tokens_ms.*increase"):
        Calibration.read(tmp_path / "bad.yaml")


def test_a_replay_keeps_requests_that_waited_longer_than_a_minute(tmp_path: Path) -> None:
    """Every measured request was answered, so the replay's clients never give up (a
    scenario's give up after 60 s in the queue). Calibrated on 4 slots, a burst of 120
    requests of 200 tokens queues for minutes: all 120 are predicted, the last ones
    starting well past 60 s."""
    _write_records(tmp_path / "fit", _workload())
    path = calibrate(tmp_path / "fit", slots=4).write(tmp_path / "c.yaml")
    burst = serve([(0.01 * i, 20, 200) for i in range(120)])
    result = compare(burst, calibrated_deployment(path))
    predicted_rps = result.predicted["throughput"]["requests_per_s"]
    assert predicted_rps is not None
    p99_ttft_ms = result.predicted["ttft_ms"]["p99"]
    assert p99_ttft_ms is not None and p99_ttft_ms > 60_000
    # 120 requests in 30 batches of 4 x 200 steps of ~4 + 4 x 3 ms: ~100 s
    span_s = 120 / predicted_rps
    assert 80 < span_s < 130


def test_the_step_time_table_never_falls_with_more_tokens() -> None:
    """Decode steps of 1 to 6 sequences measured with the noise a shared machine adds
    (here: the 4-sequence steps happened to run 15% slower than the 5-sequence ones): the
    table's points still rise with the tokens, the two sizes pooled at one figure rather
    than a 5-sequence step faster than a 4-sequence one."""
    from llmplan.fidelity.fit import _fit_table
    from llmplan.fidelity.timeline import StepSample

    rng = np.random.default_rng(3)
    base_ms = {1: 10.0, 2: 11.0, 3: 12.0, 4: 15.0, 5: 13.0, 6: 14.0}
    samples = [StepSample(duration_s=ms * (1 + 0.01 * rng.standard_normal()) / 1e3,
                          prefill_tokens=0, decode_seqs=d, kv_tokens=0)
               for d, ms in base_ms.items() for _ in range(12)]
    samples += [StepSample(duration_s=(30.0 + 0.02 * p) * (1 + 0.01 * rng.standard_normal())
                           / 1e3, prefill_tokens=p, decode_seqs=2, kv_tokens=0)
                for p in range(200, 2000, 60)]
    y = np.array([s.duration_s for s in samples])
    prefill = np.array([s.prefill_tokens > 0 for s in samples])
    fitted = _fit_table(samples, y, prefill)
    assert fitted is not None
    table, _ = fitted
    assert table.tokens[:6] == (1, 2, 3, 4, 5, 6)
    assert all(a <= b for a, b in zip(table.step_s, table.step_s[1:], strict=False))
    four, five = table.step_s[3], table.step_s[4]
    assert four == pytest.approx(five, rel=1e-6)
    assert 13e-3 < five < 15e-3               # between the two measured figures
    assert table.step_s[0] == pytest.approx(10e-3, rel=0.03)


def test_warm_up_requests_still_decoding_are_counted_in_the_steps() -> None:
    """A server of 50 ms steps: a warm-up request decodes from t = 0.1 s, a measured one
    joins at 0.25 s. The steps both ran in hold two decoding sequences, not one, though the
    warm-up is kept out of the statistics; it is no cold start either."""
    from llmplan.fidelity.timeline import steps
    from llmplan.loadtests.records import RequestRecord

    def row(i: int, send_s: float, ttft_s: float, tokens: int) -> RequestRecord:
        return RequestRecord(id=i, task="t", target="x", scheduled_ts=send_s, send_ts=send_s,
                             schedule_delay_ms=0.0, status=200, ttft_ms=ttft_s * 1e3,
                             e2e_ms=(ttft_s + 0.05 * (tokens - 1)) * 1e3,
                             itl_ms=[50.0] * (tokens - 1), prompt_tokens=20,
                             output_tokens=tokens, chunks=tokens)
    warm = row(0, 0.0, 0.1, 20)            # tokens at 0.10, 0.15, ... 1.05
    measured = row(1, 0.21, 0.04, 10)      # first token at 0.25, then 0.30 ... 0.70
    alone, _ = steps([measured])
    together, cold = steps([measured], [warm])
    both = [s for s in together if 0.3 <= s.end_ts <= 0.7]
    assert both and all(s.decode_seqs == 2 for s in both)
    assert all(s.decode_seqs == 1 for s in alone)
    assert all(abs(c.ttft_s - 0.1) > 1e-9 for c in cold)   # the warm-up: no cold start
    # steps the warm-up ran alone (before the measured one came, after it left) are not
    # samples: they are what warm-ups are sent to absorb
    assert all(0.25 <= s.end_ts <= 0.7 + 1e-9 for s in together)
