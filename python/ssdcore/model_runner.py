"""ModelRunner: the Python side of the runtime's ``ModelRunner`` interface (cpp/model_runner.h).

A :class:`ModelRunner` owns one :class:`~ssdcore.models.CausalLM` with its preallocated KV cache and
answers the runtime's ``forward`` calls: N flattened rows (token, logical position, KV lane, slot,
optional tree attention) in, float32 logits ``[out_rows, V]`` out, returned to C++ as a DLPack
tensor (no copy). The C++ worker thread that owns the runner calls :meth:`on_worker_start` once
(thread count, core pinning) and then :meth:`forward`, with the GIL taken by the binding; nothing
else calls a runner while an engine uses it.
"""
from __future__ import annotations

import logging
import os
from typing import Optional, Sequence

import numpy as np
import torch

from .models import CausalLM, cpu_model

log = logging.getLogger(__name__)


class ModelRunner:
    """Runs one model for the engine; ``side`` ("target" / "draft") names it in errors and logs."""

    def __init__(self, model: CausalLM, *, side: str, num_lanes: int, context_slots: int,
                 scratch_slots: int = 0, threads: int = 1, cores: Optional[Sequence[int]] = None):
        if threads < 1:
            raise ValueError(f"{side}_threads = {threads!r} is invalid: allowed an integer >= 1")
        self.model = model
        self.side = side
        self.threads = threads
        self.cores = tuple(cores) if cores else None
        self.context_slots = context_slots
        try:
            model.allocate_kv(num_lanes, context_slots + scratch_slots, scratch_slots)
        except (RuntimeError, MemoryError) as e:  # allocator failures: name the settings that size it
            raise MemoryError(f"the {side} KV cache for max_batch = {num_lanes} lanes x "
                              f"{context_slots + scratch_slots} slots (max_context = {context_slots}"
                              f"{' + tree scratch' if scratch_slots else ''}) could not be allocated: "
                              f"{e}; allowed: a smaller max_batch or max_context") from None
        self._cache = model.kv_cache  # ours, even if another runner of the same model reallocates
        self._vocab = int(model.output_vocab_size)
        self.forward_calls = 0
        self._native = None
        self._borrowed = ()  # tensors the native runner points into

    def vocab_size(self) -> int:
        return self._vocab

    def native_runner(self):
        """The C++ runner the engine uses instead of :meth:`forward` when this model qualifies for the
        native CPU forward (CPU, float32; see models/cpu_model.py), else None. Its forwards never enter
        Python, so draft and target workers do not contend for the GIL; with ``threads`` > 1 each
        forward is split over that many threads (cpp/thread_team.h), bitwise the logits of one."""
        if self._native is None and cpu_model.supports(self.model):
            self._native, self._borrowed = self.model.native().runner(self.model, self._cache, self.cores,
                                                                      self.threads)
        return self._native

    def on_worker_start(self) -> None:
        """Runs on the runtime's worker thread: per-thread torch thread count and CPU pinning."""
        torch.set_num_threads(self.threads)
        if self.cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(self.cores))  # 0 = the calling thread on Linux
        log.debug("%s runner: %d threads, cores %s", self.side, self.threads, self.cores)

    def forward(self, tokens: np.ndarray, positions: np.ndarray, lanes: np.ndarray,
                slots: np.ndarray, attend_len: Optional[np.ndarray],
                extra_slots: Optional[np.ndarray], out_index: np.ndarray,
                out_rows: int) -> torch.Tensor:
        """Logits ``[out_rows, V]`` (float32, contiguous, CPU); row ``out_index[r]`` is row r's."""
        self.forward_calls += 1
        t = torch.from_numpy
        wanted = np.nonzero(out_index >= 0)[0]
        order = wanted[np.argsort(out_index[wanted], kind="stable")]
        logits = self.model.forward_rows(
            t(tokens), t(positions), t(lanes), t(slots),
            None if attend_len is None else t(attend_len),
            None if extra_slots is None else t(extra_slots),
            t(order.astype(np.int64)))
        logits = logits.to("cpu", non_blocking=False)
        dest = out_index[order]
        if len(dest) == out_rows and np.array_equal(dest, np.arange(out_rows)):
            return logits.contiguous()
        out = torch.zeros((out_rows, logits.shape[1]), dtype=torch.float32)
        out[torch.from_numpy(dest.astype(np.int64))] = logits
        return out
