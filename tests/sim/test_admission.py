"""Admission against the KV cache: vLLM 0.19 on asks for room for the whole prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_first, scenario_from

from llmplan.scenario.models import SimulationMode
from llmplan.sim.records import OK, Records
from llmplan.sim.replica import Replica
from llmplan.sim.serving import ReplicaConfig, Workload
from llmplan.sim.stepmodel import StepModel
from llmplan.sim.table import request_table

TWO = """
    seed: 1
    duration: 60
    traffic: {{kind: trace, path: two.csv}}
    tasks:
      - {{name: doc, prompt_tokens: {{kind: fixed, tokens: 100}},
         output_tokens: {{kind: fixed, tokens: 10}}}}
    deployments:
      d:
        gpu: L4
        model: Llama-3.1-8B
        engine: {{vllm_version: '{release}', kv_cache_tokens: 4096,
                 max_num_batched_tokens: 512, prefix_caching: off}}
        admission: {{queue_timeout_s: 600}}
"""


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_a_prompt_waits_until_its_whole_prompt_fits_from_vllm_0_19(tmp_path: Path,
                                                                    mode: str) -> None:
    """256 blocks of 16 tokens; A (3,000 + 300 tokens) holds 188 once prefilled and 207 at
    its end, so B's 2,000-token prompt (125 blocks) never fits beside it. vLLM 0.18 admits B
    on its first chunk (72 tokens left of A's last chunk's step) and B preempts itself when
    a later chunk finds no block; 0.19's scheduler_reserve_full_isl keeps B waiting until A
    has finished and freed its blocks, and B then runs without a preemption."""
    (tmp_path / "two.csv").write_text("timestamp,prompt_tokens,output_tokens,task\n"
                                      "0,3000,300,doc\n0,2000,10,doc\n")
    seen = {}
    for release in ("0.18.1", "0.19.0"):
        run, stream = run_first(scenario_from(TWO.format(release=release), base_dir=tmp_path),
                                SimulationMode(mode))
        table = request_table(run, stream)
        assert list(stream.prompt_tokens) == [3000, 2000]
        assert (table.outcome == OK).all()
        seen[release] = (run.records, table)
    rec, table = seen["0.18.1"]
    assert rec.start_s[1] < rec.first_token_s[0]       # beside A's last prefill chunk
    assert table.preemptions[1] >= 1 and table.preemptions[0] == 0
    rec, table = seen["0.19.0"]
    assert rec.start_s[1] == pytest.approx(rec.finish_s[0], abs=1e-12)
    assert table.preemptions.sum() == 0


ONE_STEP_LATE = """
    seed: 1
    duration: 10
    traffic: {{kind: trace, path: two.csv}}
    tasks:
      - {{name: chat, prompt_tokens: {{kind: fixed, tokens: 100}},
         output_tokens: {{kind: fixed, tokens: 10}}}}
    deployments:
      d:
        gpu: H100-SXM
        model: Llama-3.1-8B
        engine: {{async_scheduling: {async_}}}
        step_time: {{kind: linear, fixed_ms: 10, per_prefill_token_us: 50,
                    per_decode_seq_us: 100, per_kv_token_ns: 0}}
"""


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_under_async_scheduling_an_arrival_runs_a_step_later(tmp_path: Path,
                                                              mode: str) -> None:
    """A decodes alone in 10.1 ms steps after its 15 ms prefill (steps start at 15 ms +
    k x 10.1 ms); B arrives at 0.5 s, during the step of 0.4998-0.5099 s. Scheduling in
    step with the GPU, vLLM admits B into the next step, at 0.5099 s; with async
    scheduling that step was scheduled as the one under way started, before B came, so B
    starts at 0.5200 s. An idle engine takes a request at once either way (A at 0)."""
    (tmp_path / "two.csv").write_text("timestamp,prompt_tokens,output_tokens,task\n"
                                      "0,100,200,chat\n0.5,100,10,chat\n")
    starts = {}
    for async_ in ("false", "true"):
        run, _ = run_first(scenario_from(ONE_STEP_LATE.format(async_=async_),
                                         base_dir=tmp_path), SimulationMode(mode))
        starts[async_] = (run.records.start_s[0], run.records.start_s[1])
    step_s, first_s = 0.0101, 0.015
    assert starts["false"] == pytest.approx((0.0, first_s + 49 * step_s), abs=1e-9)
    assert starts["true"] == pytest.approx((0.0, first_s + 50 * step_s), abs=1e-9)
    # over two pipeline stages vLLM keeps a batch per stage in flight, async or not: the
    # setting adds no step of its own
    staged = {}
    for async_ in ("false", "true"):
        run, _ = run_first(scenario_from(ONE_STEP_LATE.format(async_=async_).replace(
            "model: Llama-3.1-8B", "model: Llama-3.1-8B\n        pp: 2"), base_dir=tmp_path),
            SimulationMode(mode))
        staged[async_] = run.records.start_s[1]
    assert staged["true"] == staged["false"]


def test_the_autoscaler_sees_a_burst_an_idle_engine_took_in_at_once() -> None:
    """Twenty 2,000-token prompts reach an idle replica at once: its first step admits two
    (a 2,048-token budget) and takes the others in as waiting, which vLLM's gauge shows,
    async scheduling or not."""
    for lagged in (False, True):
        replica = _linear_replica(lagged, prompts=[2000] * 20, outputs=[50] * 20,
                                  arrivals=[100.0] * 20, records=Records(20, 1000))
        for rid in range(20):
            replica.advance(100.0)
            replica.arrive(rid, 100.0)
        replica.advance(100.05)          # the first step, 100.0 to about 100.11, under way
        assert replica.last_start_s == 100.0 and replica.last_end_s > 100.05
        assert len(replica.waiting) == replica.waiting_seen() == 18, lagged


def test_a_request_sent_here_again_is_seen_from_when_it_came() -> None:
    """A request first sent at 0.1 s reaches this replica at 0.5 s (its replica failed, or
    a hybrid fell back to the fleet): under async scheduling the step under way then was
    scheduled at its start, before the request came, so the request starts a step later,
    exactly as a new arrival at 0.5 s does; synchronous scheduling takes it at the next
    step. Its queue timeout still counts from when it was first sent."""
    starts = {}
    for lagged in (False, True):
        for sent_s in (0.5, 0.1):
            rec = Records(2, 100)
            replica = _linear_replica(lagged, prompts=[100, 100], outputs=[200, 10],
                                      arrivals=[0.0, sent_s], records=rec)
            replica.advance(0.0)
            replica.arrive(0, 0.0)
            replica.advance(0.5)
            replica.arrive(1, 0.5)
            replica.advance(100.0)
            assert rec.outcome == [OK, OK]
            starts[lagged, sent_s] = rec.start_s[1]
    first_s, step_s = 0.015, 0.0101       # A's prefill, then its decode steps
    assert starts[False, 0.1] == starts[False, 0.5] == pytest.approx(first_s + 49 * step_s)
    assert starts[True, 0.1] == starts[True, 0.5] == pytest.approx(first_s + 50 * step_s)


def _linear_replica(lagged: bool, *, prompts: list[int], outputs: list[int],
                    arrivals: list[float], records: Records) -> Replica:
    """A fast replica timed 10 ms + 50 us per prompt token + 100 us per sequence a step,
    with room for every request (async scheduling's admission lag when `lagged`)."""
    step = StepModel(serial_s=0.010, serial_per_prefill_token_s=50e-6,
                     serial_per_seq_s=100e-6)
    config = ReplicaConfig(step=step, blocks=10_000, block_size=16, max_num_seqs=64,
                           max_num_batched_tokens=2048, chunked_prefill=True,
                           max_model_len=8192, queue_limit=None, queue_timeout_s=None,
                           async_admission=lagged, admit_whole_prompt=True)
    return Replica(0, config, Workload(prompts=prompts, outputs=outputs, arrivals=arrivals,
                                       records=records))
