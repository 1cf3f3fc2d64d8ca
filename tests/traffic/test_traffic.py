"""Arrival processes and length distributions against theory.

Tolerances are a few standard errors of the estimator (given by the formula next to each one),
with fixed seeds, so the tests are both meaningful and deterministic.
"""

from __future__ import annotations

import json
import math
import statistics
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmplan.scenario import Scenario, load_scenario_text
from llmplan.traffic import build_request_stream
from llmplan.traffic.arrivals import (
    ConstantTraffic,
    DiurnalTraffic,
    GammaTraffic,
    PoissonTraffic,
    Spike,
)
from llmplan.traffic.lengths import (
    EmpiricalLength,
    ExponentialLength,
    FixedLength,
    LognormalLength,
    UniformLength,
)

HOUR = 3600.0
DAY = 24 * HOUR
K = 5.0  # standard errors allowed


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def within(observed: Any, expected: float, standard_error: float) -> bool:
    return bool(abs(float(observed) - expected) <= K * standard_error)


def scenario(traffic: str, tasks: str | None = None, *, duration: str = "1h", seed: int = 1,
             base_dir: Path | None = None, deployments: str | None = None) -> Scenario:
    tasks = tasks or """
        - name: chat
          prompt_tokens: {kind: fixed, tokens: 100}
          output_tokens: {kind: fixed, tokens: 10}
    """
    deployments = deployments or "a: {gpu: H100-SXM, model: Llama-3.1-8B}"
    text = (f"seed: {seed}\nduration: {duration}\ntraffic: {traffic}\n"
            f"tasks:\n{textwrap.indent(textwrap.dedent(tasks).strip(), '  ')}\n"
            f"deployments:\n  {deployments}\n")
    return load_scenario_text(text, base_dir=base_dir or ".").scenario


def _assert_sorted_inside(times: np.ndarray, duration: float) -> None:
    assert len(times) > 0
    assert np.all(np.diff(times) >= 0)
    assert times[0] >= 0 and times[-1] < duration


# --- Poisson, Gamma, constant ------------------------------------------------------------

def test_poisson_count_matches_rate() -> None:
    rate, duration = 5.0, 20_000.0
    times = PoissonTraffic(rate_per_s=rate).arrival_times_s(rng(1), duration)
    _assert_sorted_inside(times, duration)
    expected = rate * duration  # Poisson count: variance = mean
    assert within(len(times), expected, math.sqrt(expected))


def test_poisson_gaps_are_exponential() -> None:
    rate = 5.0
    gaps = np.diff(PoissonTraffic(rate_per_s=rate).arrival_times_s(rng(2), 20_000.0))
    n = len(gaps)
    assert within(gaps.mean(), 1 / rate, (1 / rate) / math.sqrt(n))
    # CV of an exponential is 1; its estimate has a standard error of about 1/sqrt(n)
    assert within(gaps.std() / gaps.mean(), 1.0, 1 / math.sqrt(n))
    # memoryless: P(gap > 2/rate) = e^-2, P(gap > 2/rate | gap > 1/rate) = e^-1
    p = math.exp(-2)
    assert within(np.mean(gaps > 2 / rate), p, math.sqrt(p * (1 - p) / n))
    long = gaps[gaps > 1 / rate]
    q = math.exp(-1)
    assert within(np.mean(long > 2 / rate), q, math.sqrt(q * (1 - q) / len(long)))


@pytest.mark.parametrize("cv", [0.5, 3.0])
def test_gamma_gaps_have_the_requested_cv(cv: float) -> None:
    rate, duration = 10.0, 20_000.0
    times = GammaTraffic(rate_per_s=rate, cv=cv).arrival_times_s(rng(3), duration)
    _assert_sorted_inside(times, duration)
    gaps = np.diff(times)
    n = len(gaps)
    # Renewal count: variance ~ cv^2 * rate * duration.
    assert within(len(times), rate * duration, cv * math.sqrt(rate * duration))
    assert within(gaps.mean(), 1 / rate, cv / rate / math.sqrt(n))
    # Delta method for sd/mean of a Gamma with shape k = 1/cv^2 (excess kurtosis 6/k):
    # relative variance of the sd is (6/k + 2)/(4n), of the mean cv^2/n; their positive
    # correlation only shrinks the ratio's variance, so the sum is a safe bound.
    rel_se = math.sqrt((6 * cv * cv + 2) / (4 * n) + cv * cv / n)
    assert within(gaps.std() / gaps.mean(), cv, cv * rel_se)


def test_gamma_window_counts_spread_by_cv_times_root_n() -> None:
    """The spread the loader quotes when it refuses gaps too bursty for their window
    (traffic.cv): over many windows of N expected requests, the count's standard deviation
    is about cv * sqrt(N) (the renewal central limit theorem)."""
    cv, n_expected, windows = 3.0, 400.0, 400
    traffic = GammaTraffic(rate_per_s=1.0, cv=cv)
    counts = [len(traffic.arrival_times_s(rng(seed), n_expected)) for seed in range(windows)]
    spread = statistics.stdev(counts)
    # a sample standard deviation of `windows` near-normal counts: relative error 1/sqrt(2w)
    assert within(spread, cv * math.sqrt(n_expected), spread / math.sqrt(2 * windows))
    assert within(statistics.fmean(counts), n_expected, spread / math.sqrt(windows))


def test_constant_is_perfectly_regular() -> None:
    rate, duration = 4.0, 1000.0  # 1/4 s is exact in binary
    times = ConstantTraffic(rate_per_s=rate).arrival_times_s(rng(4), duration)
    assert len(times) == rate * duration
    assert times[0] == 0.0
    np.testing.assert_array_equal(np.diff(times), np.full(len(times) - 1, 1 / rate))


def test_constant_ignores_the_random_generator() -> None:
    a = ConstantTraffic(rate_per_s=3).arrival_times_s(rng(1), 100.0)
    b = ConstantTraffic(rate_per_s=3).arrival_times_s(rng(2), 100.0)
    np.testing.assert_array_equal(a, b)


def test_constant_with_a_spike_stays_regular_at_the_higher_rate() -> None:
    rate, spike = 2.0, Spike(start_s=10, duration_s=5, multiplier=3)
    times = ConstantTraffic(rate_per_s=rate, spikes=(spike,)).arrival_times_s(rng(5), 30.0)
    gaps, left = np.diff(times), times[:-1]
    inside = (left >= 10.0) & (times[1:] <= 15.0)
    outside = (times[1:] <= 10.0) | (left >= 15.0)
    np.testing.assert_allclose(gaps[inside], 1 / (rate * 3), rtol=1e-6)
    np.testing.assert_allclose(gaps[outside], 1 / rate, rtol=1e-6)
    assert inside.sum() >= 14 and outside.sum() >= 38


# --- diurnal -----------------------------------------------------------------------------

@pytest.mark.parametrize("peak_to_mean", [1.5, 2.5, 10.0])
def test_diurnal_curve_has_the_requested_mean_and_peak(peak_to_mean: float) -> None:
    mean, peak_hour = 3.0, 14.0
    traffic = DiurnalTraffic(mean_rate_per_s=mean, peak_to_mean=peak_to_mean,
                             peak_hour=peak_hour)
    t = np.arange(0.0, DAY, 10.0)  # a periodic smooth curve: the plain average is exact
    rate = traffic.rate_at(t)
    assert rate.mean() == pytest.approx(mean, rel=1e-9)
    assert rate.max() / mean == pytest.approx(peak_to_mean, rel=1e-9)
    assert t[np.argmax(rate)] == peak_hour * HOUR
    assert t[np.argmin(rate)] == (peak_hour + 12) % 24 * HOUR
    # symmetric about the peak
    x = np.linspace(0, 12 * HOUR, 50)
    np.testing.assert_allclose(traffic.rate_at(peak_hour * HOUR + x),
                               traffic.rate_at(peak_hour * HOUR - x), rtol=1e-9)
    assert traffic.expected_rate_per_s(DAY) == pytest.approx(mean, rel=1e-6)


def test_diurnal_start_hour_shifts_the_clock() -> None:
    traffic = DiurnalTraffic(mean_rate_per_s=1, peak_to_mean=2, peak_hour=6, start_hour=20)
    t = np.arange(0.0, DAY, 60.0)
    # t = 0 is 20:00, so 06:00 comes 10 hours later
    assert t[np.argmax(traffic.rate_at(t))] == 10 * HOUR


def test_diurnal_arrivals_follow_the_curve_hour_by_hour() -> None:
    traffic = DiurnalTraffic(mean_rate_per_s=2.0, peak_to_mean=3.0, peak_hour=15)
    times = traffic.arrival_times_s(rng(6), DAY)
    _assert_sorted_inside(times, DAY)
    counts = np.bincount((times // HOUR).astype(int), minlength=24)
    assert len(counts) == 24
    for hour in range(24):
        t = np.linspace(hour * HOUR, (hour + 1) * HOUR, 3601)
        expected = float(np.trapezoid(traffic.rate_at(t), t))  # Poisson: variance = mean
        assert within(counts[hour], expected, math.sqrt(expected)), (hour, counts[hour], expected)
    assert within(len(times), 2.0 * DAY, math.sqrt(2.0 * DAY))
    # busiest hours are around the peak (15:00), quietest twelve hours away (03:00)
    assert np.argmax(counts) in (13, 14, 15, 16)
    assert np.argmin(counts) in (1, 2, 3, 4)


def test_diurnal_gamma_keeps_the_daily_total() -> None:
    cv = 2.0
    traffic = DiurnalTraffic(mean_rate_per_s=1.0, peak_to_mean=2.0, arrival="gamma", cv=cv)
    times = traffic.arrival_times_s(rng(7), DAY)
    assert within(len(times), DAY, cv * math.sqrt(DAY))


# --- spikes ------------------------------------------------------------------------------

def test_spike_multiplies_the_rate_inside_its_window() -> None:
    rate, duration = 2.0, 4000.0
    spike = Spike(start_s=1000, duration_s=500, multiplier=4)
    traffic = PoissonTraffic(rate_per_s=rate, spikes=(spike,))
    np.testing.assert_array_equal(traffic.rate_at(np.array([999.9, 1000.0, 1499.9, 1500.0])),
                                  [2.0, 8.0, 8.0, 2.0])
    times = traffic.arrival_times_s(rng(8), duration)
    _assert_sorted_inside(times, duration)
    inside = int(np.sum((times >= 1000) & (times < 1500)))
    outside = len(times) - inside
    assert within(inside, rate * 4 * 500, math.sqrt(rate * 4 * 500))
    assert within(outside, rate * 3500, math.sqrt(rate * 3500))
    # expected rate over the run: (2 x 3500 + 8 x 500) / 4000 = 2.75
    assert traffic.expected_rate_per_s(duration) == pytest.approx(2.75, rel=1e-3)


def test_overlapping_spikes_compound() -> None:
    traffic = PoissonTraffic(rate_per_s=1.0, spikes=(Spike(start_s=100, duration_s=100,
                                                           multiplier=2),
                                                     Spike(start_s=150, duration_s=100,
                                                           multiplier=3)))
    np.testing.assert_array_equal(traffic.rate_at(np.array([120.0, 175.0, 220.0, 300.0])),
                                  [2.0, 6.0, 3.0, 1.0])


# --- trace replay ------------------------------------------------------------------------

TWO_TASKS = """
    - name: chat
      prompt_tokens: {kind: fixed, tokens: 1}
      output_tokens: {kind: fixed, tokens: 1}
    - name: classify
      prompt_tokens: {kind: fixed, tokens: 1}
      output_tokens: {kind: fixed, tokens: 1}
"""


def test_csv_trace_is_replayed_shifted_and_scaled(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(
        "timestamp,prompt_tokens,output_tokens,task\n"
        "1000.0,10,1,chat\n"
        "1003.5,30,3,chat\n"       # out of order on purpose
        "1001.0,20,2,classify\n"
        "1010.0,40,4,chat\n")
    s = scenario("{kind: trace, path: t.csv, time_scale: 0.5}", TWO_TASKS, base_dir=tmp_path)
    stream = build_request_stream(s)
    # sorted times 1000, 1001, 1003.5, 1010 -> minus 1000 -> times 0.5
    np.testing.assert_allclose(stream.arrival_s, [0.0, 0.5, 1.75, 5.0])
    np.testing.assert_array_equal(stream.prompt_tokens, [10, 20, 30, 40])
    np.testing.assert_array_equal(stream.output_tokens, [1, 2, 3, 4])
    assert [stream.task_names[i] for i in stream.task_index] == ["chat", "classify", "chat",
                                                                 "chat"]


def test_trace_rows_past_the_duration_are_dropped(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("timestamp,prompt_tokens,output_tokens\n"
                                    "0,5,1\n1,6,2\n2,7,3\n3,8,4\n")
    s = scenario("{kind: trace, path: t.csv, time_scale: 2}", duration="5s", base_dir=tmp_path)
    stream = build_request_stream(s)
    np.testing.assert_allclose(stream.arrival_s, [0.0, 2.0, 4.0])  # 6 s is past 5 s
    np.testing.assert_array_equal(stream.prompt_tokens, [5, 6, 7])
    np.testing.assert_array_equal(stream.output_tokens, [1, 2, 3])
    assert s.traffic.expected_rate_per_s(5.0) == pytest.approx(3 / 5)


def test_jsonl_trace_with_iso_timestamps(tmp_path: Path) -> None:
    rows = [
        {"timestamp": "2024-05-01T12:00:00Z", "prompt_tokens": 100, "output_tokens": 7},
        {"timestamp": "2024-05-01T12:00:02.5Z", "prompt_tokens": 200, "output_tokens": 8},
        {"timestamp": "2024-05-01T14:00:30+02:00", "prompt_tokens": 300, "output_tokens": 9},
        {"timestamp": "2024-05-01T12:01:00+00:00", "prompt_tokens": 400, "output_tokens": 10},
    ]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    s = scenario("{kind: trace, path: t.jsonl, time_scale: 2}", base_dir=tmp_path)
    stream = build_request_stream(s)
    # 12:00:00, 12:00:02.5, 12:00:30 (14:00:30 at +02:00), 12:01:00 UTC -> 0, 2.5, 30, 60 s, x2
    np.testing.assert_allclose(stream.arrival_s, [0.0, 5.0, 60.0, 120.0])
    np.testing.assert_array_equal(stream.prompt_tokens, [100, 200, 300, 400])
    np.testing.assert_array_equal(stream.output_tokens, [7, 8, 9, 10])


# --- lengths -----------------------------------------------------------------------------

N = 200_000


@pytest.mark.parametrize(("mean", "p95"), [(900, 2400), (250, 600), (100, 350)])
def test_lognormal_mean_and_p95(mean: float, p95: float) -> None:
    samples = LognormalLength(mean=mean, p95=p95).sample(rng(9), N)
    assert samples.dtype == np.int64 and samples.min() >= 1
    assert within(samples.mean(), mean, samples.std() / math.sqrt(N))
    # the share below the requested p95 is 0.95, binomial standard error
    assert within(np.mean(samples < p95), 0.95, math.sqrt(0.95 * 0.05 / N))


def test_lognormal_median_from_theory() -> None:
    # mean = exp(mu + s^2/2) and p95 = exp(mu + z s) give s = z - sqrt(z^2 - 2 ln(p95/mean));
    # the median is exp(mu) = mean exp(-s^2/2).
    mean, p95 = 900.0, 2400.0
    z = statistics.NormalDist().inv_cdf(0.95)
    s = z - math.sqrt(z * z - 2 * math.log(p95 / mean))
    median = mean * math.exp(-s * s / 2)
    samples = LognormalLength(mean=mean, p95=p95).sample(rng(10), N)
    assert within(np.mean(samples < median), 0.5, math.sqrt(0.25 / N))


def test_max_tokens_clips() -> None:
    samples = LognormalLength(mean=500, p95=1500, max_tokens=800).sample(rng(11), 10_000)
    assert samples.max() == 800
    assert np.mean(samples == 800) > 0.1  # well over 5% of a lognormal with p95 1500 is > 800


def test_uniform_bounds_are_inclusive() -> None:
    samples = UniformLength(min_tokens=3, max_tokens=7).sample(rng(12), N)
    assert set(np.unique(samples).tolist()) == {3, 4, 5, 6, 7}
    for value in range(3, 8):
        assert within(np.mean(samples == value), 0.2, math.sqrt(0.2 * 0.8 / N))


def test_uniform_with_equal_bounds_is_constant() -> None:
    assert set(UniformLength(min_tokens=9, max_tokens=9).sample(rng(0), 100).tolist()) == {9}


def test_exponential_length_mean_and_memorylessness() -> None:
    mean = 40.0
    samples = ExponentialLength(mean=mean).sample(rng(13), N)
    assert samples.min() == 1
    # geometric on 1, 2, ... with p = 1/mean: variance (1-p)/p^2, P(X = 1) = p
    p = 1 / mean
    assert within(samples.mean(), mean, math.sqrt((1 - p) / p**2 / N))
    assert within(np.mean(samples == 1), p, math.sqrt(p * (1 - p) / N))
    tail = samples[samples > 20] - 20  # memoryless: the excess is distributed like the whole
    assert within(tail.mean(), mean, math.sqrt((1 - p) / p**2 / len(tail)))


def test_fixed_length() -> None:
    assert set(FixedLength(tokens=17).sample(rng(0), 1000).tolist()) == {17}


def test_empirical_resamples_only_values_of_the_trace_and_task(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(
        "timestamp,prompt_tokens,output_tokens,task\n"
        "0,11,101,chat\n1,12,102,chat\n2,13,103,classify\n3,14,104,chat\n4,15,105,classify\n")
    context = {"base_dir": str(tmp_path)}
    everything = EmpiricalLength.model_validate(
        {"path": "t.csv", "column": "prompt_tokens"}, context=context)
    chat = EmpiricalLength.model_validate(
        {"path": "t.csv", "column": "output_tokens", "task": "chat"}, context=context)
    all_samples = everything.sample(rng(14), 5000)
    chat_samples = chat.sample(rng(15), 5000)
    # 5000 draws from 3 to 5 values: each one shows up (missing one has probability < 1e-300)
    assert set(all_samples.tolist()) == {11, 12, 13, 14, 15}
    assert set(chat_samples.tolist()) == {101, 102, 104}
    for value in (101, 102, 104):
        assert within(np.mean(chat_samples == value), 1 / 3, math.sqrt(2 / 9 / 5000))
    assert chat.mean_tokens() == pytest.approx((101 + 102 + 104) / 3)


def test_empirical_for_a_task_without_rows_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("timestamp,prompt_tokens,output_tokens,task\n0,1,1,chat\n")
    with pytest.raises(ValueError, match="no rows for task 'triage'"):
        EmpiricalLength.model_validate({"path": "t.csv", "column": "prompt_tokens",
                                        "task": "triage"}, context={"base_dir": str(tmp_path)})


# --- the request stream ------------------------------------------------------------------

WEIGHTED = """
    - name: chat
      weight: 3
      prompt_tokens: {kind: fixed, tokens: 111}
      output_tokens: {kind: fixed, tokens: 11}
    - name: classify
      weight: 1
      prompt_tokens: {kind: fixed, tokens: 222}
      output_tokens: {kind: uniform, min_tokens: 1, max_tokens: 4}
"""


def test_stream_is_deterministic_per_seed() -> None:
    s = scenario("{kind: poisson, rate_per_s: 5}", WEIGHTED, duration="10m", seed=42)
    a, b = build_request_stream(s), build_request_stream(s)
    explicit = build_request_stream(s, seed=42)
    other = build_request_stream(s, seed=43)
    for x in (b, explicit):
        np.testing.assert_array_equal(a.arrival_s, x.arrival_s)
        np.testing.assert_array_equal(a.task_index, x.task_index)
        np.testing.assert_array_equal(a.prompt_tokens, x.prompt_tokens)
        np.testing.assert_array_equal(a.output_tokens, x.output_tokens)
    assert len(a) != len(other) or not np.array_equal(a.arrival_s, other.arrival_s)
    n = min(len(a), len(other))
    assert not np.array_equal(a.task_index[:n], other.task_index[:n])


def test_stream_does_not_depend_on_the_deployments() -> None:
    one = scenario("{kind: gamma, rate_per_s: 3, cv: 2}", WEIGHTED, duration="10m")
    two = scenario("{kind: gamma, rate_per_s: 3, cv: 2}", WEIGHTED, duration="10m",
                   deployments="b: {gpu: L4, model: Qwen2.5-7B, replicas: 3}")
    a, b = build_request_stream(one), build_request_stream(two)
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)
    np.testing.assert_array_equal(a.output_tokens, b.output_tokens)


def test_stream_respects_task_weights_and_lengths() -> None:
    s = scenario("{kind: poisson, rate_per_s: 5}", WEIGHTED, duration="1h", seed=3)
    stream = build_request_stream(s)
    n = len(stream)
    assert stream.task_names == ("chat", "classify")
    chat = stream.task_index == 0
    assert within(chat.mean(), 0.75, math.sqrt(0.75 * 0.25 / n))
    assert set(stream.prompt_tokens[chat].tolist()) == {111}
    assert set(stream.prompt_tokens[~chat].tolist()) == {222}
    assert set(stream.output_tokens[chat].tolist()) == {11}
    assert set(stream.output_tokens[~chat].tolist()) == {1, 2, 3, 4}
    assert np.all(np.diff(stream.arrival_s) >= 0)
    assert within(n, 5 * HOUR, math.sqrt(5 * HOUR))
