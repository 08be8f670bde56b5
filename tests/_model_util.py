"""Model test helpers: tiny random HF checkpoints, greedy reference decoding, SSD tree steps.

``save_random_checkpoint(dir, family, ...)`` builds a ``transformers`` config of the family
(LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config), initialises a model with a fixed seed, perturbs
every 1-D parameter (norm weights, biases) so that swapped or mis-mapped tensors cannot go unnoticed,
saves it with ``save_pretrained`` (safetensors) and optionally a word-level tokenizer whose vocabulary
has exactly ``tokenizer_vocab`` entries (default: the model's), with a chat template.

``runner_script`` feeds a ModelRunner engine-shaped calls.
``greedy_generate`` is the target-only greedy reference (prefill, then one token per decode).
``tree_forward`` drives one SSD tree step through ``CausalLM.forward_rows`` with the scratch layout
branch i of a lane at ``context_slots + i * branch_len`` (``branch_scratch_start``); the engine's own
layout lives in the C++ draft worker, this one only feeds the model tests.

Test-only: imported by tests/ and benchmarks/ (which put tests/ on sys.path), never by the package.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ssdcore.models.rows import check_range

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


def greedy_generate(model, prompt_ids, n: int, lane: int = 0, eos_token_ids=()) -> list:
    """Up to ``n`` greedy token ids continuing ``prompt_ids`` in ``lane`` (slot == position); stops
    right after an id of ``eos_token_ids`` (included, as transformers' ``generate`` does). Allocates a
    one-lane KV cache when the model has none."""
    prompt = [int(t) for t in prompt_ids]
    needed = len(prompt) + n
    if model.kv_cache is None:
        model.allocate_kv(lane + 1, needed)
    stop = {int(e) for e in eos_token_ids}
    out = []
    logits = model.prefill(lane, prompt)
    while n:
        token = int(torch.argmax(logits))
        out.append(token)
        if len(out) == n or token in stop:
            break
        logits = model.decode([lane], [[token]], [len(prompt) + len(out) - 1])[0, 0]
    return out


def branch_scratch_start(model, branch_index: int, branch_len: int) -> int:
    """Scratch layout of these tests: branch i of a lane at ``context_slots + i * branch_len``."""
    return model.kv_cache.context_slots + branch_index * branch_len


def tree_forward(model, lanes, fork_lens, tokens, scratch_starts, depth=0) -> torch.Tensor:
    """One batched step (or T steps) of SSD tree decoding; logits ``[Nb, T, V]``.

    Branch b lives in lane ``lanes[b]``, sees context slots ``[0, fork_lens[b])`` and owns scratch
    slots from ``scratch_starts[b]`` on; ``depth[b]`` of its tokens are already cached there.
    ``tokens[b, t]`` gets logical position ``fork_lens[b] + depth[b] + t`` and slot
    ``scratch_starts[b] + depth[b] + t``; it attends to its context, its own earlier scratch slots
    and itself. ValueError when a branch leaves the scratch region.
    """
    cache = model.kv_cache
    tok = torch.as_tensor(tokens, dtype=torch.int64)
    tok = tok if tok.dim() == 2 else tok[:, None]
    nb, width = tok.shape
    ln, fork, start = (torch.as_tensor(v, dtype=torch.int64) for v in (lanes, fork_lens, scratch_starts))
    dep = torch.full((nb,), depth, dtype=torch.int64) if isinstance(depth, int) else \
        torch.as_tensor(depth, dtype=torch.int64)
    check_range(fork, "fork_lens", 0, cache.context_slots + 1)
    check_range(start, "scratch_starts", cache.context_slots, cache.max_slots)
    check_range(start + dep + width, "scratch_starts + depth + T", 0, cache.max_slots + 1)
    step = dep[:, None] + torch.arange(width)[None, :]                     # [Nb, T]
    n_extra = int(dep.max()) + width - 1
    extra = None
    if n_extra > 0:
        j = torch.arange(n_extra)[None, None, :]
        extra = torch.where(j < step[..., None], start[:, None, None] + j, -1).reshape(-1, n_extra)
    logits = model.forward_rows(tok.reshape(-1), (fork[:, None] + step).reshape(-1),
                                ln.repeat_interleave(width), (start[:, None] + step).reshape(-1),
                                fork.repeat_interleave(width), extra)
    return logits.view(nb, width, -1)


def runner_script(runner) -> list:
    """A ModelRunner's logits for a script of engine-shaped calls (numpy int32 rows, as the binding
    sends them): two prefills, a two-lane verification, three tree steps of four branches with extra
    slots (scratch from slot 48: context_slots=48, scratch_slots=16, two lanes), four decodes."""
    a = lambda *v: np.asarray(v, dtype=np.int32)  # noqa: E731
    out = [runner.forward(a(*range(3, 12)), a(*range(9)), a(*[0] * 9), a(*range(9)), None, None,
                          a(*[-1] * 8, 0), 1),
           runner.forward(a(*range(20, 34)), a(*range(14)), a(*[1] * 14), a(*range(14)), None, None,
                          a(*[-1] * 13, 0), 1)]
    pos = a(9, 10, 11, 14, 15, 16, 17)
    out.append(runner.forward(a(5, 6, 7, 8, 9, 10, 11), pos, a(0, 0, 0, 1, 1, 1, 1), pos, None, None,
                              a(0, 1, 2, 3, 4, 5, 6), 7))
    for depth in range(3):  # four tree branches over two lanes, in scratch slots from 48 on
        starts, fork = a(48, 52, 48, 52), a(10, 12, 15, 18)
        extra = np.asarray([[s + j if j < depth else -1 for j in range(max(depth, 1))] for s in starts],
                           dtype=np.int32)
        out.append(runner.forward(a(40, 41, 42, 43), fork + depth, a(0, 0, 1, 1), starts + depth, fork, extra,
                                  a(3, 2, 1, 0), 4))
    for step in range(4):
        p = a(12 + step, 18 + step)
        out.append(runner.forward(a(50 + step, 60 + step), p, a(0, 1), p, None, None, a(0, 1), 2))
    return out
