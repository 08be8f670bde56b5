"""The exceptions a request can end with (besides ValueError for bad input, raised before it starts).

The runtime tags every failed request with an error kind (C++ ``ssd::ErrorKind``); the engine raises
the matching class here, so callers and the server can tell the engine's own faults from the
caller's: ``EngineClosedError`` (the engine closed before the request finished, or is closed) is not a
model fault, ``NonFiniteLogitsError`` names the side and the position of the bad logits row.
"""
from __future__ import annotations


class ModelRunnerError(RuntimeError):
    """A model forward raised inside the engine; the message names the side (target or draft)."""


class NonFiniteLogitsError(ModelRunnerError):
    """A model produced NaN or +inf logits; the message names the side and the position."""


class EngineClosedError(RuntimeError):
    """The engine is closed, or was closed before the request finished."""


_BY_KIND = {"closed": EngineClosedError, "non_finite": NonFiniteLogitsError}


def request_error(kind: str, message: str) -> RuntimeError:
    """The exception for a request that finished with an error of runtime kind ``kind``."""
    return _BY_KIND.get(kind, ModelRunnerError)(message or "the request failed")
