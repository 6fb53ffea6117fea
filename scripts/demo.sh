#!/usr/bin/env bash
# Set up (if needed) and run the main job on the bundled sample data: simulate a labelled
# population from the corpus sample that ships in the package, scan it with the packaged
# detector, and evaluate the verdicts against the truth. Prints where the reports are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/distillwatch demo --out "${1:-out/demo}"
