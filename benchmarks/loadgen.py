"""Load-generator ceiling on loopback: how fast our Locust user drives a trivial endpoint.

    python benchmarks/loadgen.py [--seconds 15] [--rate 150]

1. Closed loop, 32 users, one Locust process, against FakeOpenAI streaming 8 tokens per
   answer with no delay: streamed requests per second per worker process.
2. Open loop at a fixed rate (default 150 req/s) against the same endpoint: p99 of the
   generator's own schedule delay (send time - planned time).
Last lines: streamed_requests_per_s=<n> and schedule_delay_p99_ms=<n>.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import textwrap
from pathlib import Path

from llmplan.loadtests.plan import build_plan
from llmplan.loadtests.runner import LoadTestSettings, run_load_test
from llmplan.loadtests.targets import Target

# the loopback fake server lives with the tests that use it
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "loadtests"))
from fakes import FakeOpenAI

from llmplan.scenario import load_scenario_text

SCENARIO = """
    duration: {duration}
    traffic: {{kind: {kind}, rate_per_s: {rate}}}
    tasks: [{{name: t, prompt_tokens: {{kind: fixed, tokens: 16}},
             output_tokens: {{kind: fixed, tokens: 8}}}}]
    deployments: {{x: {{gpu: L4, model: SmolLM2-135M}}}}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=150.0)
    args = parser.parse_args()
    with FakeOpenAI(token_delay_s=0.0) as fake, tempfile.TemporaryDirectory() as tmp:
        target = Target(kind="openai", base_url=fake.base_url, model="ok",
                        request_timeout_s=10)
        closed = load_scenario_text(textwrap.dedent(SCENARIO.format(
            duration=60, kind="poisson", rate=100)))
        plan = build_plan(closed, max_requests=2000)
        result = run_load_test("fake", target, plan,
                               LoadTestSettings(users=32, duration_s=args.seconds, mode="closed"),
                               Path(tmp) / "closed")
        ok = result.summary.requests.finished
        streamed = ok / result.summary.throughput.window_s
        opened = load_scenario_text(textwrap.dedent(SCENARIO.format(
            duration=args.seconds, kind="constant", rate=args.rate)))
        plan = build_plan(opened)
        result = run_load_test("fake", target, plan,
                               LoadTestSettings(users=64, duration_s=args.seconds + 30),
                               Path(tmp) / "open")
        delay = result.summary.schedule_delay_ms
        achieved = result.summary.throughput.achieved_rate_per_s
    print(f"machine: {platform.machine()} python {platform.python_version()}")
    print(f"closed loop: {ok} streamed requests (8 tokens each) by one Locust process")
    print(f"open loop: {len(plan)} requests at {args.rate:g} req/s, achieved {achieved:.1f}, "
          f"schedule delay "
          f"{json.dumps({k: round(v, 2) for k, v in delay.model_dump().items() if v})}")
    print(f"streamed_requests_per_s={streamed:.0f}")
    print(f"schedule_delay_p99_ms={delay.p99 or 0.0:.2f}")


if __name__ == "__main__":
    main()
