"""Refit the trace parameters that ship in the package from a staged corpus folder.

python scripts/fit_traces.py ../shared/data
"""

from __future__ import annotations

import sys
from pathlib import Path

from distillwatch.sim.traces import fit_traces, save_fit

OUT = Path(__file__).resolve().parents[1] / "src" / "distillwatch" / "data" / "trace_fit.json"

if __name__ == "__main__":
    fit = fit_traces(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
    save_fit(fit, OUT)
    print(f"wrote {OUT}: sigma={fit.log_volume_sigma:.3f} over {fit.n_clients} clients")
