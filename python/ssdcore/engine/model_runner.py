"""ModelRunner: the Python side of the engine's one ``ssdcore::ModelRunner`` interface
(cpp/include/ssdcore/model_runner.h; the binding's PyModelRunner calls it).

A :class:`ModelRunner` owns one :class:`~ssdcore.models.CausalLM` with its preallocated KV cache and
answers the runtime's ``forward`` calls: the arrays of one ``ForwardBatch`` as int32 numpy arrays (N
flattened rows: token, logical position, KV lane, slot, optional tree attention, out_index) in,
float32 logits ``[out_rows, V]`` out.

Which forward runs is chosen once, at construction, and logged; ``forward_kind`` and ``repr`` name it:
  "native"       CPU float32 or bfloat16 model: the C++ forward (models/cpu_model.py). The Python
                 Engine passes :meth:`native_runner` to the C++ engine, which calls it with no Python
                 at all, split over ``threads``.
                 A bfloat16 model runs as a float32 copy of its weights (exact; the packed matrices
                 stay bfloat16): float32 activations and KV cache, so its logits are those of that
                 copy, not of the bfloat16 torch path.
  "cuda-graphs"  CUDA model: decode, verification and tree steps on static shapes replayed as CUDA
                 graphs, one per row-count bucket (models/static_forward.py); prefills run eagerly.
  "cuda-static"  the same static shapes run eagerly (``cuda_graphs=False``): the same bits.
  "torch"        everything else (other CPU dtypes, sliding-window models on CUDA): eager PyTorch.

Logits protocol (what a binding reads from :meth:`forward`'s result):
  * a contiguous float32 torch tensor ``[out_rows, V]`` on ``runner.device`` (host memory on CPU);
    row ``out_index[r]`` holds row r's logits, rows no input row names are zero;
  * on CUDA the tensor carries the attribute ``cuda_stream`` (int, the ``cudaStream_t`` of the
    runner's own stream, ``runner.cuda_stream``; ``torch.cuda.Stream.cuda_stream``): the forward was
    enqueued there and is not synchronised. A consumer orders its reads after that stream (runs on
    it, or waits on an event recorded there) and keeps the tensor referenced until its reads are
    done: on release the memory returns to the caching allocator of that stream. The runner also
    makes that stream current on the worker thread (:meth:`on_worker_start`), so
    ``tensor.__dlpack__(stream=consumer_stream)`` orders the consumer stream after it too;
  * each call returns a fresh tensor: the next forward never overwrites logits still held, and the
    tensor is the runner's alone (never a view of a static graph output or of weights), because the
    engine may write -inf into its rows in place (structured output, token_masker.h);
  * ``device_logits=False`` (the default when ``_core.accepts_device_logits`` is False, i.e. a build
    without the CUDA kernels) copies CUDA logits to the host before returning, the host-only contract.

Threads: the C++ worker thread that owns the runner calls :meth:`on_worker_start` once (thread count,
core pinning, current CUDA stream) and then :meth:`forward`, with the GIL taken by the binding;
nothing else calls a runner while an engine uses it. Each runner (the target's, the draft's) has its
own CUDA stream, so a draft on the same GPU overlaps the target's work; ``draft_device`` may also name
another GPU.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Optional, Sequence

import numpy as np
import torch

from ..models import CausalLM, cpu_model, static_forward
from ..models.rows import parse_rows

log = logging.getLogger(__name__)


def choose_forward(model: CausalLM, cuda_graphs: bool = True) -> str:
    """The forward a runner of ``model`` uses (see module docstring): decided from the device, the
    dtype and the model, never from thread counts."""
    if model.device.type == "cpu" and (cpu_model.supports(model) or
                                       (model.dtype == torch.bfloat16 and cpu_model.available())):
        return "native"
    if model.device.type == "cuda" and static_forward.supported(model):
        return "cuda-graphs" if cuda_graphs else "cuda-static"
    return "torch"


def engine_takes_device_logits() -> bool:
    """Whether the engine's bindings accept logits on a CUDA device (``_core.accepts_device_logits``)."""
    try:
        from .. import _core
    except ImportError:
        return False
    return bool(getattr(_core, "accepts_device_logits", False))


class ModelRunner:
    """Runs one model for the engine; ``side`` ("target" / "draft") names it in errors and logs."""

    def __init__(self, model: CausalLM, *, side: str, num_lanes: int, context_slots: int,
                 scratch_slots: int = 0, threads: int = 1, cores: Optional[Sequence[int]] = None,
                 cuda_graphs: bool = True, device_logits: Optional[bool] = None):
        if threads < 1:
            raise ValueError(f"{side}_threads = {threads!r} is invalid: allowed an integer >= 1")
        self.forward_kind = choose_forward(model, cuda_graphs)
        self.dtype, self.device = model.dtype, model.device
        if self.forward_kind == "native":
            model = float32_twin(model)
        self.model, self.side, self.threads = model, side, threads
        self.cores = tuple(cores) if cores else None
        self.context_slots = context_slots
        static = self.forward_kind.startswith("cuda-")
        self._cache = _allocate(model, side, num_lanes, context_slots, scratch_slots, static)
        self._vocab = int(model.output_vocab_size)
        self.forward_calls = 0
        self._native, self._borrowed = None, ()  # the native runner and the tensors it points into
        if self.forward_kind == "native":
            self._native, self._borrowed = model.native().runner(model, self._cache, self.cores, threads)
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._static = None
        if static:
            graphs = self.forward_kind == "cuda-graphs"
            capture = static_forward.cuda_graph_capture(self.device) if graphs else None
            self._static = static_forward.StaticForward(model, self._cache, capture)
        self.device_logits = (self.device.type == "cuda" and
                              (engine_takes_device_logits() if device_logits is None else device_logits))
        log.info("%r", self)

    def __repr__(self) -> str:
        return (f"ModelRunner(side={self.side!r}, forward={self.forward_kind!r}, device={self.device}, "
                f"dtype={str(self.dtype).replace('torch.', '')}, threads={self.threads}, "
                f"device_logits={self.device_logits})")

    @property
    def cuda_stream(self) -> Optional[int]:
        """The ``cudaStream_t`` (as an int) this runner's forwards run on; None on CPU."""
        return None if self.stream is None else self.stream.cuda_stream

    def vocab_size(self) -> int:
        return self._vocab

    def native_runner(self):
        """The C++ runner (``_core.CpuModelRunner``) built at construction when ``forward_kind`` is
        "native", else None. The Python Engine passes it to the C++ engine, which then calls it instead
        of :meth:`forward`: its forwards never enter Python, and with ``threads`` > 1 each is split over
        that many threads (the bits of one)."""
        return self._native

    def on_worker_start(self) -> None:
        """Runs on the runtime's worker thread: torch thread count, CPU pinning, current CUDA stream."""
        torch.set_num_threads(self.threads)
        if self.cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(self.cores))  # 0 = the calling thread on Linux
        if self.stream is not None:
            torch.cuda.set_device(self.device)
            torch.cuda.set_stream(self.stream)
        log.debug("%s runner: %d threads, cores %s", self.side, self.threads, self.cores)

    def forward(self, tokens: np.ndarray, positions: np.ndarray, lanes: np.ndarray,
                slots: np.ndarray, attend_len: Optional[np.ndarray],
                extra_slots: Optional[np.ndarray], out_index: np.ndarray,
                out_rows: int) -> torch.Tensor:
        """Logits ``[out_rows, V]`` (float32, contiguous, on ``device``; see the module docstring);
        row ``out_index[r]`` is row r's."""
        self.forward_calls += 1
        t = torch.from_numpy
        wanted = np.nonzero(out_index >= 0)[0]
        order = wanted[np.argsort(out_index[wanted], kind="stable")]
        with self._on_stream(), torch.inference_mode():
            rows = parse_rows(t(tokens), t(positions), t(lanes), t(slots),
                              None if attend_len is None else t(attend_len),
                              None if extra_slots is None else t(extra_slots),
                              t(order.astype(np.int64)), self.model.config.vocab_size, self._cache)
            logits = None if self._static is None else self._static.run(rows)
            if logits is None:
                logits = self.model.run_rows(rows, self._cache, native=self.forward_kind == "native")
            return self._deliver(logits, out_index[order], out_rows)

    def _deliver(self, logits: torch.Tensor, dest: np.ndarray, out_rows: int) -> torch.Tensor:
        """``logits`` (rows in ``dest`` order) placed at rows ``dest`` of ``[out_rows, V]``, on the
        device the protocol says (module docstring)."""
        if not (len(dest) == out_rows and np.array_equal(dest, np.arange(out_rows))):
            out = torch.zeros((out_rows, logits.shape[1]), dtype=torch.float32, device=logits.device)
            out[torch.from_numpy(dest.astype(np.int64)).to(logits.device)] = logits
            logits = out
        if self.stream is None or not self.device_logits:
            return logits.to("cpu").contiguous()
        logits = logits.contiguous()
        logits.cuda_stream = self.stream.cuda_stream
        return logits

    def _on_stream(self):
        if self.stream is None:
            return contextlib.nullcontext()
        return torch.cuda.stream(self.stream)


def float32_twin(model: CausalLM) -> CausalLM:
    """``model`` itself when float32, else a float32 CausalLM with its weights widened (exact for
    bfloat16) and its vocabulary policy: what the native forward reads."""
    if model.dtype == torch.float32:
        return model
    twin = CausalLM(model.config, torch.float32, model.device)
    with torch.no_grad():
        for mine, theirs in zip(twin.parameters(), model.parameters()):
            mine.copy_(theirs)
    twin.set_vocab_policy(model.output_vocab_size, model.valid_vocab_size)
    return twin.eval()


def _allocate(model: CausalLM, side: str, num_lanes: int, context_slots: int, scratch_slots: int,
              spare_slot: bool):
    """The runner's KV cache (kept: another runner of the same model may reallocate the model's)."""
    try:
        model.allocate_kv(num_lanes, context_slots + scratch_slots, scratch_slots, spare_slot=spare_slot)
    except (RuntimeError, MemoryError) as e:  # allocator failures: name the settings that size it
        raise MemoryError(f"the {side} KV cache for max_batch = {num_lanes} lanes x "
                          f"{context_slots + scratch_slots} slots (max_context = {context_slots}"
                          f"{' + tree scratch' if scratch_slots else ''}) could not be allocated: "
                          f"{e}; allowed: a smaller max_batch or max_context") from None
    return model.kv_cache
