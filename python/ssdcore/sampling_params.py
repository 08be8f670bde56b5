"""SamplingParams: how one request samples and when it stops (mirrors C++ ``ssd::RequestParams``;
stop strings stay in Python because they need the tokenizer).

Validated on construction: every error is a ValueError naming the field, the value given and what is
allowed. Frozen, so a value may be shared between requests and threads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Tuple, Union

_UINT64 = 2**64
_INT32_MAX = 2**31 - 1  # integers the runtime keeps as int32 (token ids, counts)


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

    def __post_init__(self):
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop or ()))
        object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids or ()))
        t = self.temperature
        if not _is_number(t) or not math.isfinite(t) or t < 0:
            raise _fail("temperature", t, "a finite number >= 0 (0 = greedy)")
        if not _is_int(self.top_k) or not 0 <= self.top_k <= _INT32_MAX:
            raise _fail("top_k", self.top_k, f"an integer in [0, {_INT32_MAX}] (0 = off)")
        if not _is_number(self.top_p) or not (0 < self.top_p <= 1):
            raise _fail("top_p", self.top_p, "a number in (0, 1] (1 = off)")
        if not _is_int(self.max_tokens) or not 1 <= self.max_tokens <= _INT32_MAX:
            raise _fail("max_tokens", self.max_tokens, f"an integer in [1, {_INT32_MAX}]")
        if not all(isinstance(s, str) and s for s in self.stop):
            raise _fail("stop", self.stop, "non-empty strings")
        if not all(_is_int(i) and 0 <= i <= _INT32_MAX for i in self.stop_token_ids):
            raise _fail("stop_token_ids", self.stop_token_ids, f"token ids in [0, {_INT32_MAX}]")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed < _UINT64):
            raise _fail("seed", self.seed, f"None or an integer in [0, {_UINT64 - 1}]")
        if not isinstance(self.ignore_eos, bool):
            raise _fail("ignore_eos", self.ignore_eos, "True or False")

    def to_core(self, seed: int):
        """The C++ ``_core.RequestParams`` with the given (resolved) seed."""
        from . import _core

        p = _core.RequestParams()
        p.temperature = float(self.temperature)
        p.top_k = int(self.top_k)
        p.top_p = float(self.top_p)
        p.max_tokens = int(self.max_tokens)
        p.ignore_eos = bool(self.ignore_eos)
        p.stop_token_ids = list(self.stop_token_ids)
        p.seed = int(seed)
        return p


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
