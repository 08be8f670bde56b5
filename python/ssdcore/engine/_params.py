"""Argument checking for ``ssdcore.ops``: tensors and per-sequence parameters.

Every failure raises ``ValueError`` naming the argument, the value given and what is allowed. Per-sequence
parameters accept a Python scalar (broadcast to every sequence) or a 1-D tensor / list / tuple / NumPy array
of length B (any device; copied to the CPU). Results are contiguous CPU tensors of the dtype the C++ layer
reads. Internal module: any thread, no state.
"""
from __future__ import annotations

import functools
import math
import numbers
from typing import Any, Callable, Optional

import torch

INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


def _fail(name: str, got: Any, allowed: str) -> ValueError:
    return ValueError(f"{name}: got {got!r}; allowed: {allowed}")


class _Raw(str):
    """Text that _fail prints as is (not quoted)."""

    def __repr__(self) -> str:
        return str(self)


def _describe(value: Any) -> _Raw:
    if isinstance(value, torch.Tensor):
        return _Raw(f"tensor(shape={tuple(value.shape)}, dtype={value.dtype}, device={value.device})")
    return _Raw(repr(value))


def check_tensor(name: str, value: Any, *, dtypes: tuple, ndim: int, allowed: str) -> torch.Tensor:
    """A contiguous CPU/CUDA tensor of one of `dtypes` with `ndim` dimensions."""
    if not isinstance(value, torch.Tensor):
        raise _fail(name, type(value).__name__, f"a torch.Tensor ({allowed})")
    if value.dtype not in dtypes:
        raise ValueError(f"{name}: got dtype {value.dtype}; allowed: {' or '.join(str(d) for d in dtypes)} ({allowed})")
    if value.dim() != ndim:
        raise ValueError(f"{name}: got shape {tuple(value.shape)}; allowed: {allowed}")
    if value.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{name}: got device {value.device}; allowed: cpu or cuda")
    if not value.is_contiguous():
        raise ValueError(f"{name}: got a non-contiguous tensor with strides {value.stride()}; allowed: contiguous "
                         "tensors (call .contiguous())")
    return value


def check_shape(name: str, value: torch.Tensor, expected: tuple, allowed: str) -> None:
    if tuple(value.shape) != tuple(expected):
        raise ValueError(f"{name}: got shape {tuple(value.shape)}; allowed: {allowed} = {tuple(expected)}")


def check_device(name: str, value: torch.Tensor, device: torch.device, ref_name: str) -> None:
    if value.device != device:
        raise ValueError(f"{name}: got device {value.device}; allowed: the device of {ref_name} ({device})")


def _as_array(name: str, value: Any, n: int, integral: bool) -> torch.Tensor:
    """A 1-D CPU float64/int64 tensor of length n from a scalar or a sequence."""
    if isinstance(value, bool) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        raise _fail(name, value if isinstance(value, bool) else _describe(value),
                    "a number or a 1-D sequence of numbers (not bools)")
    if isinstance(value, numbers.Number):
        if integral and not isinstance(value, numbers.Integral):
            raise _fail(name, value, "an integer or a 1-D sequence of integers")
        if integral:  # the caller checked the int64 range
            return torch.full((n,), int(value), dtype=torch.int64)
        return torch.full((n,), float(value), dtype=torch.float64)
    if isinstance(value, torch.Tensor):
        t = value.detach()
    elif isinstance(value, (list, tuple)) or hasattr(value, "__array__"):
        try:
            t = torch.as_tensor(value)
            if t.is_floating_point() and isinstance(value, (list, tuple)):
                t = torch.as_tensor(value, dtype=torch.float64)  # keep Python floats exact
        except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
            raise _fail(name, _describe(value), f"a number or a 1-D sequence of {n} numbers") from exc
    else:
        raise _fail(name, value, f"a number or a 1-D sequence of {n} numbers")
    if t.dim() != 1 or t.shape[0] != n:
        raise _fail(name, _describe(value), f"a scalar or a 1-D sequence of length B={n}")
    if integral and t.is_floating_point():
        raise _fail(name, _describe(value), "integers")
    if t.is_complex() or t.dtype == torch.bool:
        raise _fail(name, _describe(value), "real numbers")
    return t.to("cpu", torch.int64 if integral else torch.float64)


def per_sequence(name: str, value: Any, n: int, *, integral: bool, valid: Callable[[torch.Tensor], torch.Tensor],
                 allowed: str, out_dtype: torch.dtype) -> torch.Tensor:
    """Broadcast/convert `value` to [n], check every element with `valid`, return it as `out_dtype`."""
    if integral and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if not INT64_MIN <= int(value) <= INT64_MAX:
            raise _fail(name, value, allowed)
    t = _as_array(name, value, n, integral)
    ok = valid(t)
    if not bool(ok.all()):
        i = int((~ok).nonzero()[0, 0])
        got = t[i].item()
        where = name if isinstance(value, numbers.Number) else f"{name}[{i}]"
        raise _fail(where, got, allowed)
    return t.to(out_dtype).contiguous()


def _scalar_cached(fn: Callable[[str, Any, int], torch.Tensor]) -> Callable[[str, Any, int], torch.Tensor]:
    """Memoise ``fn`` for plain int/float scalars (the common call: one value for the whole batch).

    The cache key includes the value's type, so ``1`` and ``1.0`` are checked separately (an integral
    parameter rejects ``1.0``); failures are not cached. Cached tensors are shared: callers only read them.
    """
    @functools.lru_cache(maxsize=1024)
    def cached(name: str, value: Any, kind: type, n: int) -> torch.Tensor:
        return fn(name, value, n)

    @functools.wraps(fn)
    def wrapper(name: str, value: Any, n: int) -> torch.Tensor:
        kind = type(value)
        if kind is int or (kind is float and math.isfinite(value)):
            return cached(name, value, kind, n)
        return fn(name, value, n)
    return wrapper


@_scalar_cached
def temperature_like(name: str, value: Any, n: int) -> torch.Tensor:
    return per_sequence(name, value, n, integral=False, out_dtype=torch.float32,
                        valid=lambda t: torch.isfinite(t) & (t >= 0) & (t <= 3.0e38),
                        allowed="a finite number >= 0 (0 = greedy), or one per sequence")


@_scalar_cached
def top_k_like(name: str, value: Any, n: int) -> torch.Tensor:
    return per_sequence(name, value, n, integral=True, out_dtype=torch.int32,
                        valid=lambda t: (t >= 0) & (t <= INT32_MAX),
                        allowed="an integer >= 0 (0 = off), or one per sequence")


@_scalar_cached
def top_p_like(name: str, value: Any, n: int) -> torch.Tensor:
    return per_sequence(name, value, n, integral=False, out_dtype=torch.float32,
                        valid=lambda t: (t > 0) & (t <= 1),
                        allowed="a number in (0, 1] (1 = off), or one per sequence")


@_scalar_cached
def saguaro_c_like(name: str, value: Any, n: int) -> torch.Tensor:
    return per_sequence(name, value, n, integral=False, out_dtype=torch.float32,
                        valid=lambda t: (t >= 0) & (t <= 1),
                        allowed="a number in [0, 1] (1 = plain sampling), or one per sequence")


@_scalar_cached
def seed_like(name: str, value: Any, n: int) -> torch.Tensor:
    """Seeds are 64-bit: Python ints in [-2^63, 2^64) (values >= 2^63 keep their bits as uint64)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        v = int(value)
        if not INT64_MIN <= v <= UINT64_MAX:
            raise _fail(name, value, "an integer in [-2**63, 2**64), or one per sequence")
        value = v - 2**64 if v > INT64_MAX else v
    elif isinstance(value, (list, tuple)):
        try:
            value = [int(v) - 2**64 if isinstance(v, numbers.Integral) and not isinstance(v, bool)
                     and INT64_MAX < int(v) <= UINT64_MAX else v for v in value]
        except (TypeError, ValueError):
            pass
    return per_sequence(name, value, n, integral=True, out_dtype=torch.int64, valid=lambda t: t == t,
                        allowed="an integer in [-2**63, 2**64), or one per sequence")


@_scalar_cached
def position_like(name: str, value: Any, n: int) -> torch.Tensor:
    return per_sequence(name, value, n, integral=True, out_dtype=torch.int64,
                        valid=lambda t: (t >= 0) & (t <= 2**62),
                        allowed="an integer in [0, 2**62], or one per sequence")


def bool_like(name: str, value: Any, n: int) -> torch.Tensor:
    """A bool or a 1-D sequence of n bools (0/1 integers accepted) -> uint8 [n]."""
    if isinstance(value, (bool, int)) and not isinstance(value, float):
        if value not in (0, 1, True, False):
            raise _fail(name, value, "a bool, or one per sequence")
        return torch.full((n,), int(bool(value)), dtype=torch.uint8)
    if isinstance(value, torch.Tensor):
        t = value.detach()
    elif isinstance(value, (list, tuple)) or hasattr(value, "__array__"):
        try:
            t = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise _fail(name, value, f"a bool or a 1-D sequence of {n} bools") from exc
    else:
        raise _fail(name, value, f"a bool or a 1-D sequence of {n} bools")
    if t.dim() != 1 or t.shape[0] != n:
        raise _fail(name, _describe(value), f"a bool or a 1-D sequence of length B={n}")
    if t.is_floating_point() or t.is_complex():
        raise _fail(name, _describe(value), "bools")
    t = t.to("cpu", torch.int64)
    bad = (t != 0) & (t != 1)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise _fail(f"{name}[{i}]", t[i].item(), "bools (or 0/1)")
    return t.to(torch.uint8).contiguous()


def num_threads_like(value: Optional[int]) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) <= 1024:
        raise _fail("num_threads", value, "None or an integer in [0, 1024] (0 = automatic)")
    return int(value)
