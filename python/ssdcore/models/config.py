"""ModelConfig: the one configuration object for every supported model family.

Built from a Hugging Face ``config.json`` dict by :meth:`ModelConfig.from_hf_dict`.
The family is chosen from ``architectures`` (first supported entry) or, when that
key is absent, from ``model_type``. Family differences are reduced to flags that
:class:`~ssdcore.models.causal_lm.CausalLM` reads:

=========  ========  ======  ========  =======  =============================
family     qkv bias  o bias  mlp bias  qk norm  sliding window
=========  ========  ======  ========  =======  =============================
llama      attention_bias    mlp_bias  no       none
mistral    no        no      no        no       ``sliding_window``, all layers
qwen2      yes       no      no        no       ``use_sliding_window`` + layer types
qwen3      attention_bias    no        yes      ``use_sliding_window`` + layer types
=========  ========  ======  ========  =======  =============================

Invariants: ``num_heads % num_kv_heads == 0``; ``head_dim`` is even;
``rope_scaling`` is None (plain RoPE) or a dict whose ``rope_type`` is one of
:data:`SUPPORTED_ROPE_TYPES`; ``layer_windows`` has one entry per layer.
Both the transformers-5 ``rope_parameters`` layout and the older
``rope_theta`` + ``rope_scaling`` layout are accepted.

A draft checkpoint may recommend its speculation settings in ``ssdcore_speculation``, a JSON object
with any of ``K`` (int >= 1), ``fan_out`` (int >= 1, a list of ints >= 0, "uniform" or
"geometric") and ``saguaro_c`` (0 < C <= 1), measured for it against its target;
:class:`~ssdcore.Engine` uses them for the arguments its caller leaves unset
(:func:`~ssdcore.engine.engine_setup.apply_draft_speculation`). Other models ignore the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .errors import ModelLoadError, UnsupportedArchitectureError

ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
}
MODEL_TYPES = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen3": "qwen3"}
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
_SUPPORTED_ACTS = ("silu", "swish")
_DEFAULT_ROPE_THETA = 10000.0


@dataclass(frozen=True)
class ModelConfig:
    """Shape and behaviour of one decoder-only model (see module docstring)."""

    architecture: str
    family: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: Optional[dict]
    max_position_embeddings: int
    tie_word_embeddings: bool
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    qk_norm: bool
    layer_windows: tuple
    eos_token_ids: tuple
    bos_token_id: Optional[int] = None
    pad_token_id: Optional[int] = None
    torch_dtype: Optional[str] = None
    speculation: Optional[dict] = None  # ``ssdcore_speculation`` (module docstring); None: none given

    @property
    def kv_groups(self) -> int:
        """Query heads per key/value head (1 = MHA, > 1 = GQA)."""
        return self.num_heads // self.num_kv_heads

    @classmethod
    def from_hf_dict(cls, d: dict) -> "ModelConfig":
        """Parse a ``config.json`` dict; raise ModelLoadError subclasses on bad input."""
        if not isinstance(d, dict):
            raise ModelLoadError(f"config.json must hold a JSON object, got {type(d).__name__}")
        architecture, family = _select_family(d)
        if d.get("quantization_config"):
            method = d["quantization_config"].get("quant_method", "?") \
                if isinstance(d["quantization_config"], dict) else "?"
            raise UnsupportedArchitectureError(
                f"quantized checkpoints are not supported (quant_method={method!r}); "
                "use the unquantized float16/bfloat16 weights")
        act = d.get("hidden_act", "silu")
        if act not in _SUPPORTED_ACTS:
            raise UnsupportedArchitectureError(
                f"hidden_act={act!r} is not supported (supported: {', '.join(_SUPPORTED_ACTS)})")
        hidden = _req_int(d, "hidden_size")
        heads = _req_int(d, "num_attention_heads")
        layers = _req_int(d, "num_hidden_layers")
        kv_heads = d.get("num_key_value_heads") or heads
        default_head_dim = 128 if family == "qwen3" else hidden // heads
        head_dim = d.get("head_dim") or default_head_dim
        if not isinstance(kv_heads, int) or kv_heads <= 0 or heads % kv_heads:
            raise ModelLoadError(f"num_key_value_heads={kv_heads!r} must be a positive divisor of "
                                 f"num_attention_heads={heads}")
        if not isinstance(head_dim, int) or head_dim <= 0 or head_dim % 2:
            raise ModelLoadError(f"head_dim={head_dim!r} must be a positive even integer")
        theta, scaling = _parse_rope(d)
        attn_bias = bool(d.get("attention_bias", False))
        return cls(
            architecture=architecture, family=family,
            vocab_size=_req_int(d, "vocab_size"), hidden_size=hidden,
            intermediate_size=_req_int(d, "intermediate_size"), num_layers=layers,
            num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
            rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
            rope_theta=theta, rope_scaling=scaling,
            max_position_embeddings=int(d.get("max_position_embeddings", 2048)),
            tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
            qkv_bias=True if family == "qwen2" else (attn_bias and family != "mistral"),
            o_bias=attn_bias and family in ("llama", "qwen3"),
            mlp_bias=bool(d.get("mlp_bias", False)) and family == "llama",
            qk_norm=family == "qwen3",
            layer_windows=_layer_windows(d, family, layers),
            eos_token_ids=tuple(normalize_token_ids(d.get("eos_token_id"), "eos_token_id")),
            bos_token_id=_opt_int(d.get("bos_token_id")),
            pad_token_id=_opt_int(d.get("pad_token_id")),
            torch_dtype=d.get("torch_dtype") or d.get("dtype"),
            speculation=_parse_speculation(d.get("ssdcore_speculation")),
        )


def normalize_token_ids(value: Any, name: str) -> list:
    """An ``eos_token_id``-style field (None, int or list of ints) as a list of ints."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ModelLoadError(f"{name}={value!r}: expected a non-negative int or a list of them")
        out.append(v)
    return out


def _select_family(d: dict) -> tuple:
    archs = d.get("architectures") or []
    if isinstance(archs, str):
        archs = [archs]
    for a in archs:
        if a in ARCHITECTURES:
            return a, ARCHITECTURES[a]
    if archs:
        raise UnsupportedArchitectureError(
            f"unsupported architecture {', '.join(map(str, archs))}; supported architectures: "
            f"{', '.join(ARCHITECTURES)}")
    mt = d.get("model_type")
    if mt in MODEL_TYPES:
        fam = MODEL_TYPES[mt]
        arch = next(a for a, f in ARCHITECTURES.items() if f == fam)
        return arch, fam
    raise UnsupportedArchitectureError(
        f"unsupported model_type {mt!r} (config.json has no 'architectures'); supported "
        f"architectures: {', '.join(ARCHITECTURES)} (model_type {', '.join(MODEL_TYPES)})")


def _parse_rope(d: dict) -> tuple:
    params = d.get("rope_parameters")
    if params is not None and not isinstance(params, dict):
        raise ModelLoadError(f"rope_parameters={params!r} must be an object")
    if params and all(isinstance(v, dict) for v in params.values()):
        raise UnsupportedArchitectureError("per-layer-type rope_parameters are not supported")
    params = dict(params or {})
    scaling = d.get("rope_scaling")
    if scaling:
        if not isinstance(scaling, dict):
            raise ModelLoadError(f"rope_scaling={scaling!r} must be an object or null")
        params.update(scaling)
    theta = float(params.pop("rope_theta", d.get("rope_theta", _DEFAULT_ROPE_THETA)))
    rope_type = params.pop("rope_type", params.pop("type", "default")) or "default"
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise UnsupportedArchitectureError(
            f"rope_type {rope_type!r} is not supported (supported: {', '.join(SUPPORTED_ROPE_TYPES)})")
    if float(params.get("partial_rotary_factor", 1.0)) != 1.0:
        raise UnsupportedArchitectureError("partial_rotary_factor != 1 is not supported")
    if rope_type == "default":
        return theta, None
    needed = {"linear": ("factor",),
              "llama3": ("factor", "low_freq_factor", "high_freq_factor")}[rope_type]
    missing = [k for k in needed if k not in params]
    if missing:
        raise ModelLoadError(f"rope_scaling of type {rope_type!r} lacks {', '.join(missing)}")
    out = {"rope_type": rope_type, **{k: float(params[k]) for k in needed}}
    if rope_type == "llama3":
        out["original_max_position_embeddings"] = int(
            params.get("original_max_position_embeddings") or d.get("max_position_embeddings", 8192))
    return theta, out


def _layer_windows(d: dict, family: str, layers: int) -> tuple:
    window = d.get("sliding_window")
    if family == "llama" or window is None:
        return (None,) * layers
    if not isinstance(window, int) or window <= 0:
        raise ModelLoadError(f"sliding_window={window!r} must be a positive int or null")
    if family == "mistral":
        return (window,) * layers
    if not d.get("use_sliding_window", False):
        return (None,) * layers
    types = d.get("layer_types")
    if types is None:
        first = int(d.get("max_window_layers", layers))
        return tuple(window if i >= first else None for i in range(layers))
    if len(types) != layers:
        raise ModelLoadError(f"layer_types has {len(types)} entries, expected num_hidden_layers={layers}")
    return tuple(window if t == "sliding_attention" else None for t in types)


SPECULATION_KEYS = ("K", "fan_out", "saguaro_c")


def _parse_speculation(v: Any) -> Optional[dict]:
    """``ssdcore_speculation`` with each value checked on its own at load (lists become tuples); the
    engine checks that the values it applies fit together (a fan-out list has K+1 entries)."""
    if v is None:
        return None
    allowed = ("an object with any of K (int >= 1), fan_out (int >= 1, list of ints >= 0, 'uniform' or "
               "'geometric') and saguaro_c (0 < C <= 1)")
    if not isinstance(v, dict) or set(v) - set(SPECULATION_KEYS):
        raise ModelLoadError(f"ssdcore_speculation={v!r} is invalid: allowed {allowed}")
    K, fan_out, c = v.get("K", 1), v.get("fan_out", 1), v.get("saguaro_c", 1.0)
    fan_ok = (fan_out in ("uniform", "geometric") or (_is_int(fan_out) and fan_out >= 1)
              or (isinstance(fan_out, list) and fan_out and all(_is_int(f) and f >= 0 for f in fan_out)))
    c_ok = isinstance(c, (int, float)) and not isinstance(c, bool) and 0 < c <= 1
    if not (fan_ok and _is_int(K) and K >= 1 and c_ok):
        raise ModelLoadError(f"ssdcore_speculation={v!r} is invalid: allowed {allowed}")
    return {k: (tuple(x) if isinstance(x, list) else x) for k, x in v.items()}


def _is_int(x: Any) -> bool:
    """An int that is not a bool (JSON true/false arrive as bools)."""
    return isinstance(x, int) and not isinstance(x, bool)


def _req_int(d: dict, key: str) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ModelLoadError(f"config.json field {key!r}={v!r}: expected a positive integer")
    return v


def _opt_int(v: Any) -> Optional[int]:
    if isinstance(v, list):
        v = v[0] if v else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None
