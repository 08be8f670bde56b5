"""TokenMasker: the per-request token masks of structured output (the Python side of the C++
interface ``ssdcore::TokenMasker``). One per Engine, built from the target's Hugging Face tokenizer and
the logits width; llguidance (response_format.py says why) does the matching.

Contract with the runtime (``_core.Engine(..., token_masker=masker)``):
  ``register(response_format) -> key``  compiles a constraint (ValueError when it does not compile);
      the key (>= 1) goes into the request's C++ ``SamplingParams.constraint`` (0 = none).
  ``release(key)``  forgets it once the request ended (finished, failed, cancelled or discarded).
  ``fill_masks(side, rows, masks_ptr, words)``  called by the workers, with the GIL: side 0 = target
      worker, 1 = draft worker; rows[i] = (key, generated, path): ``generated`` = the tokens decided after
      the prompt as that side knows them, ``path`` = speculative tokens after them. Writes the bitmask of
      the tokens allowed after generated + path into the uint32 words masks_ptr + 4 * i * words ...
      (bit t % 32 of word t / 32; words = ceil(logits width / 32)) of a zero-filled buffer. A row whose
      tokens leave the grammar (a rejected draft token, anything after an end of sequence) or whose key
      is unknown (a request that already ended) gets every bit set: the runtime never uses such a row.

Invariants: bits of ids past the tokenizer's vocabulary (padding of the logits) are never set in a
constrained row; the end-of-sequence ids allowed where the grammar may stop are the engine's EOS ids.
Each (key, side) has one llguidance matcher plus the tokens it has consumed; a row rolls it back to the
common prefix with the row's tokens and consumes the rest, so rows that extend each other (a
verification: path = d1..di for i = 0..K) cost one token each. The two sides never share a matcher.

Threads: ``register`` / ``release`` from any thread (caller threads); ``fill_masks`` from the two
workers. A lock per side serialises fill_masks of that side; a short lock guards the table of keys.
llguidance releases the GIL while it compiles and computes masks. The llguidance tokenizer is built
on the first register (about 1 s for a 50k vocabulary), so an engine without constrained requests
never imports llguidance.
"""
from __future__ import annotations

import ctypes
import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from .response_format import ResponseFormatLike, as_response_format, llguidance_module, one_line

_TEMPLATES = 64  # compiled grammars kept for reuse (the same schema in many requests)


@dataclass
class _SideState:
    matcher: object                   # llguidance.LLMatcher
    consumed: List[int] = field(default_factory=list)


class TokenMasker:
    def __init__(self, tokenizer, logits_width: int, eos_token_ids: Sequence[int] = ()):
        if tokenizer is None:
            raise ValueError("structured output needs the target's tokenizer; this target has none")
        if isinstance(logits_width, bool) or not isinstance(logits_width, int) or logits_width < 1:
            raise ValueError(f"logits_width = {logits_width!r} is invalid: allowed an integer >= 1")
        self._hf_tokenizer = tokenizer
        self.logits_width = logits_width
        self.words = (logits_width + 31) // 32
        self._eos = [int(t) for t in eos_token_ids]
        self._tokenizer = None           # llguidance.LLTokenizer, built on the first register
        self._llg_vocab = 0
        self._lock = threading.Lock()    # guards _states and _templates
        self._build_lock = threading.Lock()  # guards the lazy tokenizer
        self._side_locks = (threading.Lock(), threading.Lock())
        self._states = {}                # key -> [_SideState target, _SideState draft]
        self._templates: OrderedDict = OrderedDict()  # grammar -> unused LLMatcher
        self._keys = itertools.count(1)

    # ------------------------------------------------------------------ caller threads
    def register(self, response_format: ResponseFormatLike) -> int:
        """Compiles the constraint for this engine's tokenizer; returns its key (>= 1).

        ValueError when ``response_format`` is invalid or describes no constraint ({"type": "text"})."""
        rf = as_response_format(response_format)
        if rf is None:
            raise ValueError(f"response_format = {response_format!r} constrains nothing: allowed a "
                             "json_object, json_schema, regex or grammar format")
        matcher = self._new_matcher(rf.grammar, rf.type)
        states = [_SideState(matcher), _SideState(matcher.deep_copy())]
        with self._lock:
            key = next(self._keys)
            self._states[key] = states
        return key

    def release(self, key: int) -> None:
        """Forgets the key (unknown keys are ignored: releasing twice is harmless)."""
        with self._lock:
            self._states.pop(key, None)

    def active(self) -> int:
        """Keys registered and not yet released."""
        with self._lock:
            return len(self._states)

    # ------------------------------------------------------------------ worker threads
    def fill_masks(self, side: int, rows: Sequence[Tuple[int, Sequence[int], Sequence[int]]],
                   masks_ptr: int, words: int) -> None:
        """Writes one mask per row at masks_ptr + 4 * i * words (see the module docstring)."""
        if side not in (0, 1):
            raise ValueError(f"side = {side!r} is invalid: allowed 0 (target) or 1 (draft)")
        if words != self.words:
            raise ValueError(f"words = {words} is invalid: allowed {self.words} (ceil({self.logits_width}"
                             " / 32), the logits width this TokenMasker was built for)")
        stride = 4 * words
        with self._side_locks[side]:
            for i, (key, generated, path) in enumerate(rows):
                row_ptr = masks_ptr + i * stride
                with self._lock:
                    sides = self._states.get(key)
                state = None if sides is None else sides[side]
                if state is None or not self._advance(state, generated, path):
                    ctypes.memset(row_ptr, 0xFF, stride)
                else:
                    self._write_mask(state.matcher, row_ptr, stride)

    # ------------------------------------------------------------------ internals
    def _ensure_tokenizer(self):
        """The llguidance tokenizer, built once (the first register)."""
        with self._build_lock:
            if self._tokenizer is None:
                llguidance_module()  # RuntimeError naming the install command when it is missing
                import llguidance.hf

                size = len(self._hf_tokenizer)
                try:
                    tokenizer = llguidance.hf.from_tokenizer(
                        self._hf_tokenizer, n_vocab=max(size, self.logits_width), eos_token=self._eos or None)
                except ValueError as e:  # a slow (Python) tokenizer, or one llguidance cannot read
                    raise ValueError(f"structured output cannot use this tokenizer "
                                     f"({type(self._hf_tokenizer).__name__}): {e}; allowed: a fast Hugging "
                                     "Face tokenizer (tokenizer.json)") from None
                self._llg_vocab = tokenizer.vocab_size
                self._tokenizer = tokenizer
            return self._tokenizer

    def _new_matcher(self, grammar: str, kind: str):
        llg = llguidance_module()
        tokenizer = self._ensure_tokenizer()
        with self._lock:
            template = self._templates.get(grammar)
            if template is not None:
                self._templates.move_to_end(grammar)
                return template.deep_copy()
        matcher = llg.LLMatcher(tokenizer, grammar, log_level=0)  # compiles without the GIL
        if matcher.is_error():
            raise ValueError(f"response_format of type {kind!r} does not compile for this tokenizer: "
                             f"{one_line(matcher.get_error())}")
        with self._lock:
            self._templates[grammar] = matcher.deep_copy()
            while len(self._templates) > _TEMPLATES:
                self._templates.popitem(last=False)
        return matcher

    def _advance(self, state: _SideState, generated: Sequence[int], path: Sequence[int]) -> bool:
        """Brings the matcher to generated + path; False when those tokens leave the grammar."""
        tokens = list(generated) + list(path)
        done = state.consumed
        common = _common_prefix(done, tokens)
        m = state.matcher
        if common < len(done):
            if not m.rollback(len(done) - common):
                m.reset()
                common = 0
            del done[common:]
        rest = tokens[common:]
        if not rest:
            return True
        valid = next((i for i, t in enumerate(rest) if not 0 <= t < self._llg_vocab), len(rest))
        taken = m.try_consume_tokens(rest[:valid]) if valid else 0
        done.extend(rest[:taken])
        return taken == len(rest)

    def _write_mask(self, matcher, row_ptr: int, stride: int) -> None:
        llg_bytes = 4 * ((self._llg_vocab + 31) // 32)
        if llg_bytes == stride:
            matcher.unsafe_compute_mask_ptr(row_ptr, stride)
        else:  # the tokenizer is wider than the logits: ids past them cannot be sampled anyway
            scratch = (ctypes.c_uint32 * (llg_bytes // 4))()
            matcher.unsafe_compute_mask_ptr(ctypes.addressof(scratch), llg_bytes)
            ctypes.memmove(row_ptr, scratch, stride)
            tail = self.logits_width % 32
            if tail:
                last = ctypes.c_uint32.from_address(row_ptr + stride - 4)
                last.value &= (1 << tail) - 1
        if matcher.is_error():  # never for tokens the grammar accepted; keep the row usable anyway
            ctypes.memset(row_ptr, 0xFF, stride)


def _common_prefix(a: List[int], b: List[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] and a[:hi] != b[:hi]: bisect on slices (C-speed compares)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def masker_for(tokenizer, logits_width: int, eos_token_ids: Sequence[int]) -> Optional[TokenMasker]:
    """The engine's TokenMasker, or None when the target has no tokenizer."""
    return None if tokenizer is None else TokenMasker(tokenizer, logits_width, eos_token_ids)
