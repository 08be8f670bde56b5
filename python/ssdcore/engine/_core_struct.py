"""Filling a C++ value struct of ``ssdcore._core`` (EngineConfig, SamplingParams) from Python values.

The C++ struct's ``validate()`` is the one source of the value rules; this module only carries the
values across and words the errors the binding itself would raise (wrong type, an integer wider
than the C++ field) the way ``validate()`` does: ``<Struct>.<field> = <value> is invalid: allowed
...`` as ValueError. Internal module: pure functions, any thread.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

INT32 = (-2**31, 2**31 - 1)
INT64 = (-2**63, 2**63 - 1)
UINT64 = (0, 2**64 - 1)


def build(make: Callable[[], Any], struct: str, values: Dict[str, Any], widths: Dict[str, Tuple[int, int]]):
    """``make()`` with every field of ``values`` set, validated (ValueError naming the first bad one).

    ``widths`` gives the range the C++ type of each integer field can hold (int32 when absent); a
    list value is a list of such integers."""
    core = make()
    for name, value in values.items():
        width = widths.get(name, INT32)
        _check_width(make, struct, name, value, width)
        try:
            setattr(core, name, list(value) if isinstance(value, tuple) else value)
        except TypeError:
            raise ValueError(f"{struct}.{name} = {value!r} has the wrong type for the C++ field "
                             f"({type(getattr(core, name)).__name__})") from None
    core.validate()
    return core


def _check_width(make, struct: str, name: str, value, width: Tuple[int, int]) -> None:
    """ValueError for an integer (or a list holding one) that the C++ field cannot hold, worded by the
    C++ rules: validate a default struct holding the nearest value the field can hold, or else the
    other end of its range, and show the caller's value in that message."""
    is_list = isinstance(value, (list, tuple))
    items = list(value) if is_list else [value]
    lo, hi = width
    if all(not _is_int(v) or lo <= v <= hi for v in items):
        return
    near = [min(max(v, lo), hi) if _is_int(v) else v for v in items]
    far = [(lo if v > hi else hi if v < lo else v) if _is_int(v) else v for v in items]
    for probe_items in (near, far):
        probe = make()
        setattr(probe, name, probe_items if is_list else probe_items[0])
        try:
            probe.validate()
        except ValueError as e:
            shown, given = (probe_items, items) if is_list else (probe_items[0], value)
            raise ValueError(str(e).replace(f"= {shown} ", f"= {given} ", 1)) from None
    raise ValueError(f"{struct}.{name} = {value!r} is invalid: allowed {lo}..{hi}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
