"""Tiny random-initialised HF checkpoints for tests and benchmarks (offline, no hub).

``save_random_checkpoint(dir, family, ...)`` builds a ``transformers`` config of
the family (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config), initialises
a model with a fixed seed, perturbs every 1-D parameter (norm weights, biases)
so that swapped or mis-mapped tensors cannot go unnoticed, saves it with
``save_pretrained`` (safetensors) and optionally a word-level tokenizer whose
vocabulary has exactly ``tokenizer_vocab`` entries (default: the model's),
with a chat template. Requires ``transformers`` and ``tokenizers``; this module
is imported only by tests and benchmarks, never by the runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

FAMILIES = ("llama", "mistral", "qwen2", "qwen3")
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> "
                 "{% endfor %}{% if add_generation_prompt %}<|assistant|> {% endif %}")


def tiny_hf_config(family: str, **overrides):
    """A small transformers config of ``family`` (GQA 4:2, 2 layers, vocab 128)."""
    import transformers
    classes = {"llama": "LlamaConfig", "mistral": "MistralConfig",
               "qwen2": "Qwen2Config", "qwen3": "Qwen3Config"}
    if family not in classes:
        raise ValueError(f"family={family!r}: expected one of {', '.join(FAMILIES)}")
    base = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                initializer_range=0.2, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                tie_word_embeddings=False)
    if family == "qwen3":
        base["head_dim"] = 24  # deliberately != hidden_size / heads
    if family == "mistral":
        base["sliding_window"] = None
    base.update(overrides)
    return getattr(transformers, classes[family])(**base)


def random_hf_model(config, seed: int = 0):
    """transformers CausalLM with seeded random weights and perturbed 1-D parameters."""
    from transformers import AutoModelForCausalLM
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager",
                                             dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                noise = torch.randn(p.shape, generator=gen) * 0.1
                p.copy_((1.0 + noise) if "norm" in name else noise)
    return model.eval()


def make_tokenizer(vocab_size: int, eos: str = "</s>"):
    """Word-level PreTrainedTokenizerFast with pieces <unk>, <s>, </s>, w3, w4, ..."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"w{i}": i for i in range(3, vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token=eos)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_random_checkpoint(path, family: str = "llama", seed: int = 0,
                           tokenizer: bool = True, tokenizer_vocab: Optional[int] = None,
                           generation_eos=None, **overrides):
    """Save a random tiny checkpoint in ``path``; return the transformers model."""
    path = Path(path)
    config = tiny_hf_config(family, **overrides)
    model = random_hf_model(config, seed)
    model.save_pretrained(str(path))
    if generation_eos is not None:
        import json
        (path / "generation_config.json").write_text(json.dumps({"eos_token_id": generation_eos}))
    if tokenizer:
        make_tokenizer(tokenizer_vocab or config.vocab_size).save_pretrained(str(path))
    return model
