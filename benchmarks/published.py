"""The uncalibrated catalog against the published record: throughput and KV-cache size.

    python benchmarks/published.py

Simulates every case of benchmarks/published_record.yaml (serving throughput from MLPerf-
style offline runs, InferenceMAX concurrency sweeps, vendor and engine tables) and computes
every vLLM start-up line of benchmarks/kv_record.yaml, with the catalog's roofline defaults
and nothing fitted per case. Prints both tables (and, for the cases whose source prints
it, the median time per output token measured and predicted), and as last lines: published_cases=,
published_median_abs_err_pct=, published_max_abs_err_pct=, kv_cache_median_abs_err_pct=.
"""

from __future__ import annotations

import platform
import time

import numpy as np
from record import KvCase, ThroughputCase, kv_outcomes, load_cases, summary, throughput_outcomes


def main() -> None:
    started = time.perf_counter()
    cases = load_cases(ThroughputCase, "published_record.yaml")
    outcomes = throughput_outcomes(cases)
    print(f"machine: {platform.machine()} python {platform.python_version()}")
    print(f"{'case':52} {'engine':7} {'measured':>10} {'predicted':>10} {'err %':>7}")
    for case, o in zip(cases, outcomes, strict=True):
        print(f"{case.id[:52]:52} {case.engine:7} {o.measured:10.0f} {o.predicted:10.0f} "
              f"{o.error_pct:+7.1f}")
    timed = [o for o in outcomes if o.tpot_error_pct is not None]
    print(f"\n{'median TPOT (ms), where the source prints it':52} {'':7} {'measured':>10} "
          f"{'predicted':>10} {'err %':>7}")
    errors = []
    for o in timed:
        assert o.tpot_error_pct is not None
        errors.append(abs(o.tpot_error_pct))
        print(f"{o.case_id[:52]:52} {'':7} {o.measured_tpot_ms:10.1f} "
              f"{o.predicted_tpot_ms:10.1f} {o.tpot_error_pct:+7.1f}")
    print(f"({len(timed)} cases: median abs error {np.median(errors):.1f}%, "
          f"max {max(errors):.1f}%)")
    kv_cases = load_cases(KvCase, "kv_record.yaml")
    kv = kv_outcomes(kv_cases)
    print(f"\n{'vLLM start-up line':52} {'version':8} {'logged':>10} {'predicted':>10} "
          f"{'err %':>7}")
    for case, o in zip(kv_cases, kv, strict=True):
        print(f"{case.id[:52]:52} {case.vllm_version:8} {o.measured:10.0f} {o.predicted:10.0f} "
              f"{o.error_pct:+7.1f}")
    median, worst = summary(outcomes)
    kv_median, _ = summary(kv)
    print(f"\n({time.perf_counter() - started:.1f} s)")
    print(f"published_cases={len(outcomes)}")
    print(f"published_median_abs_err_pct={median:.1f}")
    print(f"published_max_abs_err_pct={worst:.1f}")
    print(f"kv_cache_median_abs_err_pct={kv_median:.1f}")


if __name__ == "__main__":
    main()
