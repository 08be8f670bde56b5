"""Public loader: ``load_model(path_or_id, dtype, device) -> LoadedModel``.

``path_or_id`` is resolved to an HF folder by resolve.py (a local folder, a
``.gguf`` file converted once into a cached folder, a name such as "smollm2", or
a hub id). From that folder it reads config.json (family chosen there), the
safetensors weights (sharded or not), the tokenizer (``transformers.AutoTokenizer``;
optional: a checkpoint without tokenizer files loads with ``tokenizer=None`` and a
warning), generation_config.json and the chat template. EOS ids are the union, in order,
of generation_config's ``eos_token_id`` and config's (each an int or a list),
falling back to the tokenizer's eos token. The model's logits are masked to
the tokenizer's vocabulary (padded embedding rows give -inf), see causal_lm.py.
All failures raise :mod:`~ssdcore.models.errors` exceptions with ``from None``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .causal_lm import CausalLM
from .config import ModelConfig, normalize_token_ids
from .errors import ModelLoadError
from .resolve import resolve_model_path
from .tokenizer_check import tokenizer_vocab_size
from .weights import find_weight_files, load_weights

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16, "half": torch.float16}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass
class LoadedModel:
    model: CausalLM
    tokenizer: Any
    config: ModelConfig
    eos_token_ids: tuple
    chat_template: Optional[str]
    path: Path
    generation_config: dict = dataclasses.field(default_factory=dict)
    cuda_graphs: bool = True  # for an engine's runner on CUDA: replay decode/verify/tree steps as graphs


def parse_dtype(dtype: Union[str, torch.dtype], config_dtype: Optional[str] = None) -> torch.dtype:
    """torch dtype for a user dtype argument ("auto" = the checkpoint's dtype, else float32)."""
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if dtype == "auto":
        return DTYPES.get(str(config_dtype).replace("torch.", ""), torch.float32)
    if isinstance(dtype, str) and dtype.replace("torch.", "") in DTYPES:
        return DTYPES[dtype.replace("torch.", "")]
    raise ValueError(f"dtype={dtype!r}: expected one of float32, bfloat16, float16 (or auto)")


def parse_device(device: Union[str, torch.device]) -> torch.device:
    """Validated torch.device: 'cpu', 'cuda' or 'cuda:N' with N < device count."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device={device!r}: expected 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"device={device!r}: only 'cpu' and 'cuda[:N]' are supported")
    if not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: CUDA is not available on this machine (use 'cpu')")
    index = 0 if dev.index is None else dev.index
    if index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return torch.device("cuda", index)


def read_json(path: Path, required: bool) -> dict:
    """Parsed JSON object, {} when optional and absent; ModelLoadError otherwise."""
    if not path.is_file():
        if required:
            raise ModelLoadError(f"{path.parent} has no {path.name}; expected a Hugging Face "
                                 "checkpoint directory (config.json + *.safetensors) or a .gguf file")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} must contain a JSON object")
    return data


def load_tokenizer(path: Path):
    """AutoTokenizer for ``path``, or None (with a warning) if it has no tokenizer files."""
    if not any((path / f).is_file() for f in _TOKENIZER_FILES):
        log.warning("%s has no tokenizer files; loading the model without a tokenizer", path)
        return None
    try:
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as e:
        raise ModelLoadError(f"tokenizer in {path} cannot be loaded ({type(e).__name__}: {e})") from None


def eos_ids(generation: dict, config_dict: dict, tokenizer) -> tuple:
    """Ordered, de-duplicated EOS ids from generation_config, config and tokenizer."""
    ids = normalize_token_ids(generation.get("eos_token_id"), "generation_config eos_token_id")
    ids += normalize_token_ids(config_dict.get("eos_token_id"), "config eos_token_id")
    if not ids and tokenizer is not None and tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return tuple(dict.fromkeys(ids))


def load_model(path_or_id, dtype: Union[str, torch.dtype] = "float32",
               device: Union[str, torch.device] = "cpu",
               with_tokenizer: bool = True, cuda_graphs: bool = True) -> LoadedModel:
    """Load a Llama/Mistral/Qwen2/Qwen3 checkpoint (local dir, .gguf, name or hub id) ready to run.
    ``cuda_graphs``: on CUDA, an engine runs this model's decode, verification and tree steps as CUDA
    graphs (False: the same static shapes run eagerly, for debugging; see ssdcore/engine/model_runner.py)."""
    if not (isinstance(dtype, torch.dtype) or dtype == "auto"):
        parse_dtype(dtype)  # fail fast on a bad argument, before touching the disk
    dev = parse_device(device)
    path = resolve_model_path(path_or_id)
    raw = read_json(path / "config.json", required=True)
    config = ModelConfig.from_hf_dict(raw)
    torch_dtype = parse_dtype(dtype, config.torch_dtype)
    files = find_weight_files(path)
    generation = read_json(path / "generation_config.json", required=False)
    tokenizer = load_tokenizer(path) if with_tokenizer else None
    config = dataclasses.replace(config, eos_token_ids=eos_ids(generation, raw, tokenizer))
    model = CausalLM(config, torch_dtype, dev)
    load_weights(model, files)
    model.eval()
    if tokenizer is not None:
        model.set_vocab_policy(config.vocab_size,
                               min(config.vocab_size, tokenizer_vocab_size(tokenizer)))
    template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    log.info("loaded %s (%s, %d layers) from %s as %s on %s", config.architecture, config.family,
             config.num_layers, path, torch_dtype, dev)
    return LoadedModel(model, tokenizer, config, config.eos_token_ids, template, path, generation,
                       bool(cuda_graphs))
