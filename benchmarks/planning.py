"""Planning overhead: a `llmplan simulate` run with planning against the same run without.

    python benchmarks/planning.py [--repeat N] [--no-small | --small-only] [EXAMPLE ...]

For every bundled example (or those named), times `llmplan simulate EXAMPLE --out DIR` and
the same with `--no-plan` as subprocesses (what a user waits for, imports and report
included), alternating the two N times, and prints each example's ratio of the medians.

Then, unless --no-small, the small scenarios in benchmarks/small/ (a minute to five of
light traffic, one to three deployments): there the ~2 s of imports hide what planning
costs, so each runs `evaluate` with planning in a fresh process, timed from its start to
planning's first stage (the simulation) and from there to its end (planning and the
decision), N times; each prints (simulation + planning) / simulation of the medians.
Its last line is small_planning_ratio=<the worst small scenario's>.

Every run is of the code in this checkout (not of whatever `llmplan` the venv installed).
Last line: planning_overhead_ratio=<the worst example's ratio>.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SMALL = Path(__file__).resolve().parent / "small"
LLMPLAN = [sys.executable, "-c", "from llmplan.entry import main; main()"]

#: one small scenario in a fresh process: seconds simulating, then planning (and deciding)
TIMED = """
import json, sys, time
from pathlib import Path
from llmplan.pipeline import evaluate
from llmplan.scenario import load_scenario
loaded = load_scenario(Path(sys.argv[1]))
marks = []
start = time.perf_counter()
evaluate(loaded, planning=True, stage=lambda _s: marks.append(time.perf_counter()))
end = time.perf_counter()
print(json.dumps([marks[0] - start, end - marks[0]]))
"""


def wall_s(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=ROOT)
    return time.perf_counter() - start


def small_s(path: Path) -> tuple[float, float]:
    """(simulation s, planning s) of one small scenario in a fresh process."""
    done = subprocess.run([sys.executable, "-c", TIMED, str(path)], check=True, cwd=ROOT,
                          capture_output=True, text=True)
    simulated, planned = json.loads(done.stdout.strip().splitlines()[-1])
    return float(simulated), float(planned)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("examples", nargs="*")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-small", action="store_true",
                        help="Skip the small scenarios of benchmarks/small/.")
    parser.add_argument("--small-only", action="store_true",
                        help="Only the small scenarios (no planning_overhead_ratio line).")
    args = parser.parse_args()
    names = args.examples or sorted(p.stem for p in EXAMPLES.glob("*.yaml")
                                    if p.stem != "targets")
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    if not args.no_small:
        worst_small = 0.0
        for path in sorted(SMALL.glob("*.yaml")):
            runs = [small_s(path) for _ in range(args.repeat)]
            simulated = statistics.median(s for s, _ in runs)
            planned = statistics.median(p for _, p in runs)
            ratio = (simulated + planned) / simulated
            worst_small = max(worst_small, ratio)
            print(f"small/{path.stem}: simulation {simulated:.3f} s, planning "
                  f"{planned:.3f} s, ratio {ratio:.2f}")
        print(f"small_planning_ratio={worst_small:.2f}")
    if args.small_only:
        return
    worst = 0.0
    with tempfile.TemporaryDirectory() as out:
        for name in names:
            base = [*LLMPLAN, "simulate", str(EXAMPLES / f"{name}.yaml"), "--out", out, "-q"]
            planned_s, plain_s = [], []
            for _ in range(args.repeat):
                plain_s.append(wall_s([*base, "--no-plan"]))
                planned_s.append(wall_s(base))
            ratio = statistics.median(planned_s) / statistics.median(plain_s)
            worst = max(worst, ratio)
            print(f"{name}: --no-plan {statistics.median(plain_s):.2f} s, with planning "
                  f"{statistics.median(planned_s):.2f} s, ratio {ratio:.2f}")
    print(f"planning_overhead_ratio={worst:.2f}")


if __name__ == "__main__":
    main()
