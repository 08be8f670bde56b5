"""Memory budget: the KV caches an engine would allocate, checked against what the device has free.

``Engine(max_batch=..., max_context=...)`` preallocates K/V for ``max_batch`` lanes of ``max_context``
slots on the target and (plus tree scratch) on the draft. Too large a product used to be found by the
kernel's OOM killer; :func:`check_kv_budget` refuses it before anything is allocated, with the bytes
needed per model and the budget. The budget is a fraction of the memory available now (Linux
``MemAvailable`` for the CPU, ``torch.cuda.mem_get_info`` for a GPU), leaving room for weights already
loaded, activations and the rest of the process. Pure functions; any thread.
"""
from __future__ import annotations

import os
from typing import Dict, Optional

import torch

from .model_runner import choose_forward

BUDGET_FRACTION = 0.9  # of the memory available when the engine is built


def kv_cache_bytes(model, lanes: int, slots: int) -> int:
    """Bytes of the KV cache (models/kv_cache.py) for ``lanes`` x ``slots`` on ``model``."""
    cfg = model.config
    # the runner's own choice: the native CPU forward keeps a float32 KV cache whatever the model's dtype
    dtype = torch.float32 if choose_forward(model) == "native" else model.dtype
    elem = torch.empty((), dtype=dtype).element_size()
    total = cfg.num_layers * 2 * lanes * cfg.num_kv_heads * slots * cfg.head_dim * elem
    if getattr(model, "windows", None):
        total += lanes * slots * 8  # slot_pos, int64
    return int(total)


def available_bytes(device: torch.device) -> Optional[int]:
    """Memory free for new allocations on ``device`` now, or None when it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_kv_budget(config, target, draft=None) -> None:
    """ValueError when the KV caches of ``config`` do not fit the memory of the models' devices."""
    needs: Dict[str, list] = {}
    parts = [("target", target, config.max_context)]
    if draft is not None:
        parts.append(("draft", draft, config.max_context + config.scratch_slots()))
    for side, model, slots in parts:
        needs.setdefault(str(model.device), []).append((side, kv_cache_bytes(model, config.max_batch, slots)))
    for device, items in needs.items():
        free = available_bytes(torch.device(device))
        if free is None:
            continue
        need = sum(b for _, b in items)
        budget = int(free * BUDGET_FRACTION)
        if need > budget:
            detail = " + ".join(f"{side} {_gib(b)}" for side, b in items)
            raise ValueError(
                f"max_batch = {config.max_batch} x max_context = {config.max_context} needs {need} bytes "
                f"({_gib(need)}: {detail}) of KV cache on {device}, over the budget of {budget} bytes "
                f"({_gib(budget)} = {BUDGET_FRACTION:.0%} of the {_gib(free)} available): allowed a "
                "smaller max_batch or max_context")


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"
