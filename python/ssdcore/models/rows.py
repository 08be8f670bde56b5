"""Input parsing and validation for CausalLM's row-based forward.

:class:`Rows` is the Python-side mirror of the engine's one batch type, ``ssdcore::ForwardBatch``
(cpp/include/ssdcore/model_runner.h): the same per-row arrays (tokens, positions, lanes, slots,
attend_len, extra_slots) that the runner receives as int32 numpy views, validated once and widened to
int64 for torch indexing, with ``logits_rows`` (the rows that get logits, in output order) in place of
``out_index``. The native forward (models/cpu_model.py) hands them back as int32.

``parse_rows`` turns whatever the caller passed (tensors on any device, lists)
into CPU int64 tensors, checks shapes and ranges once per call and raises
``ValueError`` naming the argument, the offending value and the allowed range
(never ``assert``).
Invariants of a returned :class:`Rows`: all 1-D tensors have N >= 1 entries,
``extra`` is ``[N, E]`` with E >= 1 or None, every index is in range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class Rows:
    tokens: torch.Tensor
    positions: torch.Tensor
    lanes: torch.Tensor
    slots: torch.Tensor
    attend_len: Optional[torch.Tensor]
    extra: Optional[torch.Tensor]
    logits_rows: Optional[torch.Tensor]


def as_index(value, name: str, dims: int = 1) -> torch.Tensor:
    """CPU int64 tensor of exactly ``dims`` dimensions, or ValueError."""
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"{name}: expected integer token/slot indices, got dtype {t.dtype}")
    if t.dim() != dims:
        raise ValueError(f"{name}: expected a {dims}-D tensor, got shape {tuple(t.shape)}")
    return t.to(device="cpu", dtype=torch.int64)


def check_range(t: torch.Tensor, name: str, low: int, high: int) -> None:
    """Raise ValueError unless every entry of ``t`` lies in ``[low, high)``."""
    if t.numel() == 0:
        return
    lo, hi = torch.aminmax(t)
    if int(lo) < low or int(hi) >= high:
        bad = torch.nonzero((t < low) | (t >= high))[0].tolist()
        raise ValueError(f"{name}{bad} = {int(t[tuple(bad)])} is out of range: allowed [{low}, {high})")


def parse_rows(tokens, positions, lanes, slots, attend_len, extra_slots, logits_rows,
               vocab_size: int, cache) -> Rows:
    """Validate forward_rows arguments against the model and its KV cache."""
    tok = as_index(tokens, "tokens")
    n = tok.numel()
    if n == 0:
        raise ValueError("tokens is empty: forward_rows needs at least one row")
    fields = {"positions": positions, "lanes": lanes, "slots": slots}
    pos, ln, sl = (as_index(v, k) for k, v in fields.items())
    for name, t in (("positions", pos), ("lanes", ln), ("slots", sl)):
        if t.numel() != n:
            raise ValueError(f"{name} has {t.numel()} entries, expected one per token ({n})")
    check_range(tok, "tokens", 0, vocab_size)
    check_range(pos, "positions", 0, 2**31)
    check_range(ln, "lanes", 0, cache.num_lanes)
    check_range(sl, "slots", 0, cache.max_slots)
    att = ext = rows = None
    if attend_len is not None:
        att = as_index(attend_len, "attend_len")
        if att.numel() != n:
            raise ValueError(f"attend_len has {att.numel()} entries, expected {n}")
        check_range(att, "attend_len", 0, cache.max_slots + 1)
    if extra_slots is not None:
        ext = as_index(extra_slots, "extra_slots", dims=2)
        if ext.shape[0] != n:
            raise ValueError(f"extra_slots has {ext.shape[0]} rows, expected {n}")
        check_range(ext, "extra_slots", -1, cache.max_slots)
        ext = ext if ext.shape[1] else None
    if ext is not None and att is None:
        att = sl + 1  # attend_len defaults to causal-by-slot, extras come on top
    if logits_rows is not None:
        rows = as_index(logits_rows, "logits_rows")
        check_range(rows, "logits_rows", 0, n)
    return Rows(tok, pos, ln, sl, att, ext, rows)
