#!/usr/bin/env bash
# The whole test suite from a fresh clone: make the venv, install, lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -e '.[dev]'
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest -q "$@"
