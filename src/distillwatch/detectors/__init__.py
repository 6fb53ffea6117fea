"""Learned and statistical detectors (scikit-learn estimator contract)."""

from distillwatch.detectors.gbm import GradientBoostedDetector
from distillwatch.detectors.mmd import MMDDetector, cached, minilm_embedder

__all__ = ["GradientBoostedDetector", "MMDDetector", "cached", "minilm_embedder"]
