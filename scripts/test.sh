#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. pytest's exit code is passed through as is:
# 5 (no tests collected) fails like any other error.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
