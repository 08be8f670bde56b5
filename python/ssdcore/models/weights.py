"""Safetensors discovery and loading into CausalLM's fused parameters.

Weight files: ``model.safetensors.index.json`` (sharded; every shard it names
must exist) takes precedence, then ``model.safetensors``, then any
``model-*.safetensors``. PyTorch ``.bin`` checkpoints are refused with a hint.
Tensors are read one at a time with ``safe_open`` and copied (with dtype and
device conversion) straight into slices of the preallocated fused parameters,
so peak memory is the model plus one tensor. Every problem (unreadable file,
missing tensor, shape mismatch) raises :class:`WeightsError` naming the file
and tensor. Tensors the model does not use (e.g. a tied ``lm_head.weight``,
``rotary_emb.inv_freq``) are skipped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from .errors import WeightsError

log = logging.getLogger(__name__)


def find_weight_files(path: Path) -> list:
    """Safetensors files of a checkpoint directory (see module docstring)."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise WeightsError(f"{index}: not a valid safetensors index ({type(e).__name__}: {e})") from None
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise WeightsError(f"{index} lists shard(s) that do not exist: {', '.join(missing)}")
        return [path / s for s in shards]
    if (path / "model.safetensors").is_file():
        return [path / "model.safetensors"]
    shards = sorted(path.glob("model-*.safetensors"))
    if shards:
        return shards
    if any(path.glob("*.bin")) or any(path.glob("*.pt")) or any(path.glob("*.pth")):
        raise WeightsError(f"{path} has only PyTorch .bin/.pt weights; ssdcore loads safetensors "
                           "(convert with transformers: model.save_pretrained(dir, safe_serialization=True))")
    raise WeightsError(f"no safetensors weights in {path} (expected model.safetensors or "
                       "model.safetensors.index.json with its shards)")


def hf_parameter_map(model) -> dict:
    """HF tensor name -> (target tensor view, repeat-to-rows or 0)."""
    cfg = model.config
    d, h, kvh, inter = cfg.head_dim, cfg.num_heads, cfg.num_kv_heads, cfg.intermediate_size
    q_end, k_end = h * d, (h + kvh) * d
    m = {"model.embed_tokens.weight": (model.embed, 0), "model.norm.weight": (model.norm, 0)}
    if not cfg.tie_word_embeddings:
        m["lm_head.weight"] = (model.lm_head, 0)
    for i, layer in enumerate(model.layers):
        p = f"model.layers.{i}."
        m[p + "input_layernorm.weight"] = (layer.ln1, 0)
        m[p + "post_attention_layernorm.weight"] = (layer.ln2, 0)
        m[p + "self_attn.o_proj.weight"] = (layer.o_w, 0)
        m[p + "mlp.down_proj.weight"] = (layer.down_w, 0)
        for kind, fused in (("weight", layer.qkv_w), ("bias", layer.qkv_b)):
            if fused is not None:
                m[p + f"self_attn.q_proj.{kind}"] = (fused[:q_end], 0)
                m[p + f"self_attn.k_proj.{kind}"] = (fused[q_end:k_end], 0)
                m[p + f"self_attn.v_proj.{kind}"] = (fused[k_end:], 0)
        for kind, fused in (("weight", layer.gate_up_w), ("bias", layer.gate_up_b)):
            if fused is not None:
                m[p + f"mlp.gate_proj.{kind}"] = (fused[:inter], 0)
                m[p + f"mlp.up_proj.{kind}"] = (fused[inter:], 0)
        if layer.o_b is not None:
            m[p + "self_attn.o_proj.bias"] = (layer.o_b, 0)
        if layer.down_b is not None:
            m[p + "mlp.down_proj.bias"] = (layer.down_b, 0)
        if layer.qk_norm_w is not None:
            m[p + "self_attn.q_norm.weight"] = (layer.qk_norm_w[:h], h)
            m[p + "self_attn.k_norm.weight"] = (layer.qk_norm_w[h:], kvh)
    return m


def load_weights(model, files: list) -> None:
    """Fill ``model``'s parameters from safetensors ``files``; WeightsError on any problem."""
    targets = hf_parameter_map(model)
    loaded, unused = set(), []
    with torch.no_grad():
        for f in files:
            for name, tensor in _iter_tensors(f):
                if name not in targets:
                    unused.append(name)
                    continue
                _copy_into(targets[name], tensor, name, f)
                loaded.add(name)
    missing = [n for n in targets if n not in loaded]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise WeightsError(f"checkpoint lacks {len(missing)} tensor(s) the "
                           f"{model.config.architecture} config needs: {', '.join(missing[:5])}{more}")
    relevant = [n for n in unused if "rotary_emb" not in n and n != "lm_head.weight"]
    if relevant:
        log.warning("ignored %d unexpected tensor(s), e.g. %s", len(relevant), relevant[:3])


def _iter_tensors(f: Path):
    from safetensors import safe_open
    try:
        handle = safe_open(str(f), framework="pt", device="cpu")
    except Exception as e:  # safetensors raises its own error types
        raise WeightsError(f"{f}: corrupt or unreadable safetensors file ({e})") from None
    with handle:
        for name in handle.keys():
            try:
                tensor = handle.get_tensor(name)
            except Exception as e:
                raise WeightsError(f"{f}: tensor {name!r} cannot be read ({e})") from None
            yield name, tensor


def _copy_into(target: tuple, tensor: torch.Tensor, name: str, f: Path) -> None:
    dest, repeat = target
    expected = tuple(dest.shape[1:]) if repeat else tuple(dest.shape)
    if tuple(tensor.shape) != expected:
        raise WeightsError(f"{f}: tensor {name!r} has shape {tuple(tensor.shape)}, the config "
                           f"implies {expected}")
    if repeat:
        tensor = tensor[None].expand(repeat, *expected)
    dest.copy_(tensor)
