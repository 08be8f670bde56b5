"""SamplingParams: how one request samples and when it stops. Mirrors the C++
``ssdcore::SamplingParams`` (cpp/include/ssdcore/sampling.h) field for field, plus the stop strings,
which need the tokenizer and stay in Python; ``seed=None`` derives a seed from the engine's.
Structured output: ``response_format`` (response_format.py) is compiled here to a ResponseFormat; the
engine registers it with its token masker and sends the key as the C++ ``constraint`` (to_core's
argument). ``constraint`` itself is for a caller that manages its own token masker's keys
(``Engine(token_masker=...)``); a request gives one or the other.

Validated on construction by the C++ rules (``SamplingParams::validate()``, the same ones the
runtime applies): every error is a ValueError naming the field, the value given and what is allowed.
Only what C++ cannot see is checked here: Python types (a bool is not a number), stop strings, and
``seed=None``. Frozen, so a value may be shared between requests and threads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple, Union

from ._core_struct import INT64, UINT64, build
from .response_format import ResponseFormat, as_response_format

_UINT64 = 2**64


def _fail(name: str, value, allowed: str) -> ValueError:
    return ValueError(f"SamplingParams.{name} = {value!r} is invalid: allowed {allowed}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0        # 0 = greedy
    top_k: int = 0                  # 0 = off
    top_p: float = 1.0              # (0, 1]; 1 = off
    max_tokens: int = 64            # generated tokens, >= 1
    stop: Tuple[str, ...] = field(default_factory=tuple)        # stop strings (not in the output)
    stop_token_ids: Tuple[int, ...] = field(default_factory=tuple)
    seed: Optional[int] = None      # same seed, same output whatever the batch
    ignore_eos: bool = False
    constraint: int = 0             # 0 = none; > 0: a key of the engine's token masker (see below)
    # structured output: None, a ResponseFormat or its dict form (response_format.py), e.g.
    # {"type": "json_schema", "json_schema": {"name": "x", "schema": {...}}}; stored compiled. The
    # engine registers it with its TokenMasker and sends the key as the C++ constraint.
    response_format: Optional[ResponseFormat] = None

    def __post_init__(self):
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop or ()))
        object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids or ()))
        for name, is_type, allowed in (("temperature", _is_number, "a number"), ("top_k", _is_int, "an integer"),
                                       ("top_p", _is_number, "a number"), ("max_tokens", _is_int, "an integer")):
            if not is_type(getattr(self, name)):
                raise _fail(name, getattr(self, name), allowed)
        if not all(isinstance(s, str) and s for s in self.stop):
            raise _fail("stop", self.stop, "non-empty strings")
        if not all(_is_int(i) for i in self.stop_token_ids):
            raise _fail("stop_token_ids", self.stop_token_ids, "token ids (integers)")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed < _UINT64):
            raise _fail("seed", self.seed, f"None or an integer in [0, {_UINT64 - 1}]")
        if not isinstance(self.ignore_eos, bool):
            raise _fail("ignore_eos", self.ignore_eos, "True or False")
        if not _is_int(self.constraint):
            raise _fail("constraint", self.constraint, "an integer (0 = none)")
        object.__setattr__(self, "response_format", as_response_format(self.response_format))
        if self.response_format is not None and self.ignore_eos:
            raise _fail("ignore_eos", True, "False with a response_format (the output ends where the "
                        "format allows an end of sequence)")
        if self.response_format is not None and self.constraint:
            raise _fail("constraint", self.constraint, "0 with a response_format (the engine gives the "
                        "format its key)")
        self.to_core(0)  # the value rules: C++ SamplingParams::validate()

    def to_core(self, seed: int, constraint: Optional[int] = None):
        """The validated C++ ``_core.SamplingParams`` with the given (resolved) seed and, when given,
        the key the engine's token masker gave the request's response_format (else ``constraint``)."""
        from .. import _core

        values = {name: getattr(self, name) for name in _core.SamplingParams.field_names()
                  if name != "seed"}
        values["seed"] = seed
        if constraint is not None:
            values["constraint"] = constraint
        return build(_core.SamplingParams, "SamplingParams", values, {"seed": UINT64, "constraint": INT64})


SamplingParamsLike = Union[SamplingParams, dict, None]


def as_sampling_params(value: SamplingParamsLike) -> SamplingParams:
    if value is None:
        return SamplingParams()
    if isinstance(value, SamplingParams):
        return value
    if isinstance(value, dict):
        unknown = set(value) - set(SamplingParams.__dataclass_fields__)
        if unknown:
            raise ValueError(f"SamplingParams got unknown field(s) {sorted(unknown)}: allowed "
                             f"{sorted(SamplingParams.__dataclass_fields__)}")
        return SamplingParams(**value)
    raise ValueError(f"sampling_params = {value!r} is invalid: allowed a SamplingParams, a dict or None")
