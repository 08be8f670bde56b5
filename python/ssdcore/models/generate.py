"""Greedy autoregressive generation on a CausalLM (reference path for tests and the engine).

Prefill the prompt into one lane, then decode one token per forward with
slot == position. Stops after ``n`` new tokens or right after an EOS id from
``eos_token_ids`` (the EOS token is included in the result, as transformers'
``generate`` does). Allocates a one-lane KV cache when the model has none.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

from .causal_lm import CausalLM


def greedy_generate(model: CausalLM, prompt_ids: Sequence[int], n: int, lane: int = 0,
                    eos_token_ids: Iterable[int] = ()) -> list:
    """Return up to ``n`` greedily generated token ids continuing ``prompt_ids``."""
    prompt = [int(t) for t in prompt_ids]
    if not prompt:
        raise ValueError("prompt_ids is empty: greedy_generate needs at least one token")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n={n!r}: expected an int >= 0")
    needed = len(prompt) + n
    cache = model.kv_cache
    if cache is None:
        model.allocate_kv(lane + 1, needed)
    elif lane >= cache.num_lanes or needed > cache.context_slots:
        raise ValueError(f"lane={lane} / length {needed} do not fit the allocated KV cache "
                         f"({cache.num_lanes} lanes x {cache.context_slots} context slots)")
    stop = set(int(e) for e in eos_token_ids)
    out = []
    if n == 0:
        return out
    logits = model.prefill(lane, prompt)
    position = len(prompt)
    while True:
        token = int(torch.argmax(logits))
        out.append(token)
        if len(out) == n or token in stop:
            return out
        logits = model.decode([lane], [[token]], [position])[0, 0]
        position += 1
