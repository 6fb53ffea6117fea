"""The watermark package's public surface is pinned, and its core imports without torch."""

from __future__ import annotations

import subprocess
import sys

import distillwatch.watermark as wm

EXPECTED = {
    "PROBES",
    "Attribution",
    "Canary",
    "CanaryRegistry",
    "CanaryTestResult",
    "DetectionResult",
    "LineageResult",
    "RadioactivityResult",
    "ServedCanary",
    "WatermarkKey",
    "WatermarkSpec",
    "account_keys",
    "canary_for",
    "canary_test",
    "closed_mode",
    "decode",
    "decoy_canaries",
    "derive_key",
    "detect",
    "detect_corpus",
    "insert_canary",
    "lineage_battery",
    "lineage_test",
    "load_master",
    "new_master",
    "open_mode",
    "open_registry",
    "raw_key",
    "save_master",
    "served_context_counts",
    "summarise_reasoning",
    "withhold_reasoning",
}


def test_public_api_is_pinned() -> None:
    assert set(wm.__all__) == EXPECTED
    assert all(hasattr(wm, name) for name in wm.__all__)


def test_core_detection_does_not_import_torch() -> None:
    code = (
        "import sys, distillwatch.watermark as w, distillwatch.watermark.processors, "
        "distillwatch.watermark.radioactivity, distillwatch.cli.watermark_cmd, "
        "distillwatch.cli.attribute_cmd;"
        "r = w.detect([1, 2, 3, 4, 5], w.raw_key(1), w.WatermarkSpec());"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_results_are_frozen_values() -> None:
    r = wm.detect([1, 2, 3, 4, 5, 6], wm.raw_key(1), wm.WatermarkSpec())
    try:
        r.p_value = 0.0  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("DetectionResult must be frozen")
    assert not hasattr(r, "__dict__")
