"""Provider limiters admit exactly what the arithmetic says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmplan.sim.ratelimit import (
    DAY_S,
    AzureSlices,
    BedrockReserve,
    InputOnly,
    InputOutput,
    Limiter,
    RollingMinute,
    Sustained,
)


def test_rolling_minute_requests_bucket() -> None:
    limiter = RollingMinute(requests_per_min=60, tokens_per_min=None)
    admitted = [limiter.try_acquire(0.0, 10, 10)[0] for _ in range(61)]
    assert admitted.count(True) == 60            # a full minute's worth at once
    ok, _, retry_after = limiter.try_acquire(0.0, 10, 10)
    assert not ok and retry_after == pytest.approx(1.0)   # refills 1 request per second
    ok, _, retry_after = limiter.try_acquire(0.5, 10, 10)
    assert not ok and retry_after == pytest.approx(0.5)
    assert limiter.try_acquire(1.0, 10, 10)[0]


def test_rolling_minute_tokens_charge_prompt_plus_max_tokens() -> None:
    limiter = RollingMinute(requests_per_min=None, tokens_per_min=6000)
    results = [limiter.try_acquire(0.0, 100, 100) for _ in range(31)]
    assert [r[0] for r in results].count(True) == 30      # 6000 / (100 + 100)
    assert results[0][1] == 200
    assert results[-1][2] == pytest.approx(2.0)           # 200 tokens at 100 tokens/s


def test_request_larger_than_the_limit_never_fits() -> None:
    limiter = RollingMinute(requests_per_min=None, tokens_per_min=1000)
    ok, _, retry_after = limiter.try_acquire(0.0, 900, 200)
    assert not ok and math.isinf(retry_after)


def test_azure_slices_split_the_minute() -> None:
    # 60,000 TPM -> 360 RPM; 10 s slices hold 60 requests and 10,000 tokens
    limiter = AzureSlices(requests_per_min=None, tokens_per_min=60_000, slice_s=10)
    admitted = [limiter.try_acquire(1.0, 100, 100)[0] for _ in range(60)]
    assert admitted.count(True) == 50                     # 10,000 / 200 tokens first
    ok, _, retry_after = limiter.try_acquire(3.0, 100, 100)
    assert not ok and retry_after == pytest.approx(7.0)   # to the next slice at t = 10
    assert limiter.try_acquire(10.0, 100, 100)[0]
    one_second = AzureSlices(requests_per_min=120, tokens_per_min=None, slice_s=1)
    assert [one_second.try_acquire(0.2, 1, 1)[0] for _ in range(3)] == [True, True, False]


def test_azure_calls_larger_than_a_slice_still_get_in_at_the_quotas_pace() -> None:
    # 5,000 TPM -> 30 RPM: half a request a 1 s slice; a call every other slice gets in
    small = AzureSlices(requests_per_min=None, tokens_per_min=5_000, slice_s=1)
    admitted = [t for t in np.arange(0.0, 10.0, 0.5) if small.try_acquire(t, 50, 10)[0]]
    assert admitted == [0.0, 2.0, 4.0, 6.0, 8.0]
    # 250-token calls: 83.3 tokens a slice, one call every 3 s (20 a minute)
    tokens = AzureSlices(requests_per_min=None, tokens_per_min=5_000, slice_s=1)
    assert [t for t in np.arange(0.0, 10.0, 0.5)
            if tokens.try_acquire(t, 200, 50)[0]] == [0.0, 3.0, 6.0, 9.0]
    # 12,200 tokens against 1,000 a slice (60,000 TPM): in, then 12.2 slices to pay off
    big = AzureSlices(requests_per_min=None, tokens_per_min=60_000, slice_s=1)
    assert big.try_acquire(0.0, 12_000, 200)[0]
    ok, _, retry_after = big.try_acquire(0.5, 12_000, 200)
    assert not ok and retry_after == pytest.approx(12.5)  # the slice that starts at 13 s
    assert big.try_acquire(13.0, 12_000, 200)[0]
    assert math.isinf(big.try_acquire(40.0, 60_000, 1)[2])    # past the minute's quota


def test_bedrock_reserves_max_tokens_and_settles_the_rest() -> None:
    limiter = BedrockReserve(requests_per_min=None, tokens_per_min=6000)
    charges = [limiter.try_acquire(0.0, 100, 500) for _ in range(11)]
    assert [c[0] for c in charges].count(True) == 10      # 6000 / (100 + 500)
    for ok, charged, _ in charges[:10]:
        assert ok and charged == 600
        limiter.settle(0.0, charged, 150)                 # used 100 in + 50 out
    # 4,500 tokens came back: 7 more fit at once (7 x 600 = 4,200), the 8th does not
    again = [limiter.try_acquire(0.0, 100, 500)[0] for _ in range(8)]
    assert again.count(True) == 7


def test_bedrock_counts_claude_output_at_its_burndown_and_releases_cache_reads() -> None:
    # AWS's token burndown page: reserved input + max_tokens at the start, counted
    # input - cache reads + output x 5 (Claude 4 and later) at the end
    limiter = BedrockReserve(requests_per_min=None, tokens_per_min=60_000, output_burndown=5)
    ok, charged, _ = limiter.try_acquire(0.0, 10_000, 4_000)
    assert ok and charged == 14_000                          # the cache reads reserved too
    final = limiter.final_tokens(10_000, 8_000, 3_000)
    assert final == 2_000 + 5 * 3_000
    limiter.settle(0.0, charged, final)
    # 60,000 - 17,000 left: a second such call's 14,000 fit three times, not four
    assert [limiter.try_acquire(0.0, 10_000, 4_000)[0] for _ in range(4)].count(True) == 3
    # an output burning more than it reserved takes the excess: the bucket goes below 0
    # and the next call waits for the refill to pay it off
    over = BedrockReserve(requests_per_min=None, tokens_per_min=6_000, output_burndown=5)
    ok, charged, _ = over.try_acquire(0.0, 1_000, 1_000)
    over.settle(0.0, charged, over.final_tokens(1_000, None, 1_000))   # counts 6,000
    ok, _, wait = over.try_acquire(0.0, 100, 100)
    assert not ok and wait == pytest.approx(2.0)             # 200 tokens at 100/s
    # in the long run: per call, the uncached prompt and 5 x the output
    assert _sustained_per_s(BedrockReserve(None, 60_000, output_burndown=5,
                                           uncached_share=0.5),
                            0, 1_200, 1_000) == pytest.approx(1_000 / (500 + 5 * 200))


def test_daily_limit_waits_for_the_next_day() -> None:
    limiter = RollingMinute(requests_per_min=10_000, tokens_per_min=None, requests_per_day=3)
    assert [limiter.try_acquire(100.0, 1, 1)[0] for _ in range(3)] == [True] * 3
    ok, _, retry_after = limiter.try_acquire(100.0, 1, 1)
    assert not ok and retry_after == pytest.approx(DAY_S - 100.0)
    assert limiter.try_acquire(DAY_S + 1, 1, 1)[0]


def _sustained_per_s(limiter: Limiter, charge_tokens: float, used_tokens: float,
                     prompt_tokens: float | None = None) -> float:
    sustained = limiter.sustained(charge_tokens, used_tokens, prompt_tokens)
    assert sustained is not None
    return sustained.requests_per_s


def test_sustained_rate_is_the_tightest_refill_at_the_token_mix() -> None:
    # 600 requests/min = 10/s; 396,000 tokens/min at 1,100 tokens a call = 6/s
    limiter = RollingMinute(requests_per_min=600, tokens_per_min=396_000)
    assert _sustained_per_s(limiter, 1100, 1100) == pytest.approx(6.0)
    assert limiter.sustained(1100, 1100) == Sustained(pytest.approx(6.0), "396,000 tokens/min")
    # the tokens/min that would carry 8 such calls a second
    assert limiter.sustained(1100, 1100).needed_for(8.0) == "528,000 tokens/min"  # type: ignore[union-attr]
    assert _sustained_per_s(RollingMinute(240, 396_000), 1100, 1100) == pytest.approx(4.0)
    # a daily cap of 86,400 requests is one a second, whatever the minute allows
    assert _sustained_per_s(RollingMinute(600, None, requests_per_day=86_400), 1100, 1100) \
        == pytest.approx(1.0)
    # Bedrock hands back the unused reserve: only the tokens used count for good
    assert _sustained_per_s(BedrockReserve(None, 60_000), 1000, 500) == pytest.approx(2.0)
    # Azure: 60,000 TPM gives 360 RPM (6 per 1,000), so 6/s for small calls
    assert _sustained_per_s(AzureSlices(None, 60_000), 10, 10) == pytest.approx(6.0)
    assert RollingMinute(None, None).sustained(10, 10) is None


def test_quota_needed_names_every_limit_the_rate_passes() -> None:
    # 1,000 + 200 tokens a call under 500 requests/min (8.33/s) and 500,000 tokens/min
    # (500,000 / 60 / 1,200 = 6.94/s): 10 calls a second pass both, so both must rise, to
    # 600 requests/min and 720,000 tokens/min (raising only the tokens leaves 8.33/s)
    sustained = RollingMinute(requests_per_min=500, tokens_per_min=500_000).sustained(1200, 1200)
    assert sustained is not None
    assert sustained.limit == "500,000 tokens/min"
    assert sustained.needed_for(10.0) == "720,000 tokens/min and 600 requests/min"
    assert sustained.fields_for(10.0) == ["tokens_per_min", "requests_per_min"]
    # 8 a second pass the tokens alone: 576,000 of them
    assert sustained.needed_for(8.0) == "576,000 tokens/min"
    assert sustained.fields_for(8.0) == ["tokens_per_min"]
    # a daily cap tighter than the minute's: 43,200 requests/day is 0.5/s, 60 requests/min
    # 1/s; 2/s needs 172,800 a day and 120 a minute, the binding one first
    daily = RollingMinute(60, None, requests_per_day=43_200).sustained(10, 10)
    assert daily is not None and daily.needed_for(2.0) == "172,800 requests/day and " \
        "120 requests/min"
    assert daily.fields_for(2.0) == ["requests_per_day", "requests_per_min"]
    # half the stream never reaches the limits (too long for the model): twice the rate
    doubled = sustained.scaled(2.0)
    assert doubled.requests_per_s == pytest.approx(2 * 500_000 / 60 / 1200)
    assert doubled.needed_for(20.0) == "720,000 tokens/min and 600 requests/min"
    # Anthropic's output tokens/min is its own key
    output = InputOutput(None, 10**6, output_tokens_per_min=600).sustained(500, 200, 100)
    assert output is not None and output.fields_for(2.0) == ["output_tokens_per_min"]


def test_primed_bucket_is_empty_only_when_the_traffic_outruns_it() -> None:
    # 60 requests/min refill 1/s: steady traffic at 2/s has drained it, at 0.5/s has not
    over = RollingMinute(requests_per_min=60, tokens_per_min=None)
    over.prime(requests_per_s=2.0, charge_tokens=10, used_tokens=10)
    assert not over.try_acquire(0.0, 5, 5)[0]
    assert over.try_acquire(1.0, 5, 5)[0]                    # one refilled a second later
    under = RollingMinute(requests_per_min=60, tokens_per_min=None)
    under.prime(requests_per_s=0.5, charge_tokens=10, used_tokens=10)
    assert [under.try_acquire(0.0, 5, 5)[0] for _ in range(61)].count(True) == 60


def test_anthropic_counts_input_and_output_apart() -> None:
    """ITPM takes the prompt; OTPM the max_tokens estimate, settled to the answer's."""
    limiter = InputOutput(requests_per_min=None, tokens_per_min=1000,
                          output_tokens_per_min=4000)
    # 1,000 input tokens/min: ten 100-token prompts, whatever their answers ask for
    admitted = [limiter.try_acquire(0.0, 100, 400) for _ in range(11)]
    assert [a[0] for a in admitted].count(True) == 10
    # 4,000 output tokens/min held by ten 400-token estimates: nothing is left ...
    fresh = InputOutput(requests_per_min=None, tokens_per_min=10**6, output_tokens_per_min=4000)
    assert [fresh.try_acquire(0.0, 10, 400)[0] for _ in range(11)].count(True) == 10
    # ... until each answer ends having used 100 of its 400: 3,000 come back
    for _ in range(10):
        fresh.settle(0.0, 410, 110)
    assert [fresh.try_acquire(0.0, 10, 400)[0] for _ in range(8)].count(True) == 7
    # long run: the tighter of input (1,000 / 100 a call) and output (4,000 / 100 used)
    assert limiter.sustained(500, 200, 100) == Sustained(pytest.approx(1000 / 60 / 100),
                                                         "1,000 input tokens/min")
    tight = InputOutput(None, 10**6, output_tokens_per_min=600)
    assert tight.sustained(500, 200, 100) == Sustained(pytest.approx(600 / 60 / 100),
                                                       "600 output tokens/min")


def test_gemini_counts_the_prompt_alone() -> None:
    limiter = InputOnly(requests_per_min=None, tokens_per_min=1000)
    # 4,000-token answers to 100-token prompts: ten a minute, as a prompt-only count says
    assert [limiter.try_acquire(0.0, 100, 4000)[0] for _ in range(11)].count(True) == 10
    assert _sustained_per_s(InputOnly(None, 6000), 4100, 4100) == pytest.approx(100 / 4100)
    assert InputOnly(None, 6000).sustained(4100, 4100, 100) == \
        Sustained(pytest.approx(1.0), "6,000 input tokens/min")


def test_anthropic_cache_reads_leave_the_input_limit_alone() -> None:
    """Prompt tokens read from the cache do not count toward Anthropic's input tokens/min:
    with 80% of every prompt cached, five times as many prompts fit."""
    cached = InputOutput(requests_per_min=None, tokens_per_min=1000, uncached_share=0.2)
    assert [cached.try_acquire(0.0, 100, 10)[0] for _ in range(51)].count(True) == 50
    assert cached.sustained(110, 110, 100) == Sustained(pytest.approx(1000 / 60 / 20),
                                                        "1,000 input tokens/min")
