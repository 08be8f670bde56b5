"""RequestOutput and the per-request text tracker (detokenisation, stop strings, metrics).

The runtime streams token ids per round; :class:`RequestTracker` turns them into text deltas, applies
stop strings across round boundaries (text is held back while it could still be the start of a stop
string) and builds the final :class:`RequestOutput`. A tracker is used by one consumer at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass(frozen=True)
class RequestMetrics:
    """What one request measured: the C++ ``ssdcore::RequestMetrics`` (ssdcore/request.h) field for
    field (a test keeps the two in sync), plus the ratios derived from it."""
    prompt_tokens: int = 0
    generated_tokens: int = 0
    rounds: int = 0                   # target verifications the request took part in
    accepted_drafts: int = 0          # drafted tokens accepted
    cache_hits: int = 0               # rounds whose speculation came from the SSD cache
    cache_lookups: int = 0
    time_to_first_token: float = 0.0  # seconds from submission
    decode_seconds: float = 0.0       # seconds from the first token to the finish

    @property
    def mean_accept_length(self) -> float:
        """Tokens committed per round (accepted drafts + 1)."""
        return (self.accepted_drafts + self.rounds) / self.rounds if self.rounds else 0.0

    @property
    def cache_hit_rate(self) -> float:
        """Rounds served from the speculation cache / lookups."""
        return self.cache_hits / self.cache_lookups if self.cache_lookups else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens after the first / time after the first."""
        gen, decode = self.generated_tokens, self.decode_seconds
        return (gen - 1) / decode if decode > 0 and gen > 1 else 0.0


@dataclass
class RequestOutput:
    request_id: int
    prompt: Optional[str]
    prompt_token_ids: List[int]
    text: str = ""
    token_ids: List[int] = field(default_factory=list)  # generated ids only
    finish_reason: Optional[str] = None                  # "stop" | "length" | "cancelled"
    metrics: RequestMetrics = field(default_factory=RequestMetrics)


def metrics_from(raw: dict) -> RequestMetrics:
    """The metrics of a final event (the C++ struct's fields by name)."""
    return RequestMetrics(**raw)


class RequestTracker:
    """Accumulates one request's tokens and text; knows when a stop string ended it."""

    def __init__(self, output: RequestOutput, tokenizer, stop: tuple, lazy: bool = False):
        self.out = output
        self.tokenizer = tokenizer
        self.stop = stop
        # lazy: nobody reads deltas (Engine.generate) and no stop string needs checking, so the text
        # is decoded once at finish() instead of after every round
        self.lazy = lazy and not stop
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.emitted = 0          # characters of text already handed out as deltas
        self.stopped = False      # a stop string matched (the engine must cancel the request)

    def add_tokens(self, tokens: List[int]) -> str:
        """Adds tokens; returns the new text that is final (safe to stream)."""
        if self.stopped:
            return ""
        self.out.token_ids.extend(tokens)
        if self.tokenizer is None or self.lazy:
            return ""
        text = self.tokenizer.decode(self.out.token_ids, skip_special_tokens=True)
        cut = self._first_stop(text)
        if cut is not None:
            self.stopped = True
            self.out.text = text[:cut]
            return self._delta(len(self.out.text))
        self.out.text = text
        safe = len(text) - self.hold
        while safe > self.emitted and text[safe - 1] == "\ufffd":  # incomplete UTF-8 sequence
            safe -= 1
        return self._delta(safe)

    def finish(self, reason: str, raw_metrics: dict) -> str:
        if self.lazy and self.tokenizer is not None:
            self.out.text = self.tokenizer.decode(self.out.token_ids, skip_special_tokens=True)
        self.out.finish_reason = "stop" if self.stopped else reason
        self.out.metrics = metrics_from(raw_metrics or {})
        return self._delta(len(self.out.text))

    def _first_stop(self, text: str) -> Optional[int]:
        start = max(0, self.emitted - self.hold - 1)
        hits = [i for i in (text.find(s, start) for s in self.stop) if i >= 0]
        return min(hits) if hits else None

    def _delta(self, upto: int) -> str:
        if upto <= self.emitted:
            return ""
        delta = self.out.text[self.emitted:upto]
        self.emitted = upto
        return delta
