"""Exceptions raised while loading models and checking tokenizers.

Every loading failure surfaces as one exception from this module, raised with
``from None`` so callers see a single clear message instead of a chain of
library tracebacks. All of them derive from :class:`ModelLoadError`, itself a
``ValueError``; the not-found case is also a ``FileNotFoundError`` so that
``except FileNotFoundError`` works as users expect.
"""

from __future__ import annotations


class ModelLoadError(ValueError):
    """A model directory, its weights or its configuration could not be used."""


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """Neither a local directory nor a reachable Hugging Face Hub repository."""


class UnsupportedArchitectureError(ModelLoadError):
    """config.json names an architecture (or a feature) this package does not implement."""


class WeightsError(ModelLoadError):
    """Weights are missing, corrupt, of an unsupported GGUF tensor type, or do not match the config."""


class TokenizerMismatchError(ModelLoadError):
    """Draft and target tokenizers map some token id the draft can emit differently."""
