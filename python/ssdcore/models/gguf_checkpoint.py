"""GGUF checkpoints: convert a llama.cpp ``.gguf`` file once into a cached Hugging Face folder.

``gguf_to_hf_folder(path)`` returns a directory holding config.json, model.safetensors (or shards
with an index), the tokenizer files with the chat template, generation_config.json (EOS ids) and
``gguf_source.json`` (what was converted, and how long it took). :func:`~ssdcore.models.load_model`
then reads that folder like any other HF checkpoint, so a GGUF model runs through exactly the same
loader, config validation and weight mapping as a safetensors one.

How a file is read. Metadata and tensors come from ``gguf.GGUFReader`` (the reader llama.cpp
publishes on PyPI); each tensor is dequantized to float32 by ``gguf.quants.dequantize``. The
tokenizer goes through transformers' public GGUF support (``AutoTokenizer.from_pretrained(folder,
gguf_file=...)``), which builds a fast tokenizer from the vocabulary, merges and special tokens.
Why not transformers for config and weights too: ``AutoModelForCausalLM.from_pretrained(...,
gguf_file=...)`` requires ``accelerate``, and each of transformers' GGUF entry points parses the
file again. Measured on SmolLM2-135M-Instruct Q4_1 (tools/bench_gguf.py, one thread, 2 shared
cores): transformers' AutoConfig 3.1 s + AutoTokenizer 3.6 s + ``load_gguf_checkpoint`` 8.7 s =
15.4 s, against 8.4 s for this conversion (one GGUFReader parse ~3 s, dequantization ~1 s, the
tokenizer 3.6 s, writing ~0.5 s); one reader of our own also lets the type and architecture checks
run before any work. A cached load_model then takes ~0.4 s. The tensors are bit-identical to
``load_gguf_checkpoint``'s (tests/test_models_gguf.py).

Supported: GGUF architecture ``llama`` only (tested: SmolLM2-135M-Instruct and tiny random
models; plain or linear rope scaling, tied or untied embeddings, no biases); tensor types
:data:`SUPPORTED_TYPES` (those ``gguf.quants`` can both quantize and dequantize, so each is tested
by a round trip). Anything else raises before a byte is written:
:class:`UnsupportedArchitectureError` naming the architecture, :class:`WeightsError` (a
ValueError) naming the tensor, its type and the supported types. llama.cpp stores the Q and K
projections with the rows of each head interleaved for its rotary layout; they are permuted back
to the HF layout here. Storage: F16 and BF16 tensors keep their dtype, F32 and every quantized
type are stored as float32 (the exact dequantized values), so the folder takes ~4 bytes per
quantized parameter.

Cache. ``<cache>/gguf/<file stem>-<key>/`` where ``<cache>`` is ``$SSDCORE_CACHE``, else
``$XDG_CACHE_HOME/ssdcore``, else ``~/.cache/ssdcore``, and ``<key>`` hashes the file's size,
mtime_ns, its first MiB (the header) and :data:`FORMAT_VERSION` (so a copied file with preserved
mtime shares the entry, and an edited or replaced file gets a new one). A conversion writes into a
private temporary directory beside the entry and renames it into place: the entry either exists
complete or not at all, a crash leaves only a ``.tmp-*`` directory (removed by a later conversion
once it is a day old), and of two processes converting at once the first rename wins and the other
discards its copy. Old entries are never deleted; remove ``<cache>/gguf`` to reclaim the space.

Thread-safety: any thread; concurrent conversions of one file (threads or processes) are safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

from .config import ModelConfig
from .errors import ModelLoadError, UnsupportedArchitectureError, WeightsError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1                       # bump when the folder layout or conversion changes
SUPPORTED_ARCHITECTURES = ("llama",)
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1")
MANIFEST = "gguf_source.json"
SHARD_BYTES = 2 << 30                    # safetensors shard size: bounds peak memory while converting
_HEADER_BYTES = 1 << 20
_STALE_TMP_S = 24 * 3600
_STORED_DTYPES = {"F16": "float16", "BF16": "bfloat16"}  # everything else: float32

# GGUF tensor name (after "blk.N.") -> HF name (after "model.layers.N.")
_LAYER_TENSORS = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_TENSORS = {"token_embd.weight": "model.embed_tokens.weight",
                   "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}


def cache_root() -> Path:
    """The user's ssdcore cache directory (see the module docstring); not created here."""
    if os.environ.get("SSDCORE_CACHE"):
        return Path(os.environ["SSDCORE_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "ssdcore"
    return Path.home() / ".cache" / "ssdcore"


def cached_folder(gguf_path) -> Path:
    """Where the conversion of ``gguf_path`` lives (whether or not it exists yet)."""
    path = Path(gguf_path)
    st = path.stat()
    h = hashlib.sha256(f"ssdcore-gguf:{FORMAT_VERSION}:{st.st_size}:{st.st_mtime_ns}:".encode())
    with open(path, "rb") as f:
        h.update(f.read(_HEADER_BYTES))
    return cache_root() / "gguf" / f"{path.stem}-{h.hexdigest()[:16]}"


def gguf_to_hf_folder(gguf_path) -> Path:
    """HF checkpoint folder converted from the ``.gguf`` file ``gguf_path`` (cached; see module doc).

    Raises :class:`ModelLoadError` for a missing or unreadable file or an unwritable cache,
    :class:`UnsupportedArchitectureError` for an architecture or rope scaling other than those
    supported, :class:`WeightsError` for an unsupported tensor type or an unexpected tensor.
    """
    path = Path(gguf_path).expanduser().resolve()
    if not path.is_file():
        raise ModelLoadError(f"GGUF file {str(gguf_path)!r} does not exist")
    folder = cached_folder(path)
    if folder.is_dir():
        log.info("GGUF %s: using the cached conversion %s", path.name, folder)
        return folder
    start = time.perf_counter()
    reader = _open(path)
    config = hf_config(reader, path)
    with _staging_dir(folder) as tmp:
        types = write_weights(reader, config, tmp)
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        (tmp / "generation_config.json").write_text(json.dumps(generation_config(reader), indent=2))
        write_tokenizer(reader, path, tmp)
        st = path.stat()
        (tmp / MANIFEST).write_text(json.dumps({
            "source": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "format_version": FORMAT_VERSION, "tensor_types": types,
            "convert_seconds": round(time.perf_counter() - start, 3)}, indent=2))
    log.info("GGUF %s converted in %.1f s into %s", path.name, time.perf_counter() - start, folder)
    return folder


# ---------------------------------------------------------------------------- steps

def _open(path: Path):
    try:
        import gguf
    except ImportError:
        raise ModelLoadError(f"loading {path.name} needs the 'gguf' package: pip install gguf") from None
    try:
        return gguf.GGUFReader(str(path))
    except Exception as e:  # the reader raises ValueError/struct.error/... on a bad file
        raise ModelLoadError(f"{path} is not a readable GGUF file ({type(e).__name__}: {e})") from None


def _field(reader, key: str, default=None):
    field = reader.get_field(key)
    if field is None:
        return default
    return field.contents()


def hf_config(reader, path: Path) -> dict:
    """config.json for the GGUF's model; validated by ModelConfig before anything is written."""
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"{path.name}: GGUF architecture {arch!r} is not supported (supported GGUF "
            f"architectures: {', '.join(SUPPORTED_ARCHITECTURES)}; other families load from a "
            "Hugging Face safetensors folder)")
    check_tensor_types(reader, path)
    tensors = {t.name: t for t in reader.tensors}
    if "rope_freqs.weight" in tensors:
        raise UnsupportedArchitectureError(
            f"{path.name}: per-dimension rope frequency factors (tensor 'rope_freqs.weight', "
            "Llama 3.1-style rope scaling) are not supported in GGUF files; load the Hugging Face "
            "safetensors checkpoint instead")
    unknown = [n for n in tensors if _hf_name(n) is None]
    if unknown:
        raise WeightsError(f"{path.name}: tensor(s) outside the llama layout ssdcore maps "
                           f"(no biases, no extra tensors): {', '.join(unknown[:5])}")
    if "token_embd.weight" not in tensors:
        raise WeightsError(f"{path.name}: tensor 'token_embd.weight' is missing")

    def req(key):
        value = _field(reader, f"{arch}.{key}")
        if value is None:
            raise ModelLoadError(f"{path.name}: GGUF metadata {arch}.{key} is missing")
        return value

    hidden, heads = int(req("embedding_length")), int(req("attention.head_count"))
    kv_heads = int(_field(reader, f"{arch}.attention.head_count_kv", heads))
    head_dim = int(_field(reader, f"{arch}.attention.key_length", 0) or hidden // heads)
    rotary = int(_field(reader, f"{arch}.rope.dimension_count", head_dim))
    if rotary != head_dim:
        raise UnsupportedArchitectureError(
            f"{path.name}: partial rotary embeddings ({arch}.rope.dimension_count={rotary}, "
            f"head dim {head_dim}) are not supported")
    embed = tensors["token_embd.weight"]
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": int(embed.shape[1]), "hidden_size": hidden,
        "intermediate_size": int(req("feed_forward_length")),
        "num_hidden_layers": int(req("block_count")),
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "head_dim": head_dim,
        "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
        "rms_norm_eps": float(req("attention.layer_norm_rms_epsilon")),
        "rope_theta": float(_field(reader, f"{arch}.rope.freq_base", 10000.0)),
        "max_position_embeddings": int(_field(reader, f"{arch}.context_length", 2048)),
        "tie_word_embeddings": "output.weight" not in tensors,
        "torch_dtype": _STORED_DTYPES.get(embed.tensor_type.name, "float32"),
    }
    scaling = _field(reader, f"{arch}.rope.scaling.type")
    if scaling not in (None, "none"):
        if scaling != "linear":
            raise UnsupportedArchitectureError(
                f"{path.name}: rope scaling {scaling!r} is not supported in GGUF files "
                "(supported: none, linear)")
        config["rope_scaling"] = {"rope_type": "linear",
                                  "factor": float(req("rope.scaling.factor"))}
    for name, key in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                      ("pad_token_id", "padding_token_id")):
        value = _field(reader, f"tokenizer.ggml.{key}")
        if value is not None:
            config[name] = int(value)
    try:
        ModelConfig.from_hf_dict(config)
    except ModelLoadError as e:
        raise type(e)(f"{path.name}: {e}") from None
    return config


def check_tensor_types(reader, path: Path) -> None:
    """WeightsError naming the first tensor whose type is not in SUPPORTED_TYPES."""
    bad = [t for t in reader.tensors if t.tensor_type.name not in SUPPORTED_TYPES]
    if bad:
        more = f" ({len(bad) - 1} more tensor(s) also unsupported)" if len(bad) > 1 else ""
        raise WeightsError(
            f"{path.name}: tensor {bad[0].name!r} has type {bad[0].tensor_type.name}, which ssdcore "
            f"cannot dequantize{more}; supported types: {', '.join(SUPPORTED_TYPES)}")


def generation_config(reader) -> dict:
    """bos/pad ids and the EOS ids (eos, end-of-turn, end-of-message; in that order)."""
    eos = [_field(reader, f"tokenizer.ggml.{k}") for k in ("eos_token_id", "eot_token_id",
                                                           "eom_token_id")]
    out = {"eos_token_id": list(dict.fromkeys(int(e) for e in eos if e is not None))}
    for name, key in (("bos_token_id", "bos_token_id"), ("pad_token_id", "padding_token_id")):
        value = _field(reader, f"tokenizer.ggml.{key}")
        if value is not None:
            out[name] = int(value)
    return out


def write_weights(reader, config: dict, folder: Path) -> dict:
    """Dequantize every tensor into HF-named safetensors in ``folder``; {type name: count}.

    One ``model.safetensors``, or shards of at most SHARD_BYTES with an index, so that at most one
    shard's tensors are held in memory at a time.
    """
    shard_names, current, size, total, types = [], {}, 0, 0, {}
    for name, tensor, qtype in _hf_tensors(reader, config):
        types[qtype] = types.get(qtype, 0) + 1
        nbytes = tensor.numel() * tensor.element_size()
        if current and size + nbytes > SHARD_BYTES:
            shard_names.append(_save_shard(current, folder, len(shard_names)))
            current, size = {}, 0
        current[name] = tensor
        size, total = size + nbytes, total + nbytes
    shard_names.append(_save_shard(current, folder, len(shard_names)))
    if len(shard_names) == 1:
        (folder / "shard-0.tmp").rename(folder / "model.safetensors")
        return types
    weight_map = {}
    for i, names in enumerate(shard_names):
        final = f"model-{i + 1:05d}-of-{len(shard_names):05d}.safetensors"
        (folder / f"shard-{i}.tmp").rename(folder / final)
        weight_map.update(dict.fromkeys(names, final))
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return types


def _save_shard(tensors: dict, folder: Path, index: int) -> list:
    from safetensors.torch import save_file
    save_file(tensors, str(folder / f"shard-{index}.tmp"), metadata={"format": "pt"})
    return list(tensors)


def _hf_tensors(reader, config: dict) -> Iterator[tuple]:
    """(HF name, torch tensor in the stored dtype, GGUF type name) per tensor, Q/K un-permuted."""
    import numpy as np
    import torch
    from gguf.quants import dequantize

    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16}
    for t in reader.tensors:
        qtype = t.tensor_type.name
        name = _hf_name(t.name)
        try:
            array = dequantize(t.data, t.tensor_type)
        except Exception as e:
            raise WeightsError(f"tensor {t.name!r} ({qtype}) cannot be dequantized "
                               f"({type(e).__name__}: {e})") from None
        if name.endswith("q_proj.weight"):
            array = unpermute_rows(array, config["num_attention_heads"])
        elif name.endswith("k_proj.weight"):
            array = unpermute_rows(array, config["num_key_value_heads"])
        # a copy: an F32 tensor is a view of the read-only file map
        tensor = torch.from_numpy(np.array(array, dtype=np.float32, order="C"))
        yield name, tensor.to(dtypes.get(_STORED_DTYPES.get(qtype), torch.float32)), qtype


def unpermute_rows(weight, n_heads: int):
    """Undo llama.cpp's rotary row order for a Q/K projection [n_heads * head_dim, in].

    llama.cpp's converter writes each head's rows as (pair, half) -> (half, pair); this is the
    inverse, the same as transformers' ``_reverse_permute_weights``.
    """
    rows = weight.shape[0]
    return (weight.reshape(n_heads, rows // n_heads // 2, 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def _hf_name(gguf_name: str) -> Optional[str]:
    if gguf_name in _GLOBAL_TENSORS:
        return _GLOBAL_TENSORS[gguf_name]
    parts = gguf_name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _LAYER_TENSORS:
        return f"model.layers.{parts[1]}.{_LAYER_TENSORS[parts[2]]}"
    return None


def write_tokenizer(reader, path: Path, folder: Path) -> None:
    """Tokenizer files (transformers' GGUF conversion) with the file's chat template, if any."""
    if reader.get_field("tokenizer.ggml.model") is None:
        log.warning("%s has no tokenizer metadata; the model loads without a tokenizer", path.name)
        return
    try:
        from transformers import AutoTokenizer
        with tempfile.TemporaryDirectory() as alone:  # no neighbouring tokenizer files get mixed in
            link = Path(alone) / "model.gguf"
            try:
                link.symlink_to(path)
            except OSError:
                link = path
            tokenizer = AutoTokenizer.from_pretrained(str(link.parent), gguf_file=link.name)
    except Exception as e:
        raise ModelLoadError(f"{path.name}: the tokenizer cannot be converted "
                             f"({type(e).__name__}: {e})") from None
    template = _field(reader, "tokenizer.chat_template")
    if template and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = template
    tokenizer.save_pretrained(str(folder))


@contextlib.contextmanager
def _staging_dir(final: Path):
    """A temporary directory beside ``final`` that becomes ``final`` (atomically) on success."""
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=parent))
    except OSError as e:
        raise ModelLoadError(f"cannot write the GGUF conversion cache in {parent} ({e}); set "
                             "SSDCORE_CACHE to a writable directory") from None
    try:
        yield tmp
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            log.info("another process converted %s first; using its copy", final.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale(parent: Path) -> None:
    now = time.time()
    for entry in parent.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if now - entry.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(entry, ignore_errors=True)
