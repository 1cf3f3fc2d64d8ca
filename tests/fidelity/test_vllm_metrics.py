"""Calibration from a vLLM server's own /metrics plus a load-test run gives the same
coefficient kinds as the records path, and recovers the engine's known coefficients."""

from __future__ import annotations

from pathlib import Path

import pytest
from synth import write_run
from typer.testing import CliRunner
from vllm_synth import BLOCK, BLOCKS, run

from llmplan.cli import app
from llmplan.fidelity.calibrate import calibrate
from llmplan.fidelity.promtext import parse_snapshots

COEF = (0.008, 0.00012, 0.0006, 0.000002)   # an 8B model on one GPU, roughly


@pytest.fixture(scope="module")
def vllm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text, rows = run(coef=COEF, seed=3, n=300, rate=3.0)
    folder = write_run(tmp_path_factory.mktemp("vllm") / "run", rows)
    (folder / "server_metrics.prom").write_text(text)
    return folder


def test_the_scrapes_read_back_with_vllm_names(vllm_run: Path) -> None:
    snapshots = parse_snapshots((vllm_run / "server_metrics.prom").read_text())
    assert len(snapshots) > 60 and all(s.unix_ts is not None for s in snapshots)
    last = snapshots[-1]
    for name in ("vllm:iteration_tokens_total_count", "vllm:prompt_tokens_total",
                 "vllm:generation_tokens_total", "vllm:time_to_first_token_seconds_sum",
                 "vllm:time_per_output_token_seconds_count", "vllm:num_requests_running",
                 "vllm:e2e_request_latency_seconds_count",
                 "vllm:request_prefill_time_seconds_sum",
                 "vllm:request_decode_time_seconds_sum"):
        assert last.total(name) is not None, name
    assert last.total("vllm:e2e_request_latency_seconds_count") == 300
    assert last.labels_of("vllm:cache_config_info")["num_gpu_blocks"] == str(BLOCKS)


def test_metrics_calibration_recovers_the_coefficients(vllm_run: Path) -> None:
    from_metrics = calibrate(vllm_run, source="vllm-metrics")
    st = from_metrics.step_time
    assert st.fixed_ms == pytest.approx(COEF[0] * 1e3, rel=0.1)
    assert st.per_prefill_token_us == pytest.approx(COEF[1] * 1e6, rel=0.1)
    assert st.per_decode_seq_us == pytest.approx(COEF[2] * 1e6, rel=0.15)
    assert from_metrics.engine.kv_cache_tokens == BLOCKS * BLOCK
    assert from_metrics.server.engine == "vllm"      # what the stack builds it as
    assert from_metrics.client_overhead_ms == pytest.approx(4.0, abs=1.0)
    assert from_metrics.fit.r2 > 0.95
    # the records path on the same run: same kinds of coefficient, same values
    from_records = calibrate(vllm_run, slots=from_metrics.engine.max_num_seqs)
    assert set(from_records.step_time.model_dump()) == set(st.model_dump())
    for key in ("fixed_ms", "per_prefill_token_us", "per_decode_seq_us"):
        assert getattr(st, key) == pytest.approx(getattr(from_records.step_time, key),
                                                 rel=0.15), key


def test_cli_names_a_run_without_scrapes(tmp_path: Path) -> None:
    _, rows = run(coef=COEF, seed=4, n=50, rate=3.0)
    folder = write_run(tmp_path / "no-metrics", rows)
    result = CliRunner().invoke(app, ["calibrate", str(folder), "--source", "vllm-metrics",
                                      "--out", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2
    assert "server_metrics.prom" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "c.yaml").exists()


def test_a_concurrency_read_from_the_metrics_is_called_a_lower_bound(vllm_run: Path) -> None:
    """vLLM's metrics do not carry --max-num-seqs: the busiest moment seen is written, and
    the report says it is a lower bound unless --slots gave the server's own."""
    from llmplan.fidelity.calibrate import fit_runs

    seen = fit_runs(vllm_run, source="vllm-metrics")
    notes = [f for f in seen.advisory if f.field == "engine.max_num_seqs"]
    assert len(notes) == 1 and "lower bound" in str(notes[0]) and "--slots" in str(notes[0])
    given = fit_runs(vllm_run, source="vllm-metrics", slots=64)
    assert given.calibration.engine.max_num_seqs == 64
    assert not [f for f in given.advisory if f.field == "engine.max_num_seqs"]


def _refusal(tmp_path: Path, edit: object) -> str:
    """The CLI's message for a run whose scrapes were changed by `edit` (text -> text)."""
    text, rows = run(coef=COEF, seed=3, n=120, rate=3.0)
    folder = write_run(tmp_path / "run", rows)
    (folder / "server_metrics.prom").write_text(edit(text))  # type: ignore[operator]
    out = CliRunner().invoke(app, ["calibrate", str(folder), "--source", "vllm-metrics",
                                   "--out", str(tmp_path / "cal.yaml")])
    assert out.exit_code != 0 and not (tmp_path / "cal.yaml").exists()
    return " ".join(out.output.split())


def test_a_missing_counter_is_named(tmp_path: Path) -> None:
    message = _refusal(tmp_path, lambda text: "\n".join(
        line for line in text.splitlines()
        if not line.startswith("vllm:generation_tokens_total")))
    assert "vllm:generation_tokens_total" in message and "not in any scrape" in message


def test_two_engines_in_one_scrape_are_refused_not_added(tmp_path: Path) -> None:
    def second_engine(text: str) -> str:
        lines = text.splitlines()
        twin = [line.replace('engine="0"', 'engine="1"') for line in lines
                if line.startswith("vllm:") and 'engine="0"' in line]
        return "\n".join(lines + twin)

    message = _refusal(tmp_path, second_engine)
    assert "2 engines' series in one scrape" in message and "engine=1" in message


def test_prefix_cache_hits_are_not_counted_as_computed_prompt_tokens(tmp_path: Path) -> None:
    """vLLM counts a prompt's cached prefix in prompt_tokens_total and again in
    prefix_cache_hits_total; only the rest is computed. With 80% of every prompt cached
    the fit still recovers the engine's prompt-token cost."""
    text, rows = run(coef=COEF, seed=5, n=300, rate=3.0, cached=0.8)
    folder = write_run(tmp_path / "run", rows)
    (folder / "server_metrics.prom").write_text(text)
    st = calibrate(folder, source="vllm-metrics").step_time
    assert st.per_prefill_token_us == pytest.approx(COEF[1] * 1e6, rel=0.1)
    assert st.per_decode_seq_us == pytest.approx(COEF[2] * 1e6, rel=0.15)


def test_a_server_restart_mid_run_leaves_the_client_overhead_alone(vllm_run: Path) -> None:
    """Counters that fall mid-run are a restart (Prometheus' increase() rule): the run's
    totals add what came before and after it, as if the counters had kept counting."""
    from dataclasses import replace

    from llmplan.fidelity.calibrate import read_measurements
    from llmplan.fidelity.promtext import Snapshot
    from llmplan.fidelity.vllm_metrics import FIRST_TOKENS, TTFT_SUM, client_overhead_s

    snapshots = parse_snapshots((vllm_run / "server_metrics.prom").read_text())
    rows = read_measurements(vllm_run)
    half = len(snapshots) // 2
    at_restart = snapshots[half - 1]

    def restarted(s: Snapshot, name: str) -> list[tuple[dict[str, str], float]]:
        base = at_restart.total(name) or 0.0
        return [(labels, value - base) for labels, value in s.samples[name]]

    after = [replace(s, samples={**s.samples, **{n: restarted(s, n)
                                                   for n in (FIRST_TOKENS, TTFT_SUM)}})
             for s in snapshots[half:]]
    assert after[0].total(FIRST_TOKENS) < snapshots[half - 1].total(FIRST_TOKENS)  # it fell
    whole = client_overhead_s(snapshots, rows)
    assert whole > 0.002
    assert client_overhead_s(snapshots[:half] + after, rows) == pytest.approx(whole, rel=1e-9)


def _fitted(tmp_path: Path, **kwargs: object) -> object:
    text, rows = run(**kwargs)  # type: ignore[arg-type]
    folder = write_run(tmp_path / "run", rows)
    (folder / "server_metrics.prom").write_text(text)
    return calibrate(folder, source="vllm-metrics").step_time


@pytest.mark.parametrize("hits_as", ["by_source", "v0_rate"])
def test_cache_hits_as_each_release_exports_them_are_not_computed_tokens(
        tmp_path: Path, hits_as: str) -> None:
    """0.20 and later export the computed prompt tokens themselves
    (prompt_tokens_by_source_total{source="local_compute"}); V0 only a hit rate of block
    lookups, with the cached tokens in prompt_tokens_total. Either way, with 80% of every
    prompt cached, the prompt-token cost is the engine's."""
    st = _fitted(tmp_path, coef=COEF, seed=5, n=300, rate=3.0, cached=0.8, hits_as=hits_as)
    assert st.per_prefill_token_us == pytest.approx(COEF[1] * 1e6, rel=0.1)  # type: ignore[attr-defined]


def test_steps_near_the_scrape_period_are_fitted_over_merged_intervals(tmp_path: Path) -> None:
    """Steps of 0.3-0.5 s against 1 s scrapes: a step counts in the interval it ends in,
    so a lone interval's time and counters disagree by up to a step; intervals merged to
    ten steps or more recover the engine's costs."""
    coef = (0.25, 0.0004, 0.004, 0.00001)
    st = _fitted(tmp_path, coef=coef, seed=3, n=300, rate=0.6)
    assert st.fixed_ms == pytest.approx(coef[0] * 1e3, rel=0.1)  # type: ignore[attr-defined]
    assert st.per_prefill_token_us == pytest.approx(coef[1] * 1e6, rel=0.2)  # type: ignore[attr-defined]
    assert st.per_decode_seq_us == pytest.approx(coef[2] * 1e6, rel=0.15)  # type: ignore[attr-defined]


def test_steps_counted_by_several_api_servers_are_refused(tmp_path: Path) -> None:
    """With --api-server-count above 1 every front-end with output in a step counts it:
    a request decoding through an interval then gets half a token per step counted."""
    import re

    def doubled(text: str) -> str:
        return re.sub(r"^(vllm:iteration_tokens_total_(?:count|bucket)\{[^}]*\}) (\S+)$",
                      lambda m: f"{m.group(1)} {2 * float(m.group(2))}", text, flags=re.M)

    message = _refusal(tmp_path, doubled)
    assert "counted more than once" in message and "--api-server-count 1" in message


def test_options_that_contradict_the_run_are_refused(vllm_run: Path) -> None:
    """A KV cache smaller than a request the run served, a run given twice, slots below the
    batches its steps held: another server than the one measured."""
    from llmplan.errors import InputError
    from llmplan.fidelity.calibrate import fit_runs
    with pytest.raises(InputError, match="--kv-cache-tokens: 1, but a request of the run"):
        fit_runs(vllm_run, kv_cache_tokens=1)
    with pytest.raises(InputError, match="given more than once"):
        fit_runs([vllm_run, vllm_run])
    with pytest.raises(InputError, match="--slots: 1, but"):
        fit_runs(vllm_run, slots=1)
    # from the metrics: below the most requests the server counted running
    with pytest.raises(InputError, match=r"--slots: 1, but the server counted \d+ requests"):
        fit_runs(vllm_run, slots=1, source="vllm-metrics")


def test_accepted_draft_tokens_are_not_decoding_sequences() -> None:
    """With speculative decoding a verify step gives each sequence one token and the draft
    tokens it accepts: 1,000 generated tokens of which 600 were accepted drafts are 400
    sequence-steps (vLLM's spec_decode_num_accepted_tokens), not 1,000."""
    from llmplan.fidelity.vllm_metrics import busy_intervals

    def scrape(ts: float, steps: int, generated: int, accepted: int | None) -> str:
        labels = 'engine="0",model_name="m"'
        lines = [f"# llmplan-scrape unix_ts={ts}",
                 f"vllm:iteration_tokens_total_count{{{labels}}} {steps}",
                 f"vllm:prompt_tokens_total{{{labels}}} 0",
                 f"vllm:generation_tokens_total{{{labels}}} {generated}",
                 f"vllm:time_to_first_token_seconds_count{{{labels}}} 0",
                 f"vllm:num_requests_running{{{labels}}} 4"]
        if accepted is not None:
            lines.append(f"vllm:spec_decode_num_accepted_tokens_total{{{labels}}} {accepted}")
        return "\n".join(lines) + "\n"

    for accepted, sequences in ((600, 400.0), (None, 1000.0)):
        snapshots = parse_snapshots(scrape(0.0, 0, 0, 0 if accepted is not None else None)
                                    + scrape(1.0, 100, 1000, accepted))
        [(_, interval)] = busy_intervals(snapshots, [], None)
        assert interval.decode_tokens == sequences


def test_scrape_times_that_go_backwards_are_refused_with_the_line(tmp_path: Path) -> None:
    """Two scrapes' times swapped: every interval between them would be differenced
    backwards or skipped. Refused at the line whose time is earlier than one before it."""
    def swapped(text: str) -> str:
        lines = text.splitlines()
        marks = [i for i, line in enumerate(lines) if line.startswith("# llmplan-scrape")]
        a, b = marks[20], marks[21]
        lines[a], lines[b] = lines[b], lines[a]
        return "\n".join(lines) + "\n"

    message = _refusal(tmp_path, swapped)
    assert "scrape time goes backwards" in message
    text = (tmp_path / "run" / "server_metrics.prom").read_text().splitlines()
    line = [i for i, t in enumerate(text, start=1) if t.startswith("# llmplan-scrape")][21]
    assert f"server_metrics.prom:{line}: unix_ts:" in message, message


def test_a_server_restart_is_noted_and_only_the_stretch_after_it_is_fitted(
        tmp_path: Path) -> None:
    """Counters that fall mid-run: the server restarted. The fit uses the scrapes after it
    (their counters counted again from zero) and says so, naming the line."""
    import re

    from llmplan.fidelity.calibrate import fit_runs

    text, rows = run(coef=COEF, seed=3, n=600, rate=3.0)
    scrapes = text.split("# llmplan-scrape")
    half = len(scrapes) // 2
    base = {m.group(1): float(m.group(2)) for m in re.finditer(
        r"^(vllm:[a-z_:]+(?:_total|_count|_sum)\{[^}]*\}) (\S+)$", scrapes[half - 1], re.M)}

    def restarted(chunk: str) -> str:
        return re.sub(r"^(vllm:[a-z_:]+(?:_total|_count|_sum)\{[^}]*\}) (\S+)$",
                      lambda m: f"{m.group(1)} {float(m.group(2)) - base[m.group(1)]!r}",
                      chunk, flags=re.M)

    edited = "# llmplan-scrape".join(scrapes[:half] + [restarted(c) for c in scrapes[half:]])
    folder = write_run(tmp_path / "run", rows)
    (folder / "server_metrics.prom").write_text(edited)
    report = fit_runs(folder, source="vllm-metrics")
    [note] = [f for f in report.advisory if "restarted" in f.problem]
    assert "server_metrics.prom:" in note.problem and "fell from" in note.problem
    assert f"only the {len(scrapes) - half:,} scrapes after it" in note.problem, note.problem
    assert report.rejected == []
    st = report.calibration.step_time
    assert st.per_prefill_token_us == pytest.approx(COEF[1] * 1e6, rel=0.1)  # type: ignore[union-attr]
    # what the scrapes after the restart give on their own (the same server, unrestarted)
    (folder / "server_metrics.prom").write_text("# llmplan-scrape".join(["", *scrapes[half:]]))
    alone = fit_runs(folder, source="vllm-metrics").calibration.step_time
    for key in ("fixed_ms", "per_prefill_token_us", "per_decode_seq_us"):
        assert getattr(st, key) == pytest.approx(getattr(alone, key), rel=0.05), key
