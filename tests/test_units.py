"""A number written with its unit, for a field whose name carries the unit: what to write."""

from __future__ import annotations

import pytest

from llmplan.units import count_with_suffix, number_in_named_unit


@pytest.mark.parametrize(("field", "text", "written"), [
    ("ttft_ms", "2000ms", "ttft_ms: 2000"),          # the unit repeated: the number as is
    ("ttft_ms", "2 s", "ttft_ms: 2000"),             # 2 s = 2,000 ms
    ("tpot_ms", "0.05s", "tpot_ms: 50"),
    ("queue_timeout_s", "1m", "queue_timeout_s: 60"),
    ("spin_up_s", "3 minutes", "spin_up_s: 180"),
    ("mttr_minutes", "2h", "mttr_minutes: 120"),
    ("rate_per_s", "180/min", "rate_per_s: 3"),      # 180 a minute = 3 a second
    ("rate_per_s", "7200 per hour", "rate_per_s: 2"),
    ("requests_per_min", "10/s", "requests_per_min: 600"),
    ("min_goodput_fraction", "95%", "min_goodput_fraction: 0.95"),   # a percentage of 1
    ("min_goodput_fraction", "99.9 %", "min_goodput_fraction: 0.999"),
    ("kv_cache_memory_gib", "40GiB", "kv_cache_memory_gib: 40"),    # memory: the unit repeated
    ("kv_cache_memory_gib", "80 GB", "kv_cache_memory_gib: 74.5058"),   # 80e9 / 2^30
    ("memory_mib", "80 GiB", "memory_mib: 81920"),                  # 80 x 1,024
    ("marketed_memory_gb", "80GiB", "marketed_memory_gb: 85.8993"),  # 80 x 2^30 / 1e9
])
def test_a_time_or_memory_unit_in_the_value_is_converted_to_the_named_one(field: str, text: str,
                                                                 written: str) -> None:
    hint = number_in_named_unit(field, text)
    assert hint is not None and hint.endswith(f"write {written}")


def test_a_percentage_in_a_mapping_of_shares_is_written_as_a_fraction_of_1() -> None:
    # a task's quality maps deployments to shares of right answers: no entry's name says so
    hint = number_in_named_unit("api", "95%", within="quality")
    assert hint == "quality holds a fraction of 1: write api: 0.95"
    assert number_in_named_unit("api", "95%", within="weights") is None
    assert number_in_named_unit("api", "95%") is None


@pytest.mark.parametrize(("field", "text"), [
    ("rate_per_s", "3 s"),       # a duration where a rate belongs: no number to offer
    ("ttft_ms", "2/s"),          # a rate where a duration belongs
    ("ttft_ms", "fast"),
    ("ttft_ms", "2 GB"),         # no time unit
    ("zipf_s", "1s"),            # Zipf's exponent, not seconds
    ("replicas", "2 s"),         # the name gives no unit
    ("weight", "80%"),           # relative, not a fraction of 1
    ("kv_cache_memory_gib", "40 s"),     # a time where memory belongs
    ("memory_mib", "2 GB/s"),            # a bandwidth
])
def test_no_hint_where_the_text_or_the_name_gives_no_such_unit(field: str, text: str) -> None:
    assert number_in_named_unit(field, text) is None


# vLLM's human_readable_int (vllm/engine/arg_utils.py): "1k -> 1,000", "1K -> 1,024",
# "25.6k -> 25,600"
@pytest.mark.parametrize(("field", "text", "vllm_flag", "written"), [
    ("max_model_len", "32k", True, "max_model_len: 32000"),              # 32 x 1,000
    ("max_model_len", "32K", True, "max_model_len: 32768"),              # 32 x 1,024
    ("max_num_batched_tokens", "25.6k", True, "max_num_batched_tokens: 25600"),
    ("kv_cache_tokens", "1M", True, "kv_cache_tokens: 1048576"),         # 1,024^2
    ("tokens_per_min", "4M", False, "tokens_per_min: 4000000"),          # a provider's 4M
    ("max_tokens", "4k", False, "max_tokens: 4000"),
])
def test_a_count_with_a_magnitude_suffix_is_written_out(field: str, text: str, vllm_flag: bool,
                                                        written: str) -> None:
    hint = count_with_suffix(field, text, vllm_flag=vllm_flag, whole=True)
    assert hint is not None and hint.startswith(f"write {written} (")


@pytest.mark.parametrize("text", ["32", "32 kb", "k", "32x", "thirty-two k"])
def test_no_count_hint_without_a_lone_magnitude_suffix(text: str) -> None:
    assert count_with_suffix("max_model_len", text, vllm_flag=True, whole=True) is None
