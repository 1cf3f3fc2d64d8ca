"""Admission against the KV cache: vLLM 0.19 on asks for room for the whole prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_first, scenario_from

from llmplan.scenario.models import SimulationMode
from llmplan.sim.records import OK
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
