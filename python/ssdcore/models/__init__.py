"""ssdcore.models: lean PyTorch Llama / Mistral / Qwen2 / Qwen3 for the SSD engine.

Public API: :func:`load_model` -> :class:`LoadedModel` (``.model`` is a
:class:`CausalLM` with a lane/slot KV cache and the row-based forward the runtime
calls), :func:`check_tokenizers_compatible` / :func:`reconcile_vocab` for
draft/target pairs, and the loading exceptions.
``load_model`` takes an HF folder, a hub id, a ``.gguf`` file (converted once into a
cached HF folder by :func:`gguf_to_hf_folder`) or a name such as "smollm2"
(:func:`smollm2` gives that GGUF's path). See causal_lm.py for the KV slot layout
and vocabulary policy.
"""

from .catalog import smollm2, smollm2_draft, smollm2_pair
from .causal_lm import CausalLM
from .config import ARCHITECTURES, ModelConfig
from .errors import (ModelLoadError, ModelNotFoundError, TokenizerMismatchError,
                     UnsupportedArchitectureError, WeightsError)
from .gguf_checkpoint import gguf_to_hf_folder
from .loader import LoadedModel, load_model
from .tokenizer_check import check_tokenizers_compatible, reconcile_vocab, tokenizer_vocab_size

__all__ = [
    "ARCHITECTURES", "CausalLM", "LoadedModel", "ModelConfig", "ModelLoadError",
    "ModelNotFoundError", "TokenizerMismatchError", "UnsupportedArchitectureError",
    "WeightsError", "check_tokenizers_compatible", "gguf_to_hf_folder",
    "load_model", "reconcile_vocab", "smollm2", "smollm2_draft", "smollm2_pair",
    "tokenizer_vocab_size",
]
