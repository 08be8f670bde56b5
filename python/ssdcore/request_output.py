"""RequestOutput and the per-request text tracker (detokenisation, stop strings, metrics).

The runtime streams token ids per round; :class:`RequestTracker` turns them into text deltas, applies
stop strings across round boundaries (text is held back while it could still be the start of a stop
string) and builds the final :class:`RequestOutput`. A tracker is used by one consumer at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class RequestMetrics:
    prompt_tokens: int = 0
    generated_tokens: int = 0
    rounds: int = 0
    mean_accept_length: float = 0.0   # tokens committed per round (accepted drafts + 1)
    cache_hit_rate: float = 0.0       # rounds served from the speculation cache / rounds
    time_to_first_token: float = 0.0  # seconds
    decode_tokens_per_s: float = 0.0  # tokens after the first / time after the first


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
    rounds = raw.get("rounds", 0)
    gen = raw.get("generated_tokens", 0)
    decode = raw.get("decode_seconds", 0.0)
    lookups = raw.get("cache_lookups", 0)
    return RequestMetrics(
        prompt_tokens=raw.get("prompt_tokens", 0), generated_tokens=gen, rounds=rounds,
        mean_accept_length=(raw.get("accepted_drafts", 0) + rounds) / rounds if rounds else 0.0,
        cache_hit_rate=raw.get("cache_hits", 0) / lookups if lookups else 0.0,
        time_to_first_token=raw.get("time_to_first_token", 0.0),
        decode_tokens_per_s=(gen - 1) / decode if decode > 0 and gen > 1 else 0.0)


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
