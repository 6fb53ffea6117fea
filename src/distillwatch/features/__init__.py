"""Pure per-call and per-account feature functions: frames in, frames out, no I/O, no clock."""

from distillwatch.features.text import prompt_frame

__all__ = ["prompt_frame"]
