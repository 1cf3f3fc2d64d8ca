"""Held-out fidelity: calibrate on one load level of a real llama.cpp server, predict others.

    python benchmarks/fidelity.py [--requests 200] [--out DIR]

Prints the per-level table (measured vs predicted TTFT and E2E percentiles) and, as last
lines: e2e_p50_err_pct, e2e_p95_err_pct, ttft_p50_err_pct (median absolute error over the
held-out levels), the same at the speed the server ran at
(e2e_p50_at_run_speed_pct, ...: see heldout.py), saturation_err_pct and
noise_floor_e2e_p50_pct (same level run twice),
then the shared-prefix and conversation workloads (benchmarks/prefix_hits.py): their
TTFT p50 / E2E p50 / E2E p95 errors (prefix_e2e_p50_err_pct, session_e2e_p50_err_pct, ...)
and prefix_hit_rate_diff_pts / session_hit_rate_diff_pts (predicted - measured share of
prompt tokens from the cache).
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from heldout import run_experiment
from prefix_hits import run_hit_experiment


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None,
                        help="Keep every level's records and the calibration here.")
    args = parser.parse_args()
    experiment = run_experiment(requests_per_level=args.requests, out_dir=args.out)
    print(f"machine: {platform.machine()} python {platform.python_version()}, "
          f"llama.cpp via xllamacpp, SmolLM2-135M Q4_1, 1 thread, 4 slots")
    print("calibration:", experiment.calibration.step_time.model_dump_json(),
          experiment.calibration.fit.model_dump_json())
    header = ("rate", "role", "n", "achieved", "TTFT p50 meas/pred/err%",
              "E2E p50 meas/pred/err%", "E2E p95 meas/pred/err%")
    print(" | ".join(header))
    for row in experiment.table():
        cells = [f"{row['rate_per_s']:.2f}", row["role"], str(row["requests"]),
                 f"{row['achieved_per_s']:.2f}"]
        for metric, q in (("ttft_ms", "p50"), ("e2e_ms", "p50"), ("e2e_ms", "p95")):
            cells.append(f"{row[f'{metric}_{q}_measured']:.0f}/"
                         f"{row[f'{metric}_{q}_predicted']:.0f}/"
                         f"{row[f'{metric}_{q}_err_pct']:+.1f}")
        print(" | ".join(cells))
    print(f"e2e_p50_err_pct={experiment.median_abs_error_pct('e2e_ms', 'p50'):.2f}")
    print(f"e2e_p95_err_pct={experiment.median_abs_error_pct('e2e_ms', 'p95'):.2f}")
    print(f"ttft_p50_err_pct={experiment.median_abs_error_pct('ttft_ms', 'p50'):.2f}")
    for metric, q in (("e2e_ms", "p50"), ("e2e_ms", "p95"), ("ttft_ms", "p50")):
        name = f"{metric.removesuffix('_ms')}_{q}_at_run_speed_pct"
        value = experiment.median_abs_error_pct(metric, q, basis="at_run_speed")
        print(f"{name}={value:.2f}")
    print(f"saturation_err_pct={experiment.saturation_err_pct:.2f}")
    for metric, q in (("e2e_ms", "p50"), ("e2e_ms", "p95"), ("ttft_ms", "p50")):
        name = f"noise_floor_{metric.removesuffix('_ms')}_{q}_pct"
        print(f"{name}={experiment.noise_floor_pct(metric, q):.2f}")
    for hits in run_hit_experiment(out_dir=args.out / "prefix-hits" if args.out else None):
        print(f"{hits.name}_hit_rate_measured={hits.measured:.4f} "
              f"predicted={hits.predicted:.4f}")
        for key, value in hits.latency_err_pct.items():
            print(f"{hits.name}_{key}_err_pct={value:.2f}")
        print(f"{hits.name}_hit_rate_diff_pts={hits.diff_pts:.2f}")


if __name__ == "__main__":
    main()
