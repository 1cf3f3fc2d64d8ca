"""What a load test replays: a scenario file's traffic, or a quick fixed workload.

A scenario file used only for a load test needs no `deployments:` block (the scenario
schema wants one for simulation: a placeholder is added, never used). A quick run (`llmplan
loadtest --target NAME --prompt-tokens 200 --output-tokens 32 --concurrency 2 --requests
100`) is a one-task Poisson scenario built here. `check_context` refuses, before anything
is sent, requests that cannot fit the server's context per slot (llama.cpp /props).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from llmplan.errors import InputError, Problem
from llmplan.loadtests.plan import PlanItem
from llmplan.loadtests.server_props import ServerProps
from llmplan.scenario import LoadedScenario, load_scenario, load_scenario_text

_PLACEHOLDER = "\ndeployments: {loadtest-only: {gpu: L4, model: SmolLM2-135M}}\n"
#: Tokens a chat request adds around the prompt (template, role markers, the run's salt).
TEMPLATE_MARGIN_TOKENS = 64


def load_workload(path: Path) -> LoadedScenario:
    """The scenario at `path`, with or without deployments."""
    try:
        text = path.read_text(encoding="utf-8")
        doc = yaml.safe_load(text)
    except (OSError, yaml.YAMLError):
        return load_scenario(path)          # the loader names the problem
    if isinstance(doc, dict) and "deployments" not in doc:
        return load_scenario_text(text.rstrip("\n") + "\n" + _PLACEHOLDER, file=str(path),
                                  base_dir=path.resolve().parent)
    return load_scenario(path)


def quick_workload(*, prompt_tokens: int, output_tokens: int, rate_per_s: float | None,
                   requests: int | None, seed: int = 1) -> LoadedScenario:
    """One task, fixed lengths, Poisson arrivals at `rate_per_s` (closed loop: any rate)."""
    rate = rate_per_s or 1.0
    duration = max(60.0, 3.0 * (requests or 1000) / rate)
    return load_scenario_text(textwrap.dedent(f"""
        name: quick-{prompt_tokens}-{output_tokens}
        seed: {seed}
        duration: {duration:.0f}
        traffic: {{kind: poisson, rate_per_s: {rate}}}
        tasks: [{{name: quick, prompt_tokens: {{kind: fixed, tokens: {prompt_tokens}}},
                  output_tokens: {{kind: fixed, tokens: {output_tokens}}}}}]
        """) + _PLACEHOLDER, file="<command line>")


def check_api(loaded: LoadedScenario, target_api: str, target: str) -> None:
    """Fail before sending when a task says how its requests reach the engine (`api`) and
    the target uses the other API: the server would not compute what was simulated."""
    wrong = [(i, task) for i, task in enumerate(loaded.scenario.tasks)
             if task.api is not None and task.api != target_api]
    if wrong:
        raise InputError([Problem(str(loaded.path), None, f"tasks[{i}].api",
                                  f"task {task.name!r} is sent as {task.api}, but target "
                                  f"{target!r} uses the {target_api} API: expected "
                                  f"{target_api!r} or a {task.api} target")
                          for i, task in wrong], title="the plan does not fit the target")


def check_context(plan: list[PlanItem], props: ServerProps | None, source: str) -> None:
    """Fail before sending when some request cannot fit one slot's context."""
    n_ctx = props.n_ctx_per_slot if props is not None else None
    if n_ctx is None:
        return
    need = [p.planned_prompt_tokens + p.max_tokens + TEMPLATE_MARGIN_TOKENS for p in plan]
    over = [n for n in need if n > n_ctx]
    if not over:
        return
    longest_output = max(p.max_tokens for p in plan)
    cap = n_ctx - longest_output - TEMPLATE_MARGIN_TOKENS
    fix = (f"rerun with --max-prompt-tokens {cap}" if cap > 0 else
           f"lower --max-output-tokens below {n_ctx - TEMPLATE_MARGIN_TOKENS}")
    raise InputError([Problem(source, None, "default_generation_settings.n_ctx",
                              f"the server's context per slot is {n_ctx:,} tokens, and "
                              f"{len(over):,} of {len(plan):,} planned requests need more "
                              f"(prompt + output + ~{TEMPLATE_MARGIN_TOKENS} template tokens, "
                              f"up to {max(over):,}): {fix}, or start the server with a "
                              f"larger context per slot")],
                     title="the plan does not fit the server")
