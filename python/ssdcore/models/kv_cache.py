"""Preallocated KV cache: lanes x physical slots, one block for all layers.

Layout (one contiguous tensor, exportable as a single DLPack view):

    buffer[layer, 0 (K) | 1 (V), lane, kv_head, slot, head_dim]

Head-major per lane so that a lane's slot range ``[a, b)`` is, per kv head, one
contiguous ``[b - a, head_dim]`` block: scaled_dot_product_attention reads it as
a view without copies. Writes go through ``index_copy_`` on a flat
``[lanes * kv_heads * slots, head_dim]`` view with indices computed once per
forward (:meth:`KVCache.write_index`).

Slot convention (the runtime relies on it): slots ``[0, context_slots)`` of a
lane hold the sequence itself with slot == logical position; slots
``[context_slots, max_slots)`` are scratch for SSD tree branches. Rolling back
rejected tokens is free: later writes simply overwrite the slots.

The buffer starts zeroed so that never-written slots inside an attended range
hold finite values (they are masked, but NaN * 0 would still poison softmax).
With ``spare_slot`` each lane has one more physical slot, index ``max_slots``, that only the padding
rows of static_forward.py write and nothing reads.
When the model has sliding-window layers, ``slot_pos`` (CPU, int64) records the
logical position last written to every slot, since windows are defined on
positions while tree-branch K/V live at unrelated physical slots.
"""

from __future__ import annotations

import torch


class KVCache:
    """K/V storage for ``num_lanes`` sequences of ``max_slots`` physical slots each."""

    def __init__(self, num_layers: int, num_lanes: int, max_slots: int, scratch_slots: int,
                 kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device,
                 track_positions: bool, spare_slot: bool = False):
        self.num_lanes = num_lanes
        self.max_slots = max_slots
        self.scratch_slots = scratch_slots
        self.context_slots = max_slots - scratch_slots
        self.kv_heads = kv_heads
        self.head_dim = head_dim
        self.spare_slot = max_slots if spare_slot else None  # written by padding rows, never read
        self._stride = max_slots + int(spare_slot)            # physical slots per (lane, kv head)
        self.buffer = torch.zeros(num_layers, 2, num_lanes, kv_heads, self._stride, head_dim,
                                  dtype=dtype, device=device)
        self.k = [self.buffer[i, 0] for i in range(num_layers)]
        self.v = [self.buffer[i, 1] for i in range(num_layers)]
        self._k_flat = [t.view(-1, head_dim) for t in self.k]
        self._v_flat = [t.view(-1, head_dim) for t in self.v]
        self._head_offsets = torch.arange(kv_heads, device=device) * self._stride
        self.slot_pos = (torch.zeros(num_lanes, max_slots, dtype=torch.int64)
                         if track_positions else None)

    def write_index(self, lanes: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """Flat row indices ``[N * kv_heads]`` (row-major over (row, head)) for device tensors."""
        base = lanes * (self.kv_heads * self._stride) + slots
        return (base[:, None] + self._head_offsets[None, :]).reshape(-1)

    def write(self, layer: int, index: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store ``k``/``v`` ``[N, kv_heads, head_dim]`` at the rows given by ``index``."""
        self._k_flat[layer].index_copy_(0, index, k.reshape(-1, self.head_dim))
        self._v_flat[layer].index_copy_(0, index, v.reshape(-1, self.head_dim))

    def record_positions(self, lanes_cpu: torch.Tensor, slots_cpu: torch.Tensor,
                         positions_cpu: torch.Tensor) -> None:
        """Remember logical positions of freshly written slots (sliding-window models only)."""
        if self.slot_pos is not None:
            self.slot_pos[lanes_cpu, slots_cpu] = positions_cpu

    def read(self, layer: int, lane_sel, ranges: list) -> tuple:
        """(K, V) ``[B, kv_heads, L, head_dim]`` for the lanes and slot ranges of a plan."""
        return (_gather(self.k[layer], lane_sel, ranges), _gather(self.v[layer], lane_sel, ranges))

    def nbytes(self) -> int:
        return self.buffer.numel() * self.buffer.element_size()


def _gather(cache: torch.Tensor, lane_sel, ranges: list) -> torch.Tensor:
    parts = []
    for start, end in ranges:
        part = cache[:, :, start:end]
        part = part[lane_sel] if isinstance(lane_sel, slice) else part.index_select(0, lane_sel)
        parts.append(part)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
