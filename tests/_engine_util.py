"""Test helpers for the engine's robustness and lifecycle tests: a tiny random target/draft pair (its
sizes, prompts and settings), the OS thread count, and waits bounded only against hangs.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from _wait import wait_until as _wait_until

from ssdcore import SamplingParams
from _model_util import save_random_checkpoint

V = 32
MODEL_KW = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
ENGINE_KW = dict(K=3, max_batch=4, max_context=64, backup="jit")
PROMPTS = [[3, 4, 5], [7, 8, 9, 10, 11], [12]]
GREEDY = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)
SAFETY_S = 120.0  # a bound for waits that must end; only reached when something hangs

wait_until = functools.partial(_wait_until, limit=SAFETY_S, poll=0.005)


def save_tiny_pair(root: Path) -> tuple:
    """(target, draft) checkpoint paths of a tiny random Llama pair saved under ``root``."""
    save_random_checkpoint(root / "target", "llama", seed=0, **MODEL_KW)
    save_random_checkpoint(root / "draft", "llama", seed=1, **MODEL_KW)
    return str(root / "target"), str(root / "draft")


def os_threads() -> int:
    """This process's OS threads (0 where /proc is missing)."""
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 0
