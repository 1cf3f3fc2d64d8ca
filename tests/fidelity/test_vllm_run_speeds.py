"""vLLM /metrics runs fitted together on a host whose speed changed between them are refused,
as the records path refuses them (test_run_speeds_in_a_fit).

The vLLM-like engine (vllm_synth.py) has known costs; one run of 100-300-token prompts and
one of 600-1,200, the second on a host 0.7 times as fast (every cost 1/0.7 times as large),
each step jittering (lognormal). Fitted as one from their scrape intervals, the slowdown
went into the costs the runs differ in (prompt and KV tokens) and passed."""

from __future__ import annotations

from pathlib import Path

import pytest
from synth import write_run
from vllm_synth import run

from llmplan.fidelity.calibrate import fit_runs, read_measurements
from llmplan.fidelity.fit import MIN_STEPS, run_speeds
from llmplan.fidelity.vllm_metrics import observed, run_intervals

COEF = (0.008, 0.00012, 0.0006, 0.000002)   # an 8B model on one GPU, roughly (seconds)
SHORT, LONG = (100, 300), (600, 1200)


def _run(folder: Path, seed: int, lengths: tuple[int, int], *, speed: float = 1.0,
         noise: float = 0.05, start_ts: float = 1_700_000_000.0) -> Path:
    """300 Poisson arrivals at 3/s on a host `speed` times as fast as COEF's."""
    text, rows = run(coef=tuple(c / speed for c in COEF), seed=seed, n=300, rate=3.0,  # type: ignore[arg-type]
                     lengths=lengths, noise=noise, start_ts=start_ts)
    write_run(folder, rows)
    (folder / "server_metrics.prom").write_text(text)
    return folder


def test_runs_scraped_at_different_host_speeds_are_refused_with_the_figure(
        tmp_path: Path) -> None:
    short = _run(tmp_path / "short", 3, SHORT)
    slow = _run(tmp_path / "long", 4, LONG, speed=0.7, start_ts=1_700_010_000.0)
    report = fit_runs([short, slow], source="vllm-metrics")
    # nothing else objected: the one fit alone would have passed
    assert [f.field for f in report.rejected] == ["runs"], [str(f) for f in report.rejected]
    text = str(report.rejected[0])
    assert f"{slow}'s steps took 1.4" in text and f"as long as {short}'s" in text, text
    assert "calibrate each run separately" in text
    assert "a prompt token at" in text and "prefill pair" not in text, text
    # the one fit moved the slowdown into the costs: a prompt token or a KV token dearer
    # than the engine's by more than the host's 1/0.7 could explain, or a sequence free
    st = report.calibration.step_time
    assert st.per_prefill_token_us > 1.3 * COEF[1] * 1e6 or \
        st.per_kv_token_ns > 1.5 * COEF[3] * 1e9 or st.per_decode_seq_us == 0, st
    # a speed for each run reads the host's change and the engine's costs back
    found = run_speeds([observed(run_intervals(r, read_measurements(r), None)[0])
                        for r in (short, slow)])
    assert found is not None and found.slowest == 1
    assert found.ratio == pytest.approx(1 / 0.7, rel=0.08)
    assert found.ratio_low < 1 / 0.7 < found.ratio_high
    fixed, token, seq, kv, pair = found.coefficients_s
    assert fixed == pytest.approx(COEF[0], rel=0.1)
    assert token == pytest.approx(COEF[1], rel=0.1)
    assert seq == pytest.approx(COEF[2], rel=0.15)
    assert kv == pytest.approx(COEF[3], rel=0.15)
    assert pair == 0.0


@pytest.mark.parametrize(("noise", "seeds", "second"), [
    (0.05, (3, 4), LONG), (0.15, (1, 2), LONG), (0.15, (5, 6), SHORT)])
def test_runs_scraped_at_one_speed_pass(tmp_path: Path, noise: float,
                                        seeds: tuple[int, int],
                                        second: tuple[int, int]) -> None:
    """The same host for both, its steps jittering 5% or 15%: neither refused nor noted."""
    runs = [_run(tmp_path / "a", seeds[0], SHORT, noise=noise),
            _run(tmp_path / "b", seeds[1], second, noise=noise, start_ts=1_700_010_000.0)]
    report = fit_runs(runs, source="vllm-metrics")
    assert report.rejected == [], [str(f) for f in report.rejected]
    assert not [f for f in report.advisory if f.field == "runs"]


def test_a_run_too_short_for_a_speed_does_not_silence_the_others(tmp_path: Path) -> None:
    """A third run of 20 requests (4 merged intervals, under MIN_STEPS) beside the two of
    different speeds: the two are still compared, and the short one is named as unread
    (once, no run's speed was compared when any run was short)."""
    short = _run(tmp_path / "short", 3, SHORT)
    slow = _run(tmp_path / "long", 4, LONG, speed=0.7, start_ts=1_700_010_000.0)
    text, rows = run(coef=COEF, seed=9, n=20, rate=3.0, lengths=SHORT, noise=0.05,
                     start_ts=1_700_020_000.0)
    tiny = write_run(tmp_path / "tiny", rows)
    (tiny / "server_metrics.prom").write_text(text)
    intervals = len(run_intervals(tiny, read_measurements(tiny), None)[0])
    assert 0 < intervals < MIN_STEPS
    report = fit_runs([short, slow, tiny], source="vllm-metrics")
    assert [f.field for f in report.rejected] == ["runs"], [str(f) for f in report.rejected]
    assert f"{slow}'s steps took 1.4" in str(report.rejected[0])
    unread = [str(f) for f in report.advisory if f.field == "runs"]
    assert unread == [f"{tiny} gave {intervals} scrape intervals, fewer than {MIN_STEPS}: "
                      f"its host's speed is not compared with the other runs', and a change "
                      f"of speed in it would go into the fit's costs unseen: run it for "
                      f"longer, or leave it out"], unread
