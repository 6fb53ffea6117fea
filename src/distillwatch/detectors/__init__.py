"""Learned and statistical detectors (scikit-learn estimator contract)."""

from distillwatch.detectors.gbm import GradientBoostedDetector

__all__ = ["GradientBoostedDetector"]
