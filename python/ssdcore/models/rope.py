"""Rotary position embeddings (RoPE), half-rotation ("rotate_half") convention.

Frequencies are computed in float32 exactly as Hugging Face does for the rope
types in :data:`~ssdcore.models.config.SUPPORTED_ROPE_TYPES` ("default",
"linear", "llama3"), then cos/sin tables are precomputed for positions
``[0, capacity)`` in float32 and cast once to the model dtype (the same
rounding transformers applies per call). The table grows on demand (doubling),
so a config with a 128K ``max_position_embeddings`` costs nothing until used.

``apply`` rotates a ``[N, heads, head_dim]`` tensor whose rows have logical
positions ``positions`` (one per row). Bitwise equal to HF's
``q * cos + rotate_half(q) * sin`` because ``rotate_half(x) * sin`` equals
``roll(x, d/2) * sin_signed`` exactly (negation is exact in IEEE arithmetic).
"""

from __future__ import annotations

import math
from typing import Optional

import torch


def inverse_frequencies(head_dim: int, theta: float, scaling: Optional[dict]) -> torch.Tensor:
    """float32 ``[head_dim // 2]`` inverse frequencies for the given rope scaling."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    if scaling is None:
        return inv_freq
    kind = scaling["rope_type"]
    if kind == "linear":
        return inv_freq / scaling["factor"]
    if kind == "llama3":
        return _llama3(inv_freq, scaling)
    raise ValueError(f"rope_type={kind!r} is not supported")


def _llama3(inv_freq: torch.Tensor, s: dict) -> torch.Tensor:
    factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old_len = s["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old_len / low, old_len / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, scaled)


class RopeTable:
    """Precomputed cos / signed-sin tables; grows to cover any requested position."""

    def __init__(self, head_dim: int, theta: float, scaling: Optional[dict],
                 dtype: torch.dtype, device: torch.device, capacity: int = 4096):
        self.head_dim = head_dim
        self.dtype = dtype
        self.device = torch.device(device)
        self.inv_freq = inverse_frequencies(head_dim, theta, scaling)
        self.capacity = 0
        self.cos = self.sin_signed = None
        self._build(max(16, capacity))

    def _build(self, capacity: int) -> None:
        pos = torch.arange(capacity, dtype=torch.int64).float()
        freqs = pos[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        half = self.head_dim // 2
        sign = torch.ones(self.head_dim)
        sign[:half] = -1.0
        self.cos = emb.cos().to(dtype=self.dtype, device=self.device)
        self.sin_signed = (emb.sin() * sign).to(dtype=self.dtype, device=self.device)
        self.capacity = capacity

    def ensure(self, max_position: int) -> None:
        """Make the tables cover positions ``[0, max_position]``."""
        if max_position >= self.capacity:
            cap = self.capacity
            while cap <= max_position:
                cap *= 2
            self._build(cap)

    def lookup(self, positions: torch.Tensor) -> tuple:
        """(cos, sin_signed), each ``[N, 1, head_dim]``, for device LongTensor positions."""
        return (self.cos.index_select(0, positions).unsqueeze(1),
                self.sin_signed.index_select(0, positions).unsqueeze(1))


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[N, heads, head_dim]`` with per-row tables from :meth:`RopeTable.lookup`."""
    rotated = torch.roll(x, x.shape[-1] // 2, dims=-1)
    return x * cos + rotated * sin_signed
