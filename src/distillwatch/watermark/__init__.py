"""Countermeasures and proof: output watermarks, radioactivity, lineage tests, canaries.

The detection maths (hashing, green lists, exact p-values, tuple dedup) needs numpy/scipy only
and runs on token ids from any tokenizer; the logits processors, model loading and open-mode
radioactivity import torch/transformers lazily (extra ``watermark``).
"""

from distillwatch.watermark.countermeasures import (
    Canary,
    CanaryRegistry,
    CanaryTestResult,
    ServedCanary,
    canary_for,
    canary_test,
    decoy_canaries,
    insert_canary,
    open_registry,
    summarise_reasoning,
    withhold_reasoning,
)
from distillwatch.watermark.detect import (
    Attribution,
    DetectionResult,
    decode,
    detect,
    detect_corpus,
)
from distillwatch.watermark.keys import (
    WatermarkKey,
    account_keys,
    derive_key,
    load_master,
    new_master,
    raw_key,
    save_master,
)
from distillwatch.watermark.lineage import PROBES, LineageResult, lineage_battery, lineage_test
from distillwatch.watermark.radioactivity import (
    RadioactivityResult,
    closed_mode,
    open_mode,
    served_context_counts,
)
from distillwatch.watermark.spec import WatermarkSpec

__all__ = [
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
]
