"""Planning overhead: a `llmplan simulate` run with planning against the same run without.

    python benchmarks/planning.py [--repeat N] [EXAMPLE ...]

For every bundled example (or those named), times `llmplan simulate EXAMPLE --out DIR` and
the same with `--no-plan` as subprocesses (what a user waits for, imports and report
included), alternating the two N times, and prints each example's ratio of the medians.
Last line: planning_overhead_ratio=<the worst example's ratio>.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def wall_s(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("examples", nargs="*")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    names = args.examples or sorted(p.stem for p in EXAMPLES.glob("*.yaml")
                                    if p.stem != "targets")
    llmplan = str(Path(sys.executable).with_name("llmplan"))
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as out:
        for name in names:
            base = [llmplan, "simulate", str(EXAMPLES / f"{name}.yaml"), "--out", out, "-q"]
            planned, plain = [], []
            for _ in range(args.repeat):
                plain.append(wall_s([*base, "--no-plan"]))
                planned.append(wall_s(base))
            ratio = statistics.median(planned) / statistics.median(plain)
            worst = max(worst, ratio)
            print(f"{name}: --no-plan {statistics.median(plain):.2f} s, with planning "
                  f"{statistics.median(planned):.2f} s, ratio {ratio:.2f}")
    print(f"planning_overhead_ratio={worst:.2f}")


if __name__ == "__main__":
    main()
