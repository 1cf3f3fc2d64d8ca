"""KV cache use as the engine reports it: blocks held over the pool, a shared prefix's blocks
once. Checked against the bracket every decode run must sit in, on paper, and against a
workload whose contexts add up to more than the pool."""

from __future__ import annotations

import pytest
from helpers import run_first, scenario_from

from llmplan.scenario.models import SimulationMode
from llmplan.sim.metrics import summarise_run
from llmplan.sim.records import KV_BLOCK_S, KV_TOKEN_S

SCENARIO = """
    seed: 3
    duration: 240
    traffic: {{kind: poisson, rate_per_s: {rate}}}
    tasks:
      - name: chat
        prompt_tokens: {{kind: uniform, min_tokens: 20, max_tokens: 900}}
        output_tokens: {{kind: uniform, min_tokens: 20, max_tokens: 400}}
        {prefix}
    deployments:
      d: {{gpu: {gpu}, model: Llama-3.1-8B, engine: {{kv_cache_tokens: {kv}, max_num_seqs: 64}}}}
"""


@pytest.mark.parametrize("mode", [SimulationMode.FAST, SimulationMode.REFERENCE])
def test_a_decode_run_holds_each_sequences_blocks_rounded_up(mode: SimulationMode) -> None:
    """Without shared prefixes, a step holds sum(ceil(ctx / 16)) blocks over the contexts
    it writes to: at least its context tokens / 16 (a prefill chunk holds its own blocks on
    top). A decode-only run of n steps with D sequences holds, on average over its steps,
    less than that plus D (each sequence's last block partly empty): the fast replica logs
    such a run in one closed form, which must land inside that bracket."""
    # 200,000 tokens: more than the run holds (an L40S has room for them, an L4 not)
    text = SCENARIO.format(rate=2, prefix="", kv=200_000, gpu="L40S")
    run, _ = run_first(scenario_from(text), mode)
    assert run.capacity is not None
    block = run.capacity.block_size_tokens
    seg = run.records.segment_table()
    kv, n, decodes, held = seg[:, 2], seg[:, 5], seg[:, 6], seg[:, 7]
    stepped = seg[:, 1] > 0
    assert stepped.sum() > 100
    assert (held[stepped] >= kv[stepped] / block - 1e-9).all()
    if mode == SimulationMode.FAST:
        runs = stepped & (n > 1)
        assert runs.sum() > 20
        assert (held[runs] < kv[runs] / block + decodes[runs]).all()


def test_shared_prefixes_count_once_so_use_stays_within_the_pool() -> None:
    """Long shared prefixes: the contexts the steps attend over add up to more than the pool
    (the old measure read 2 and more), the blocks held never do."""
    prefix = ("shared_prefix: {groups: 2, tokens: {kind: fixed, tokens: 3000}, "
              "popularity: uniform}")
    loaded = scenario_from(SCENARIO.format(rate=6, prefix=prefix, kv=24_000, gpu="L4"))
    run, stream = run_first(loaded)
    assert run.capacity is not None
    minutes = 4
    per_minute = run.records.per_minute(minutes)
    pool_token_s = run.capacity.tokens * 60.0
    assert per_minute[KV_TOKEN_S].max() > 1.5 * pool_token_s      # contexts overlap
    assert per_minute[KV_BLOCK_S].max() <= run.capacity.blocks * 60.0 * (1 + 1e-9)
    summary = summarise_run(run, stream, loaded.scenario)
    assert summary.local is not None
    use = summary.local.utilisation.kv_cache_mean_fraction
    series = summary.local.timeseries.kv_cache_fraction
    assert 0.05 < use <= 1.0
    assert 0.0 < max(series) <= 1.0
    # the two prefixes' chains stay resident while requests read them: at least 2 x 3000
    # tokens' blocks whenever the engine is busy
    assert max(series) >= 2 * 3000 / run.capacity.tokens
