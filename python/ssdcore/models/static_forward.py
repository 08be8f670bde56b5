"""StaticForward: CausalLM's forward over a fixed grid of rows, so that a CUDA graph can replay it.

A CUDA graph replays fixed kernels on fixed addresses: every input of a captured forward lives in a
static buffer and every shape is fixed. Rows are laid out on a grid of ``lanes x rows`` cells (the
attention layout of attention.py, over every key slot of a lane: ``[0, max_slots)``), the grid rounded
up to a :class:`Bucket` (powers of two; ``extra``, the width of the rows' extra slots, likewise). One
graph per bucket is captured the first time a call needs it, then replayed (as gpt-fast and nano-vllm
do for decoding). Decode (B lanes x 1 row), verification and the draft's glue (B x (K+1)) and tree steps
(a lane's branches x 1 row, with extra slots) fit; a call that does not (more than MAX_ROWS_PER_LANE
rows in a lane, as a long prefill has, or more than MAX_GRID_ROWS cells) gets None from :meth:`run`,
and the caller runs the model's eager forward.

Padding: a grid cell without a row is a padding row: token 0 at position 0 that attends only to key
slot 0 of its grid lane and writes its K/V to the cache's spare slot (``KVCache(spare_slot=True)``,
never read); a grid lane without rows reads lane 0. Padding rows give no logits to the caller.

Bits: a replay runs the kernels the capture recorded from the same function, so ``capture=None`` (run
the step eagerly every call, what ``cuda_graphs=False`` selects) gives the graphs' logits bit for bit.
Against the model's eager dynamic-shape forward they agree to float rounding (other key ranges).

Memory: each captured bucket keeps its ``[cells, V]`` float32 logits (the graph's output).

Limits (:func:`supported`): no sliding-window layers (their masks need per-slot positions on the
device); positions below the RoPE table captured at construction (``max_slots`` rows).

Threads: one thread at a time per StaticForward (the engine worker that owns the runner). Work runs
on the caller's current CUDA stream; captures, process-wide one at a time, on this object's own
capture stream with ``capture_error_mode="thread_local"``, so another worker may keep running.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch

from .attention import AttentionPlan, fold_mask
from .causal_lm import StepContext
from .rows import Rows

MAX_ROWS_PER_LANE = 64
MAX_GRID_ROWS = 512
_FIELDS = ("tokens", "positions", "write_lanes", "slots", "attend_len", "cells")  # one per grid cell
_CAPTURE_LOCK = threading.Lock()


def supported(model) -> bool:
    """Whether ``model`` (a CausalLM) can run static shapes: no sliding-window layers."""
    return not model.windows


def _pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


@dataclass(frozen=True)
class Bucket:
    """Grid shape of one captured graph: ``lanes`` x ``rows`` cells, ``extra`` extra slots per row."""
    lanes: int
    rows: int
    extra: int

    @property
    def cells(self) -> int:
        return self.lanes * self.rows

    @property
    def numel(self) -> int:
        """int64 entries of the packed inputs (see :class:`Grid`)."""
        return self.cells * (len(_FIELDS) + self.extra) + self.lanes


def choose_bucket(n_lanes: int, rows_per_lane: int, extra_width: int) -> Optional[Bucket]:
    """The smallest bucket holding the grid, or None when it exceeds the static limits."""
    bucket = Bucket(_pow2(n_lanes), _pow2(rows_per_lane), 0 if extra_width == 0 else _pow2(extra_width))
    if bucket.rows > MAX_ROWS_PER_LANE or bucket.cells > MAX_GRID_ROWS:
        return None
    return bucket


class Grid:
    """Named views of one packed int64 tensor: per cell ``tokens``, ``positions``, ``write_lanes``,
    ``slots``, ``attend_len``, ``cells`` (the first ``n_out`` entries: the cell of each wanted row),
    ``extra`` ``[cells, bucket.extra]``, and ``grid_lanes`` ``[bucket.lanes]``. The same layout on the
    host (built per call) and on the device (the static inputs), so one copy moves all of it."""

    def __init__(self, bucket: Bucket, packed: torch.Tensor):
        self.bucket, self.packed = bucket, packed
        n, at = bucket.cells, 0
        for name in _FIELDS:
            setattr(self, name, packed[at:at + n])
            at += n
        self.extra = packed[at:at + n * bucket.extra].view(n, bucket.extra)
        self.grid_lanes = packed[at + n * bucket.extra:]


def layout(rows: Rows, spare_slot: int) -> Optional[Grid]:
    """The host grid of validated ``rows`` (None when no bucket holds them); see module docstring."""
    uniq, lane_rank, counts = torch.unique(rows.lanes, return_inverse=True, return_counts=True)
    extra_width = 0 if rows.extra is None else rows.extra.shape[1]
    bucket = choose_bucket(uniq.numel(), int(counts.max()), extra_width)
    if bucket is None:
        return None
    grid = Grid(bucket, torch.zeros(bucket.numel, dtype=torch.int64))
    order = torch.argsort(rows.lanes, stable=True)
    first = torch.cumsum(counts, 0) - counts
    within = torch.empty_like(rows.lanes)
    within[order] = torch.arange(order.numel()) - first[lane_rank[order]]
    cell = lane_rank * bucket.rows + within
    grid.tokens[cell] = rows.tokens
    grid.positions[cell] = rows.positions
    grid.write_lanes[cell] = rows.lanes
    grid.slots.fill_(spare_slot)
    grid.slots[cell] = rows.slots
    grid.attend_len.fill_(1)
    grid.attend_len[cell] = rows.slots if rows.attend_len is None else rows.attend_len
    grid.extra.fill_(-1)
    if extra_width:
        grid.extra[cell, :extra_width] = rows.extra
    wanted = cell if rows.logits_rows is None else cell[rows.logits_rows]
    grid.cells[:wanted.numel()] = wanted
    grid.grid_lanes[:uniq.numel()] = uniq
    return grid


class _Entry:
    __slots__ = ("inputs", "replay")

    def __init__(self, inputs: Grid):
        self.inputs, self.replay = inputs, None


class StaticForward:
    """Runs a CausalLM's row forwards through per-bucket static buffers (see module docstring).

    ``capture(fn) -> replay`` turns the step into something replayable: :func:`cuda_graph_capture`
    on CUDA, None to run the step eagerly each call; tests pass fakes. ``captures`` counts captures.
    """

    def __init__(self, model, cache, capture: Optional[Callable] = None):
        if not supported(model):
            raise ValueError("static shapes need a model without sliding-window layers")
        if cache.spare_slot is None:
            raise ValueError("static shapes need a KV cache with a spare slot (allocate_kv(spare_slot=True))")
        self.model, self.cache, self.capture = model, cache, capture
        model.rope.ensure(cache.max_slots)
        self._cos, self._sin = model.rope.cos, model.rope.sin_signed  # the tables graphs read
        self._keys = torch.arange(cache.max_slots, device=model.device)
        self._entries: Dict[Bucket, _Entry] = {}
        self.captures = 0

    @torch.inference_mode()
    def run(self, rows: Rows) -> Optional[torch.Tensor]:
        """Logits ``[len(rows.logits_rows) or N, V]`` on the model's device for rows validated
        against this cache, or None when they fit no bucket (the caller then runs them eagerly)."""
        if int(rows.positions.max()) >= self._cos.shape[0]:
            return None
        grid = layout(rows, self.cache.spare_slot)
        if grid is None:
            return None
        entry = self._entries.get(grid.bucket)
        if entry is None:
            packed = torch.zeros(grid.bucket.numel, dtype=torch.int64, device=self.model.device)
            entry = self._entries[grid.bucket] = _Entry(Grid(grid.bucket, packed))
        entry.inputs.packed.copy_(grid.packed, non_blocking=True)
        if entry.replay is None:
            step = lambda: self._step(entry.inputs)  # noqa: E731
            entry.replay = step if self.capture is None else self.capture(step)
            self.captures += self.capture is not None
        logits = entry.replay()
        n_out = rows.tokens.numel() if rows.logits_rows is None else rows.logits_rows.numel()
        return logits.index_select(0, entry.inputs.cells[:n_out])

    def _step(self, g: Grid) -> torch.Tensor:
        """The forward over one bucket's static inputs: fixed shapes, no host synchronisation."""
        b = g.bucket
        visible = (self._keys[None, :] < g.attend_len[:, None]) | (self._keys[None, :] == g.slots[:, None])
        if b.extra:
            visible |= (g.extra[:, :, None] == self._keys[None, None, :]).any(dim=1)
        mask = fold_mask(visible.view(b.lanes, b.rows, -1), self.model.config.kv_groups, self.model.device)
        plan = AttentionPlan(b.lanes, b.rows, g.grid_lanes, [(0, self.cache.max_slots)], None, None,
                             mask, False)
        cos = self._cos.index_select(0, g.positions).unsqueeze(1)
        sin = self._sin.index_select(0, g.positions).unsqueeze(1)
        ctx = StepContext(self.cache, plan, cos, sin, self.cache.write_index(g.write_lanes, g.slots))
        return self.model.run_planned(g.tokens, ctx)


def cuda_graph_capture(device: torch.device) -> Callable:
    """A ``capture`` for :class:`StaticForward` on ``device``: warm the step up once on the capture
    stream, record it into a CUDA graph (one memory pool per returned function, shared by its
    graphs, which never run concurrently) and return a replay that yields the graph's output."""
    pool = torch.cuda.graph_pool_handle()
    capture_stream = torch.cuda.Stream(device)

    def capture(step: Callable) -> Callable:
        graph, current = torch.cuda.CUDAGraph(), torch.cuda.current_stream(device)
        with _CAPTURE_LOCK:
            capture_stream.wait_stream(current)
            with torch.cuda.stream(capture_stream):
                step()  # lazy initialisation (kernels, this stream's cuBLAS workspace) outside the capture
            with torch.cuda.graph(graph, pool=pool, stream=capture_stream, capture_error_mode="thread_local"):
                out = step()
            current.wait_stream(capture_stream)

        def replay() -> torch.Tensor:
            graph.replay()
            return out
        return replay
    return capture
