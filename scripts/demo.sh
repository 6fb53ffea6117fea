#!/usr/bin/env bash
# Set up (if needed) and run the main job on the bundled sample data: simulate a labelled day
# of API traffic from the corpus sample that ships in the package, then validate what it wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-out/demo}
.venv/bin/distillwatch simulate --accounts 1000 --days 2 --seed 1 --corpora "$(.venv/bin/python -c 'from distillwatch.sim import bundled_dir; print(bundled_dir())')" --out "$OUT"
.venv/bin/distillwatch validate "$OUT/calls.parquet"
