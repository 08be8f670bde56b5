"""Prometheus metrics of the HTTP server (``GET /metrics``), built on ``prometheus_client``.

:class:`ServerMetrics` owns one :class:`~prometheus_client.CollectorRegistry` per app (never the
process-global one, so several apps in one process keep separate counts) holding the server's own
counters, gauges and histograms: requests by endpoint and status, tokens, time to first token,
inter-token latency, request latency, running and admitted requests. :class:`EngineStatsCollector`
reads ``Engine.stats()`` (cumulative since the engine started: acceptance per position, cache hits and
misses per position, backup use, draft-hidden fraction, phase times) at scrape time.

Threads: prometheus_client metrics lock internally, so request threads and the event loop record
concurrently. :meth:`ServerMetrics.exposition` calls ``Engine.stats()`` (it takes the runtime's stats
lock), so the server runs it on a worker thread, never on the event loop.

Names: every family is prefixed ``ssdcore_``; counters end in ``_total`` in the exposition.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)
CONTENT_TYPE = CONTENT_TYPE_LATEST
PREFIX = "ssdcore_"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
                   30.0)
ENDPOINTS = ("/v1/completions", "/v1/chat/completions")
# ok: answered; cancelled: the client went away; bad_request: 4xx for the request's content;
# rejected: refused before running (401, 413, 429, or 503 while draining); aborted: still running
# when the shutdown grace ran out (503); error: the server failed (500)
STATUSES = ("ok", "cancelled", "bad_request", "rejected", "aborted", "error")


class ServerMetrics:
    """The server's own metrics in a registry of their own; thread-safe."""

    def __init__(self, engine_stats: Optional[Callable[[], dict]] = None,
                 admitted: Optional[Callable[[], int]] = None):
        self.registry = r = CollectorRegistry()
        self.requests = Counter(PREFIX + "requests", "HTTP generation requests by endpoint and status "
                                "(" + ", ".join(STATUSES) + ").", ["endpoint", "status"], registry=r)
        self.cancelled = Counter(PREFIX + "requests_cancelled", "Requests cancelled because the client "
                                 "went away.", ["endpoint"], registry=r)
        self.running = Gauge(PREFIX + "requests_running", "Generation requests accepted and not "
                             "finished (running or queued in the engine).", registry=r)
        self.admitted = Gauge(PREFIX + "requests_admitted", "Generation requests counted against "
                              "--max-queue (being prepared, queued or running).", registry=r)
        self.admitted.set_function(admitted or (lambda: 0))
        self.prompt_tokens = Counter(PREFIX + "prompt_tokens", "Prompt tokens of requests that left "
                                     "the engine.", registry=r)
        self.completion_tokens = Counter(PREFIX + "completion_tokens", "Generated tokens of requests "
                                         "that left the engine.", registry=r)
        self.ttft = Histogram(PREFIX + "time_to_first_token_seconds", "Request arrival to its first "
                              "text delta.", buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram(PREFIX + "inter_token_latency_seconds", "Gap between successive text "
                             "deltas of a request (one delta per round, accept-length tokens).",
                             buckets=LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram(PREFIX + "request_latency_seconds", "Arrival to last token of requests "
                             "that finished normally.", buckets=LATENCY_BUCKETS + (60.0, 120.0),
                             registry=r)
        if engine_stats is not None:
            r.register(EngineStatsCollector(engine_stats))

    def request_done(self, endpoint: str, status: str) -> None:
        """Counts one finished request; ``status`` is one of STATUSES."""
        endpoint = endpoint if endpoint in ENDPOINTS else "other"
        self.requests.labels(endpoint, status).inc()
        if status == "cancelled":
            self.cancelled.labels(endpoint).inc()

    def started(self) -> None:
        self.running.inc()

    def finished(self, endpoint: str, status: str, prompt_tokens: int, completion_tokens: int,
                 seconds: float) -> None:
        """An engine request left the engine (finished, cancelled, aborted or failed)."""
        self.running.dec()
        self.prompt_tokens.inc(prompt_tokens)
        self.completion_tokens.inc(completion_tokens)
        if status == "ok":
            self.e2e.observe(seconds)
        self.request_done(endpoint, status)

    def observe_ttft(self, seconds: float) -> None:
        self.ttft.observe(seconds)

    def observe_itl(self, seconds: float) -> None:
        self.itl.observe(seconds)

    def exposition(self) -> bytes:
        """The text exposition of everything (calls ``Engine.stats()``: not on the event loop)."""
        return generate_latest(self.registry)


class EngineStatsCollector:
    """``Engine.stats()`` as metric families, read at each scrape (engine-wide, cumulative)."""

    def __init__(self, stats: Callable[[], dict]):
        self.stats = stats

    def describe(self):
        return []  # nothing to read at registration; the families appear at the first scrape

    def collect(self):
        try:
            s = self.stats()
        except Exception:  # a closed engine: its families are left out of the scrape
            log.warning("engine stats unavailable for /metrics", exc_info=True)
            return
        yield _counter("engine_rounds", "Target verification rounds.", s.get("rounds", 0))
        yield _counter("engine_tokens_committed", "Tokens committed by the engine.",
                       s.get("tokens_committed", 0))
        yield _gauge("accept_length_mean", "Mean tokens committed per sequence-round (accepted "
                     "drafts + 1).", s.get("mean_accept_length", 0.0))
        yield _counter("accept_length_rounds", "Sequence-rounds by accept length.",
                       labels=("accept_length",),
                       samples=[((str(k + 1),), n) for k, n in enumerate(s.get("accept_hist", []))])
        yield _gauge("position_acceptance_ratio", "Share of drafted tokens accepted at each draft "
                     "position (1..K), given the position was reached.", labels=("position",),
                     samples=[((str(i + 1),), a)
                              for i, a in enumerate(s.get("position_acceptance", []))])
        yield _counter("cache_hits", "Speculation cache hits by outcome position k.",
                       labels=("position",),
                       samples=[((str(k),), n) for k, n in enumerate(s.get("cache_hits", []))])
        yield _counter("cache_misses", "Speculation cache misses by outcome position k.",
                       labels=("position",),
                       samples=[((str(k),), n) for k, n in enumerate(s.get("cache_misses", []))])
        yield _gauge("cache_hit_rate", "Speculation cache hits / lookups.", s.get("hit_rate", 0.0))
        yield _counter("backup_use", "Speculations made by a backup, by kind.", labels=("backup",),
                       samples=[((b,), n) for b, n in sorted(s.get("backup_use", {}).items())])
        yield _gauge("draft_hidden_fraction", "Share of draft time hidden behind target "
                     "verification.", s.get("draft_hidden_fraction", 0.0))
        phases = sorted(s.get("phases", {}).items())
        yield _counter("phase_seconds", "Time spent per engine phase.", labels=("phase",),
                       samples=[((p,), float(v[0])) for p, v in phases])
        yield _counter("phase_calls", "Calls per engine phase.", labels=("phase",),
                       samples=[((p,), int(v[1])) for p, v in phases])


def _counter(name, help_text, value=None, labels=(), samples=()):
    family = CounterMetricFamily(PREFIX + name, help_text, value=value,
                                 labels=list(labels) if value is None else None)
    for label_values, v in samples:
        family.add_metric(list(label_values), v)
    return family


def _gauge(name, help_text, value=None, labels=(), samples=()):
    family = GaugeMetricFamily(PREFIX + name, help_text, value=None if value is None else float(value),
                               labels=list(labels) if value is None else None)
    for label_values, v in samples:
        family.add_metric(list(label_values), float(v))
    return family
