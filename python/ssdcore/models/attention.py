"""Attention planning and execution for flattened rows over the lane/slot KV cache.

A forward call receives N rows (token, logical position, lane, slot) plus an
optional visibility description. :func:`build_plan` runs once per call, on CPU
copies of the small index tensors, and produces an :class:`AttentionPlan` that
every layer reuses:

* rows are grouped by lane into a padded ``[B, n]`` batch (no copy when the
  rows already come lane-sorted with equal counts, e.g. decode/verification);
* the keys each lane needs are one or two contiguous slot ranges (context
  ``[0, a)`` and, for tree branches, the scratch range), read as views;
* one boolean mask ``[B, 1, g*n, Lk]`` (True = attend) over those key columns,
  or None when every row may see every key, or ``is_causal`` for a fresh prefill;
* per sliding window size, a mask restricted to keys whose logical position is
  within the window (``q_pos - k_pos < window``, as transformers does).

Grouped-query attention is folded: the ``g`` query heads sharing a KV head are
stacked along the query axis, so SDPA runs with ``kv_heads`` heads and K/V are
never repeated. Visibility rule for row r in lane l (spec of ``forward_rows``):
slots ``[0, attend_len[r])`` + ``extra_slots[r]`` (-1 = padding) + its own slot;
with neither given, slots ``[0, slots[r]]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

_MERGE_GAP = 64  # merge the scratch range into the context range when the gap is this small


@dataclass
class AttentionPlan:
    batch: int
    rows_per_lane: int
    lane_sel: object                      # slice or device LongTensor of lanes
    ranges: list                          # [(start, end)] slot ranges read per lane
    to_padded: Optional[torch.Tensor]     # device [B*n] row index (None: rows already [B, n])
    from_padded: Optional[torch.Tensor]   # device [N] index into the B*n padded rows
    mask: Optional[torch.Tensor]          # device bool [B, 1, g*n, Lk]
    is_causal: bool
    window_masks: dict = field(default_factory=dict)  # window -> mask (absent: use ``mask``)


def build_plan(lanes: torch.Tensor, slots: torch.Tensor, positions: torch.Tensor,
               attend_len: Optional[torch.Tensor], extra: Optional[torch.Tensor],
               groups: int, windows: tuple, slot_pos: Optional[torch.Tensor],
               device: torch.device) -> AttentionPlan:
    """Plan attention for CPU int64 row tensors (see module docstring)."""
    n_rows = lanes.numel()
    uniq, counts, order = _group_rows(lanes)
    batch, per_lane = uniq.numel(), int(counts.max())
    pad_cpu = None if order is None and bool((counts == per_lane).all()) else \
        _padding_index(counts, order, batch, per_lane, n_rows)
    explicit = attend_len is not None or extra is not None
    ranges, key_slots = _key_ranges(slots, attend_len, extra) if explicit else \
        _causal_ranges(slots)
    causal_prefill = (not explicit and batch == 1 and ranges[0][1] == n_rows
                      and torch.equal(slots, key_slots))
    plan = AttentionPlan(batch, per_lane, _lane_selector(uniq, device), ranges,
                         None, None, None, causal_prefill)
    if pad_cpu is not None:
        plan.to_padded = torch.where(pad_cpu < n_rows, pad_cpu, 0).to(device)
        plan.from_padded = _inverse(pad_cpu, n_rows).to(device)
    live_windows = sorted({w for w in windows if w is not None and int(positions.max()) >= w})
    if causal_prefill and not live_windows:
        return plan
    base = _row_mask(slots, attend_len, extra, key_slots, explicit)
    base = _pad_rows(base, pad_cpu, batch, per_lane, fill=True)
    plan.is_causal = False
    plan.mask = None if bool(base.all()) else fold_mask(base, groups, device)
    if live_windows:
        key_pos = slot_pos[uniq][:, key_slots]                              # [B, Lk]
        q_pos = _pad_rows(positions[:, None], pad_cpu, batch, per_lane, fill=0)  # [B, n, 1]
        for w in live_windows:
            near = (q_pos - key_pos[:, None, :]) < w
            plan.window_masks[w] = fold_mask(base & near, groups, device)
    return plan


def attend(plan: AttentionPlan, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           window: Optional[int]) -> torch.Tensor:
    """Attention output ``[N, heads * head_dim]`` for rows' queries ``q`` ``[N, heads, D]``.

    ``k``/``v`` are ``[B, kv_heads, Lk, D]`` from :meth:`KVCache.read`.
    """
    n_rows, heads, dim = q.shape
    batch, per_lane, kvh = plan.batch, plan.rows_per_lane, k.shape[1]
    groups = heads // kvh
    mask = plan.window_masks.get(window, plan.mask) if window is not None else plan.mask
    if plan.is_causal and mask is None:  # fresh single-lane prefill: rows == keys, in order
        out = F.scaled_dot_product_attention(q.view(1, n_rows, heads, dim).transpose(1, 2), k, v,
                                             is_causal=True, enable_gqa=groups > 1)
        return out.transpose(1, 2).reshape(n_rows, heads * dim)
    if plan.to_padded is not None:
        q = q.index_select(0, plan.to_padded)
    q = q.view(batch, per_lane, kvh, groups, dim)
    if per_lane > 1:
        q = q.permute(0, 2, 3, 1, 4)
    q = q.reshape(batch, kvh, groups * per_lane, dim)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if per_lane > 1:
        out = out.view(batch, kvh, groups, per_lane, dim).permute(0, 3, 1, 2, 4)
    out = out.reshape(batch * per_lane, heads * dim)
    if plan.from_padded is not None:
        out = out.index_select(0, plan.from_padded)
    return out


def _group_rows(lanes: torch.Tensor) -> tuple:
    """(unique lanes, rows per lane, stable sort order or None if already sorted)."""
    order = None
    if lanes.numel() > 1 and not bool((lanes[1:] >= lanes[:-1]).all()):
        order = torch.argsort(lanes, stable=True)
        lanes = lanes[order]
    uniq, counts = torch.unique_consecutive(lanes, return_counts=True)
    return uniq, counts, order


def _padding_index(counts, order, batch: int, per_lane: int, n_rows: int) -> torch.Tensor:
    """[B*n] original row index for each padded position, ``n_rows`` for padding."""
    group = torch.repeat_interleave(torch.arange(batch), counts)
    starts = torch.cumsum(counts, 0) - counts
    flat = group * per_lane + (torch.arange(n_rows) - starts[group])
    rows = torch.arange(n_rows) if order is None else order
    pad = torch.full((batch * per_lane,), n_rows, dtype=torch.int64)
    pad[flat] = rows
    return pad


def _inverse(pad: torch.Tensor, n_rows: int) -> torch.Tensor:
    inv = torch.empty(n_rows, dtype=torch.int64)
    live = pad < n_rows
    inv[pad[live]] = torch.nonzero(live).flatten()
    return inv


def _lane_selector(uniq: torch.Tensor, device: torch.device):
    first, last = int(uniq[0]), int(uniq[-1])
    if last - first + 1 == uniq.numel():
        return slice(first, last + 1)
    return uniq.to(device)


def _causal_ranges(slots: torch.Tensor) -> tuple:
    length = int(slots.max()) + 1
    return [(0, length)], torch.arange(length)


def _key_ranges(slots, attend_len, extra) -> tuple:
    """Slot ranges covering every visible slot, and the slot of each key column."""
    low = int(attend_len.max()) if attend_len is not None and attend_len.numel() else 0
    needed = slots if extra is None else torch.cat((slots, extra[extra >= 0]))
    beyond = needed[needed >= low]
    if beyond.numel() == 0:
        ranges = [(0, low)]
    else:
        lo, hi = int(beyond.min()), int(beyond.max()) + 1
        if lo - low <= max(_MERGE_GAP, hi - lo):
            ranges = [(0, hi)]
        else:
            ranges = [(0, low), (lo, hi)] if low > 0 else [(lo, hi)]
    key_slots = torch.cat([torch.arange(a, b) for a, b in ranges])
    return ranges, key_slots


def _row_mask(slots, attend_len, extra, key_slots, explicit: bool) -> torch.Tensor:
    """Bool [N, Lk]: may row r attend to key column c."""
    if not explicit:
        return key_slots[None, :] <= slots[:, None]
    limit = attend_len if attend_len is not None else torch.zeros_like(slots)
    mask = key_slots[None, :] < limit[:, None]
    n_keys = key_slots.numel()
    col = torch.full((int(key_slots.max()) + 2,), n_keys, dtype=torch.int64)
    col[key_slots] = torch.arange(n_keys)
    mask = torch.cat((mask, torch.zeros(slots.numel(), 1, dtype=torch.bool)), dim=1)
    own = col[slots][:, None]
    mask.scatter_(1, own, True)
    if extra is not None and extra.numel():
        ex = torch.where(extra >= 0, col[extra.clamp(min=0)], n_keys)
        mask.scatter_(1, ex, True)
    return mask[:, :n_keys]


def _pad_rows(rows: torch.Tensor, pad: Optional[torch.Tensor], batch: int, per_lane: int,
              fill) -> torch.Tensor:
    """[N, X] -> [B, n, X]; padding rows get ``fill``."""
    if pad is not None:
        filler = torch.full((1, rows.shape[1]), fill, dtype=rows.dtype)
        rows = torch.cat((rows, filler), dim=0)[pad]
    return rows.view(batch, per_lane, rows.shape[1])


def fold_mask(mask: torch.Tensor, groups: int, device: torch.device) -> torch.Tensor:
    """[B, n, Lk] -> [B, 1, g*n, Lk] matching the folded GQA query layout."""
    batch, per_lane, keys = mask.shape
    if groups > 1:
        mask = mask[:, None].expand(batch, groups, per_lane, keys)
    return mask.reshape(batch, 1, groups * per_lane, keys).to(device, non_blocking=True)
