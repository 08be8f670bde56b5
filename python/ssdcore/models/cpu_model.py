"""CpuModel: a CausalLM's forward run by the native C++ kernel ``ssd::CpuModel`` (cpp/cpu_model.h).

On a CPU, a small model's torch forward is hundreds of tiny ops, each a Python call that takes the GIL:
per-op overhead dominates a decode, and a draft and a target forwarding on two threads slow each
other down through the GIL. The native forward runs the whole model in one call without the GIL, with
repacked weights (cpp/packed_linear.h) read once for up to 6 rows, so K+1 rows cost little more than one.

It computes exactly what :meth:`CausalLM._run` computes, up to float rounding, and is batch-invariant:
a token's logits are bitwise equal in a decode, a verification and a tree step.

Used by :class:`~ssdcore.models.CausalLM` when all of these hold (:func:`supports`, whatever the torch
thread count): CPU, float32, the extension is built, and :func:`set_enabled` has not switched it off.
The engine's runner (ssdcore/engine/model_runner.py) makes that choice once, when it is built. Weight
matrices are copied (packed) when :class:`CpuModel` is built; norms, biases and the embedding are
borrowed by pointer. It is rebuilt when the weight storage moves; after changing weights in place
call :meth:`CausalLM.refresh_native`. The KV cache and RoPE tables are passed with every call.
Any thread may call :meth:`CpuModel.forward`, one at a time per model.
"""
from __future__ import annotations

import torch

try:
    from .. import _core
    _Native = getattr(_core, "CpuModel", None)
except ImportError:  # models used without the built extension
    _Native = None

_enabled = _Native is not None


def set_enabled(enabled: bool) -> bool:
    """Use (True) or bypass (False) the native CPU forward process-wide; returns the previous value."""
    global _enabled
    previous = _enabled
    _enabled = bool(enabled) and _Native is not None
    return previous


def available() -> bool:
    """True when the native forward is built and enabled."""
    return _enabled


def supports(model) -> bool:
    """Whether ``model`` (a CausalLM) can run natively: enabled, CPU, float32."""
    return _enabled and model.device.type == "cpu" and model.dtype == torch.float32


class CpuModel:
    """The native forward bound to one CausalLM's weights (see module docstring)."""

    def __init__(self, model):
        cfg = model.config
        shape = dict(vocab=cfg.vocab_size, hidden=cfg.hidden_size, intermediate=cfg.intermediate_size,
                     layers=cfg.num_layers, heads=cfg.num_heads, kv_heads=cfg.num_kv_heads,
                     head_dim=cfg.head_dim, eps=float(cfg.rms_norm_eps), qkv_bias=cfg.qkv_bias,
                     o_bias=cfg.o_bias, mlp_bias=cfg.mlp_bias, qk_norm=cfg.qk_norm,
                     windows=[w or 0 for w in cfg.layer_windows])
        weights = {"embed": model.embed, "norm": model.norm, "lm_head": model.lm_head}
        for i, layer in enumerate(model.layers):
            for name in ("ln1", "ln2", "qkv_w", "qkv_b", "o_w", "o_b", "gate_up_w", "gate_up_b",
                         "down_w", "down_b", "qk_norm_w"):
                if getattr(layer, name) is not None:
                    weights[f"L{i}.{name}"] = getattr(layer, name)
        self.key = self.storage_key(model)
        self._native = _Native(shape, {k: v.detach().__dlpack__() for k, v in weights.items()})

    @staticmethod
    def storage_key(model) -> tuple:
        """Changes when the weight storage the native object points at may have moved."""
        return model.embed.data_ptr(), model.layers[-1].down_w.data_ptr(), model.lm_head.data_ptr()

    def runner(self, model, cache, cores, threads: int = 1) -> tuple:
        """(engine runner ``_core.CpuModelRunner`` over ``cache``, the tensors it borrows). The engine's
        worker then runs forwards with no Python at all (see ssdcore.engine.model_runner), split over
        ``threads`` threads (the worker's included; bitwise the logits of one); the caller keeps the
        returned tensors alive as long as the runner."""
        arrays = _cache_arrays(cache, model.rope)
        native = _core.CpuModelRunner(self._native, _capsules(arrays), model.output_vocab_size,
                                      model.computed_vocab(), list(cores or ()), int(threads))
        return native, tuple(arrays.values())

    def forward(self, model, cache, rows, lm_rows: int, out_cols: int, team=None) -> torch.Tensor:
        """Float32 logits ``[len(rows.logits_rows) or N, out_cols]`` over ``cache`` (one of
        ``model``'s); columns >= lm_rows are -inf.
        ``team`` (a ``_core.ThreadTeam``) splits the work over its threads, with the same bits."""
        n_out = rows.tokens.numel() if rows.logits_rows is None else rows.logits_rows.numel()
        logits = torch.empty(n_out, out_cols, dtype=torch.float32)
        batch = {k: _int32(v) for k, v in dict(tokens=rows.tokens, positions=rows.positions, lanes=rows.lanes,
                                                slots=rows.slots, attend_len=rows.attend_len,
                                                extra_slots=rows.extra).items()}
        arrays = dict(batch, logits_rows=rows.logits_rows, logits=logits, **_cache_arrays(cache, model.rope))
        self._native.forward(_capsules(arrays), lm_rows, team)
        if lm_rows < out_cols:
            logits[:, lm_rows:] = float("-inf")
        return logits


def _int32(index):
    """A Rows index tensor (validated, so in int32 range) as the int32 array of the engine's
    ForwardBatch, which the native forward reads (None stays None)."""
    return None if index is None else index.to(torch.int32)


def _cache_arrays(cache, rope) -> dict:
    """The KV cache and RoPE tables under the names cpp/cpu_model.h reads."""
    return dict(kv=cache.buffer, slot_pos=cache.slot_pos, rope_cos=rope.cos, rope_sin=rope.sin_signed)


def _capsules(arrays: dict) -> dict:
    """DLPack capsules of contiguous tensors (None stays None: an absent optional array)."""
    return {k: None if v is None else v.contiguous().__dlpack__() for k, v in arrays.items()}
