"""CausalLM: one lean decoder-only transformer for the Llama, Mistral, Qwen2 and Qwen3 families.

Family differences are flags of :class:`~ssdcore.models.config.ModelConfig`
(biases, per-head q/k RMSNorm, sliding windows, RoPE scaling). Weights are
stored fused: ``qkv_w`` = [q; k; v] rows, ``gate_up_w`` = [gate; up] rows,
Qwen3's q_norm/k_norm as one ``[heads + kv_heads, head_dim]`` table.
Parameters never require grad; every forward runs under ``torch.inference_mode``.

KV cache and slot layout (see also kv_cache.py). ``allocate_kv(num_lanes,
max_slots, scratch_slots)`` gives each lane ``max_slots`` physical slots:

    lane l:  [0 ........ context_slots) [context_slots ..... max_slots)
              sequence, slot == position  scratch for SSD tree branches

* prefill / decode / verification write token i of a sequence at slot == its
  logical position i and attend causally by slot; rejecting speculated tokens
  needs no cache operation (the slots are simply rewritten later).
* tree branches: branch b of a lane owns scratch slots ``[s_b, s_b + depth)``
  (``s_b >= context_slots``, e.g. ``context_slots + b * K``); its rows attend
  to ``[0, fork_len)`` (committed prefix + glue tokens up to its fork) plus its
  own earlier scratch slots; RoPE uses the logical position
  ``fork_len + depth`` whatever the physical slot.
* Rows writing the same (lane, slot) twice in one call is undefined.

Vocabulary policy: logits have ``output_vocab_size`` columns (default
``config.vocab_size``). Ids ``>= valid_vocab_size`` (ids the tokenizer does not
define, i.e. embedding padding, or ids past the common draft/target vocab) are
set to ``-inf``; their lm_head rows are not even computed. See
:meth:`CausalLM.set_vocab_policy` and tokenizer_check.py.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from . import cpu_model
from .attention import attend, build_plan
from .config import ModelConfig
from .kv_cache import KVCache
from .rope import RopeTable, apply_rope
from .rows import Rows, parse_rows

log = logging.getLogger(__name__)
IndexLike = Union[torch.Tensor, Sequence[int]]


def _param(*shape, dtype, device) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape, dtype=dtype, device=device), requires_grad=False)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """HF-equivalent RMSNorm: normalise in float32, round to x.dtype, then scale."""
    if x.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    return weight * F.rms_norm(x, (x.shape[-1],), None, eps)


class DecoderLayer(nn.Module):
    """Pre-norm attention + SwiGLU MLP block with fused projections."""

    def __init__(self, cfg: ModelConfig, index: int, dtype, device):
        super().__init__()
        h, d = cfg.hidden_size, cfg.head_dim
        qkv = (cfg.num_heads + 2 * cfg.num_kv_heads) * d
        kw = dict(dtype=dtype, device=device)
        self.index, self.eps, self.window = index, cfg.rms_norm_eps, cfg.layer_windows[index]
        self.heads, self.kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, d
        self.ln1, self.ln2 = _param(h, **kw), _param(h, **kw)
        self.qkv_w = _param(qkv, h, **kw)
        self.qkv_b = _param(qkv, **kw) if cfg.qkv_bias else None
        self.qk_norm_w = _param(cfg.num_heads + cfg.num_kv_heads, d, **kw) if cfg.qk_norm else None
        self.o_w = _param(h, cfg.num_heads * d, **kw)
        self.o_b = _param(h, **kw) if cfg.o_bias else None
        self.gate_up_w = _param(2 * cfg.intermediate_size, h, **kw)
        self.gate_up_b = _param(2 * cfg.intermediate_size, **kw) if cfg.mlp_bias else None
        self.down_w = _param(h, cfg.intermediate_size, **kw)
        self.down_b = _param(h, **kw) if cfg.mlp_bias else None

    def forward(self, x: torch.Tensor, ctx: "StepContext") -> torch.Tensor:
        n_rows, heads, kvh = x.shape[0], self.heads, self.kv_heads
        qkv = F.linear(rms_norm(x, self.ln1, self.eps), self.qkv_w, self.qkv_b)
        qkv = qkv.view(n_rows, heads + 2 * kvh, self.head_dim)
        qk, v = qkv[:, :heads + kvh], qkv[:, heads + kvh:]
        if self.qk_norm_w is not None:
            qk = self.qk_norm_w * F.rms_norm(qk, (self.head_dim,), None, self.eps)
        qk = apply_rope(qk, ctx.cos, ctx.sin)
        ctx.cache.write(self.index, ctx.write_index, qk[:, heads:], v)
        keys, values = ctx.cache.read(self.index, ctx.plan.lane_sel, ctx.plan.ranges)
        att = attend(ctx.plan, qk[:, :heads], keys, values, self.window)
        x = x + F.linear(att, self.o_w, self.o_b)
        gate_up = F.linear(rms_norm(x, self.ln2, self.eps), self.gate_up_w, self.gate_up_b)
        gate, up = gate_up.chunk(2, dim=-1)
        return x + F.linear(F.silu(gate) * up, self.down_w, self.down_b)


class StepContext:
    """What every layer of one forward shares: the cache, the attention plan, RoPE rows, KV write rows."""
    __slots__ = ("cache", "plan", "cos", "sin", "write_index")

    def __init__(self, cache, plan, cos, sin, write_index):
        self.cache, self.plan, self.cos, self.sin = cache, plan, cos, sin
        self.write_index = write_index


class CausalLM(nn.Module):
    """Decoder-only LM with a lane/slot KV cache (see module docstring)."""

    def __init__(self, config: ModelConfig, dtype: torch.dtype = torch.float32,
                 device: Union[str, torch.device] = "cpu"):
        super().__init__()
        self.config = config
        self.dtype, self.device = dtype, torch.device(device)
        kw = dict(dtype=dtype, device=self.device)
        self.embed = _param(config.vocab_size, config.hidden_size, **kw)
        self.layers = nn.ModuleList(DecoderLayer(config, i, dtype, self.device)
                                    for i in range(config.num_layers))
        self.norm = _param(config.hidden_size, **kw)
        self.lm_head = self.embed if config.tie_word_embeddings else \
            _param(config.vocab_size, config.hidden_size, **kw)
        self.rope = RopeTable(config.head_dim, config.rope_theta, config.rope_scaling,
                              dtype, self.device)
        self.windows = tuple(sorted({w for w in config.layer_windows if w is not None}))
        self.kv_cache: Optional[KVCache] = None
        self.output_vocab_size = self.valid_vocab_size = config.vocab_size
        self._native: Optional[cpu_model.CpuModel] = None
        # a _core.ThreadTeam the native forward splits its work over (None: the calling thread only);
        # the logits are bitwise the same either way
        self.native_team = None

    # ----------------------------------------------------------------- setup
    def allocate_kv(self, num_lanes: int, max_slots: int, scratch_slots: int = 0,
                    spare_slot: bool = False) -> None:
        """Preallocate K/V for ``num_lanes`` lanes of ``max_slots`` slots, the last
        ``scratch_slots`` of which are tree-branch scratch (context = the rest);
        ``spare_slot``: one more never-read slot per lane (padding rows of static_forward.py)."""
        for name, val, low in (("num_lanes", num_lanes, 1), ("max_slots", max_slots, 1),
                               ("scratch_slots", scratch_slots, 0)):
            if isinstance(val, bool) or not isinstance(val, int) or val < low:
                raise ValueError(f"{name}={val!r}: expected an int >= {low}")
        if scratch_slots >= max_slots:
            raise ValueError(f"scratch_slots={scratch_slots} must be < max_slots={max_slots}")
        self.kv_cache = None  # free the old buffer before allocating the new one
        cfg = self.config
        self.kv_cache = KVCache(cfg.num_layers, num_lanes, max_slots, scratch_slots,
                                cfg.num_kv_heads, cfg.head_dim, self.dtype, self.device,
                                track_positions=bool(self.windows), spare_slot=spare_slot)
        self.rope.ensure(max_slots)
        log.info("KV cache: %d lanes x %d slots (%d scratch), %.1f MiB", num_lanes, max_slots,
                 scratch_slots, self.kv_cache.nbytes() / 2**20)

    def set_vocab_policy(self, output_size: int, valid_size: Optional[int] = None) -> None:
        """Return ``output_size`` logit columns; ids ``>= valid_size`` are -inf."""
        valid_size = output_size if valid_size is None else valid_size
        for name, val in (("output_size", output_size), ("valid_size", valid_size)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name}={val!r}: expected a positive int")
        self.output_vocab_size, self.valid_vocab_size = output_size, valid_size

    # --------------------------------------------------------------- forward
    @torch.inference_mode()
    def forward_rows(self, tokens: IndexLike, positions: IndexLike, lanes: IndexLike,
                     slots: IndexLike, attend_len: Optional[IndexLike] = None,
                     extra_slots: Optional[IndexLike] = None,
                     logits_rows: Optional[IndexLike] = None,
                     kv_cache: Optional[KVCache] = None) -> torch.Tensor:
        """Run N flattened rows; return float32 logits ``[len(logits_rows) or N, V]``.

        Row r (token ``tokens[r]`` at RoPE position ``positions[r]``) writes its
        K/V at ``(lanes[r], slots[r])`` and attends within its lane to slots
        ``[0, attend_len[r])`` + ``extra_slots[r]`` (-1 padded) + its own slot;
        ``attend_len`` None means ``slots + 1`` (causal by slot), so with both None
        row r sees slots ``[0, slots[r]]``. Inputs: 1-D int tensors (any device) or
        lists; ``extra_slots`` is ``[N, E]``. ``kv_cache``: the cache to use (default the
        model's own, see allocate_kv). Raises ValueError on out-of-range input.
        """
        cache = self.kv_cache if kv_cache is None else kv_cache
        if cache is None:
            raise RuntimeError("KV cache not allocated: call allocate_kv(num_lanes, max_slots) first")
        rows = parse_rows(tokens, positions, lanes, slots, attend_len, extra_slots, logits_rows,
                          self.config.vocab_size, cache)
        return self.run_rows(rows, cache)

    @torch.inference_mode()
    def run_rows(self, rows: Rows, cache: KVCache, native: Optional[bool] = None) -> torch.Tensor:
        """forward_rows for rows already validated against ``cache`` (rows.parse_rows): the native
        forward when ``native`` (default: ``cpu_model.supports(self)``, i.e. CPU, float32, built and
        enabled), else torch."""
        if cpu_model.supports(self) if native is None else native:
            return self._run_native(rows, cache)
        dev = self.device
        cache.record_positions(rows.lanes, rows.slots, rows.positions)
        plan = build_plan(rows.lanes, rows.slots, rows.positions, rows.attend_len,
                          rows.extra, self.config.kv_groups, self.windows, cache.slot_pos, dev)
        self.rope.ensure(int(rows.positions.max()))
        cos, sin = self.rope.lookup(rows.positions.to(dev, non_blocking=True))
        write_index = cache.write_index(rows.lanes.to(dev, non_blocking=True),
                                        rows.slots.to(dev, non_blocking=True))
        logits_rows = None if rows.logits_rows is None else rows.logits_rows.to(dev, non_blocking=True)
        return self.run_planned(rows.tokens.to(dev, non_blocking=True),
                                StepContext(cache, plan, cos, sin, write_index), logits_rows)

    def run_planned(self, tokens: torch.Tensor, ctx: StepContext,
                    logits_rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Embedding, layers and lm_head for device ``tokens`` under a ready ``ctx``; no host sync,
        so static_forward.py captures it in a CUDA graph. Logits of ``logits_rows`` (None: all)."""
        x = F.embedding(tokens, self.embed)
        for layer in self.layers:
            x = layer(x, ctx)
        if logits_rows is not None:
            x = x.index_select(0, logits_rows)
        return self._logits(rms_norm(x, self.norm, self.config.rms_norm_eps))

    def _run_native(self, rows: Rows, cache: KVCache) -> torch.Tensor:
        """The same forward by the native C++ kernel (see cpu_model.py)."""
        self.rope.ensure(int(rows.positions.max()))
        return self.native().forward(self, cache, rows, self.computed_vocab(), self.output_vocab_size,
                                     self.native_team)

    def native(self) -> "cpu_model.CpuModel":
        """The native forward bound to this model's weights (rebuilt when their storage moves)."""
        if self._native is None or self._native.key != cpu_model.CpuModel.storage_key(self):
            self._native = cpu_model.CpuModel(self)
        return self._native

    def refresh_native(self) -> None:
        """Rebuild the native forward's packed weight copies; call after changing weights in place."""
        self._native = None

    def computed_vocab(self) -> int:
        """Logit columns actually computed; the rest of ``output_vocab_size`` are -inf."""
        return min(self.output_vocab_size, self.valid_vocab_size, self.config.vocab_size)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        out, computed = self.output_vocab_size, self.computed_vocab()
        logits = F.linear(x, self.lm_head[:computed]).float()
        if computed < out:
            logits = F.pad(logits, (0, out - computed), value=float("-inf"))
        return logits

    # ------------------------------------------------------- convenience API
    def prefill(self, lane: int, token_ids: IndexLike, start: int = 0) -> torch.Tensor:
        """Write ``token_ids`` at positions/slots ``start..`` of ``lane``; last logits ``[V]``."""
        ids = torch.as_tensor(token_ids, dtype=torch.int64).reshape(-1)
        n = ids.numel()
        if n == 0:
            raise ValueError("token_ids is empty: prefill needs at least one token")
        pos = torch.arange(start, start + n)
        lanes = torch.full((n,), int(lane), dtype=torch.int64)
        return self.forward_rows(ids, pos, lanes, pos, logits_rows=torch.tensor([n - 1]))[0]

    def decode(self, lanes: IndexLike, tokens: IndexLike, start_positions: IndexLike) -> torch.Tensor:
        """Feed ``tokens[b]`` (``[B, n]``) to lane ``lanes[b]`` from position
        ``start_positions[b]`` on; logits ``[B, n, V]`` (decode: n=1, verify: n=K+1)."""
        tok = torch.as_tensor(tokens, dtype=torch.int64)
        if tok.dim() == 1:
            tok = tok[:, None]
        if tok.dim() != 2 or tok.numel() == 0:
            raise ValueError(f"tokens: expected a non-empty [B, n] tensor, got shape {tuple(tok.shape)}")
        batch, n = tok.shape
        ln = torch.as_tensor(lanes, dtype=torch.int64).reshape(-1)
        start = torch.as_tensor(start_positions, dtype=torch.int64).reshape(-1)
        if ln.numel() != batch or start.numel() != batch:
            raise ValueError(f"lanes ({ln.numel()}) and start_positions ({start.numel()}) must "
                             f"have one entry per row of tokens ({batch})")
        pos = (start[:, None] + torch.arange(n)[None, :]).reshape(-1)
        out = self.forward_rows(tok.reshape(-1), pos, ln.repeat_interleave(n), pos)
        return out.view(batch, n, -1)
