"""Prometheus metrics of the HTTP server (``GET /metrics``, text exposition format 0.0.4).

:class:`ServerMetrics` holds the server's own counters, gauges and histograms (requests by endpoint
and status, tokens, time to first token, inter-token latency, running requests); every update takes
one lock, so request threads and the event loop may record concurrently. :func:`engine_lines` turns
``Engine.stats()`` (cumulative since the engine started: acceptance per position, cache hits and
misses per position, backup use, draft-hidden fraction, phase times) into exposition lines at scrape
time. Written by hand (the format is small), so the server needs no extra dependency.
"""
from __future__ import annotations

import math
import threading
from typing import Dict, Iterable, List, Sequence, Tuple

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "ssdcore_"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
                   30.0)
ENDPOINTS = ("/v1/completions", "/v1/chat/completions")


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if math.isnan(value):
            return "NaN"
        return repr(value)
    return str(value)


def _family(name: str, kind: str, help_text: str,
            samples: Iterable[Tuple[str, dict, float]]) -> List[str]:
    """One metric family: HELP, TYPE and its samples (suffix, labels, value)."""
    full = PREFIX + name
    lines = [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
    lines += [f"{full}{suffix}{_labels(labels)} {_num(value)}" for suffix, labels, value in samples]
    return lines


class Histogram:
    """Cumulative-bucket histogram; not locked itself (ServerMetrics holds the lock)."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS):
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        self.total += 1
        self.sum += value

    def samples(self) -> List[Tuple[str, dict, float]]:
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts):
            running += count
            out.append(("_bucket", {"le": _num(float(bound))}, running))
        out.append(("_bucket", {"le": "+Inf"}, self.total))
        out += [("_sum", {}, self.sum), ("_count", {}, self.total)]
        return out


class ServerMetrics:
    """The server's own metrics; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: Dict[Tuple[str, str], int] = {}
        self.cancelled: Dict[str, int] = {}
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.running = 0
        self.ttft = Histogram()
        self.itl = Histogram()
        self.e2e = Histogram(LATENCY_BUCKETS + (60.0, 120.0))

    def request_done(self, endpoint: str, status: str) -> None:
        """Counts one finished request; status is ok, cancelled, bad_request or error."""
        endpoint = endpoint if endpoint in ENDPOINTS else "other"
        with self._lock:
            self.requests[(endpoint, status)] = self.requests.get((endpoint, status), 0) + 1
            if status == "cancelled":
                self.cancelled[endpoint] = self.cancelled.get(endpoint, 0) + 1

    def started(self) -> None:
        with self._lock:
            self.running += 1

    def finished(self, endpoint: str, status: str, prompt_tokens: int, completion_tokens: int,
                 seconds: float) -> None:
        """An engine request left the engine (finished, cancelled or failed)."""
        with self._lock:
            self.running -= 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            if status == "ok":
                self.e2e.observe(seconds)
        self.request_done(endpoint, status)

    def observe_ttft(self, seconds: float) -> None:
        with self._lock:
            self.ttft.observe(seconds)

    def observe_itl(self, seconds: float) -> None:
        with self._lock:
            self.itl.observe(seconds)

    def lines(self) -> List[str]:
        with self._lock:
            reqs = sorted(self.requests.items())
            cancelled = sorted(self.cancelled.items())
            out = _family("requests_total", "counter", "HTTP generation requests by endpoint and status "
                          "(ok, cancelled, bad_request, error).",
                          [("", {"endpoint": e, "status": s}, n) for (e, s), n in reqs])
            out += _family("requests_cancelled_total", "counter",
                           "Requests cancelled because the client went away.",
                           [("", {"endpoint": e}, n) for e, n in cancelled])
            out += _family("requests_running", "gauge", "Generation requests accepted and not "
                           "finished (running or queued in the engine).", [("", {}, self.running)])
            out += _family("prompt_tokens_total", "counter", "Prompt tokens of requests that left "
                           "the engine.", [("", {}, self.prompt_tokens)])
            out += _family("completion_tokens_total", "counter", "Generated tokens of requests "
                           "that left the engine.", [("", {}, self.completion_tokens)])
            out += _family("time_to_first_token_seconds", "histogram", "Request arrival to its first "
                           "text delta.", self.ttft.samples())
            out += _family("inter_token_latency_seconds", "histogram", "Gap between successive text "
                           "deltas of a request (one delta per round, accept-length tokens).",
                           self.itl.samples())
            out += _family("request_latency_seconds", "histogram", "Arrival to last token of "
                           "requests that finished normally.", self.e2e.samples())
        return out


def engine_lines(stats: dict) -> List[str]:
    """Exposition lines for ``Engine.stats()`` (engine-wide, cumulative since start)."""
    out = _family("engine_rounds_total", "counter", "Target verification rounds.",
                  [("", {}, stats.get("rounds", 0))])
    out += _family("engine_tokens_committed_total", "counter", "Tokens committed by the engine.",
                   [("", {}, stats.get("tokens_committed", 0))])
    out += _family("accept_length_mean", "gauge", "Mean tokens committed per sequence-round "
                   "(accepted drafts + 1).", [("", {}, float(stats.get("mean_accept_length", 0.0)))])
    out += _family("accept_length_rounds_total", "counter", "Sequence-rounds by accept length.",
                   [("", {"accept_length": str(k + 1)}, n)
                    for k, n in enumerate(stats.get("accept_hist", []))])
    out += _family("position_acceptance_ratio", "gauge", "Share of drafted tokens accepted at each "
                   "draft position (1..K), given the position was reached.",
                   [("", {"position": str(i + 1)}, float(a))
                    for i, a in enumerate(stats.get("position_acceptance", []))])
    out += _family("cache_hits_total", "counter", "Speculation cache hits by outcome position k.",
                   [("", {"position": str(k)}, n) for k, n in enumerate(stats.get("cache_hits", []))])
    out += _family("cache_misses_total", "counter", "Speculation cache misses by outcome position k.",
                   [("", {"position": str(k)}, n)
                    for k, n in enumerate(stats.get("cache_misses", []))])
    out += _family("cache_hit_rate", "gauge", "Speculation cache hits / lookups.",
                   [("", {}, float(stats.get("hit_rate", 0.0)))])
    out += _family("backup_use_total", "counter", "Speculations made by a backup, by kind.",
                   [("", {"backup": b}, n) for b, n in sorted(stats.get("backup_use", {}).items())])
    out += _family("draft_hidden_fraction", "gauge", "Share of draft time hidden behind target "
                   "verification.", [("", {}, float(stats.get("draft_hidden_fraction", 0.0)))])
    phases = sorted(stats.get("phases", {}).items())
    out += _family("phase_seconds_total", "counter", "Time spent per engine phase.",
                   [("", {"phase": p}, float(v[0])) for p, v in phases])
    out += _family("phase_calls_total", "counter", "Calls per engine phase.",
                   [("", {"phase": p}, int(v[1])) for p, v in phases])
    return out


def exposition(metrics: ServerMetrics, stats: dict) -> str:
    return "\n".join(metrics.lines() + engine_lines(stats)) + "\n"
