"""distillwatch: detect, stop and prove adversarial distillation of LLM APIs."""

__version__ = "0.1.0"

__all__ = ["__version__"]
