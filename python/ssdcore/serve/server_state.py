"""What the routes of ``ssdcore serve`` share: the engine, admission (``--max-queue``), the thread
pools, request preparation (parse, chat template, tokenize, token budget) and the shutdown drain.

Threads: the event loop calls :meth:`ServerState.admit`, :meth:`prepare_completion` /
:meth:`prepare_chat` (awaitables that run the CPU work on the ``prep`` pool: JSON parsing and
validation, the chat template and the tokenizer never run on the loop, so ``/health`` answers while a
megabyte prompt is tokenized), :meth:`start_job` and :meth:`drain`. Job threads (the ``executor``
pool) release admission slots and leave ``jobs``; ``lock`` guards ``jobs`` and the admission count.

Invariants: at most ``max_queue`` generation requests are admitted at once (being prepared, queued or
running); the next gets 429. Every admitted request releases its slot exactly once: the route when
it fails before its job starts, the job when it ends. Once :meth:`drain` has begun, new requests get
503; when its grace runs out every job still running ends with a 503 error item.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from typing import Optional

from .server_job import EngineJob, shutting_down_error
from .server_metrics import ServerMetrics
from .server_schema import (APIError, ChatCompletionRequest, CompletionRequest, ResponseShape,
                            chat_messages, check_supported, completion_prompt, parse_request,
                            response_format_of, sampling_params)

log = logging.getLogger(__name__)
DEFAULT_COMPLETION_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


class Slot:
    """One admission slot; ``release`` is idempotent and may run on any thread."""

    def __init__(self, state: "ServerState"):
        self._state, self._released = state, False

    def release(self) -> None:
        with self._state.lock:
            if not self._released:
                self._released = True
                self._state.admitted -= 1


class ServerState:
    """State shared by the routes; see the module docstring for threads and invariants."""

    def __init__(self, engine, model_name: str, workers: int, max_queue: int):
        self.engine, self.model_name, self.max_queue = engine, model_name, max_queue
        self.lock = threading.Lock()
        self.jobs: set = set()
        self.admitted = 0
        self.draining = False
        self.metrics = ServerMetrics(engine.stats, lambda: self.admitted)
        self.executor = concurrent.futures.ThreadPoolExecutor(workers, "ssdcore-request")
        self.prep = concurrent.futures.ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)),
                                                          "ssdcore-prep")
        self.created = int(time.time())

    # ------------------------------------------------------------------ admission
    def admit(self) -> Slot:
        """A slot for one generation request; APIError 429 when ``max_queue`` are admitted."""
        with self.lock:
            if self.draining:
                raise shutting_down_error()
            if self.admitted >= self.max_queue:
                raise APIError(f"the server is at its limit of {self.max_queue} concurrent generation "
                               "requests (running and waiting): retry later", None, 429,
                               "rate_limit_error", "queue_full", headers={"Retry-After": "1"})
            self.admitted += 1
        return Slot(self)

    # ------------------------------------------------------------------ preparation (CPU work)
    async def _off_loop(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.prep, fn, *args)

    async def prepare_completion(self, body: bytes):
        """(request, prompt ids, max_tokens) for a ``/v1/completions`` body; APIError when invalid."""
        req = await self._off_loop(parse_request, CompletionRequest, body)
        self.check_model(req.model)
        check_supported(req)
        await self._off_loop(response_format_of, req)
        prompt = completion_prompt(req)
        ids = await self._off_loop(self.encode, prompt) if isinstance(prompt, str) else list(prompt)
        return req, ids, self.budget(ids, req.max_tokens, DEFAULT_COMPLETION_MAX_TOKENS, "prompt")

    async def prepare_chat(self, body: bytes):
        """(request, prompt ids, max_tokens) for a ``/v1/chat/completions`` body."""
        req = await self._off_loop(parse_request, ChatCompletionRequest, body)
        self.check_model(req.model)
        check_supported(req)
        await self._off_loop(response_format_of, req)
        ids = await self._off_loop(self.chat_prompt, req)
        requested = req.max_tokens if req.max_completion_tokens is None else req.max_completion_tokens
        return req, ids, self.budget(ids, requested, None, "messages")

    def check_model(self, model: str) -> None:
        if model != self.model_name:
            raise APIError(f"The model `{model}` does not exist: this server serves "
                           f"`{self.model_name}`", "model", 404, code="model_not_found")

    def encode(self, text: str) -> list:  # prep thread
        tok = self.engine.tokenizer
        if tok is None:
            raise APIError("the model has no tokenizer: give the prompt as token ids", "prompt")
        return list(tok.encode(text, add_special_tokens=False))

    def chat_prompt(self, req: ChatCompletionRequest) -> list:  # prep thread
        tok = self.engine.tokenizer
        if tok is None or not getattr(tok, "chat_template", None):
            raise APIError("the model has no chat template: use /v1/completions", "messages")
        try:
            text = tok.apply_chat_template(chat_messages(req), tokenize=False,
                                           add_generation_prompt=True)
        except APIError:
            raise
        except Exception as e:  # jinja2 TemplateError and friends: the messages do not fit
            raise APIError(f"messages do not fit the chat template: {e}", "messages") from None
        return self.encode(text)

    def budget(self, ids: list, requested: Optional[int], default: Optional[int], param: str) -> int:
        """max_tokens for the request; 400 when the prompt (plus an explicit max_tokens) is too long."""
        limit = self.engine.config.max_context
        room = limit - len(ids)
        if room < 1:
            raise APIError(f"This model's maximum context length is {limit} tokens; the {param} has "
                           f"{len(ids)} tokens, leaving no room to generate", param)
        if requested is not None and requested > room:
            raise APIError(f"This model's maximum context length is {limit} tokens; you requested "
                           f"{len(ids) + requested} ({len(ids)} in the {param}, {requested} in the "
                           "completion)", "max_tokens")
        if requested is not None:
            return requested
        return room if default is None else min(default, room)

    # ------------------------------------------------------------------ jobs
    def start_job(self, req, endpoint: str, ids: list, max_tokens: int, t0: float, request_id: str,
                  slot: Slot):
        """Starts the engine request; the job owns ``slot`` from here on."""
        if self.draining:
            raise shutting_down_error()
        sp = sampling_params(req, max_tokens)
        include_usage = bool(req.stream and req.stream_options and req.stream_options.include_usage)
        shape = ResponseShape(endpoint == "/v1/chat/completions", self.model_name, include_usage)
        job = EngineJob(self, endpoint, ids, sp, t0, request_id, slot.release)
        job.start()
        return job, shape

    async def drain(self, grace: float) -> int:
        """Refuses new requests, waits up to ``grace`` s for running jobs, then aborts the rest with
        503 (event loop). Returns how many were aborted."""
        self.draining = True
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self.lock:
                if not self.jobs:
                    return 0
            await asyncio.sleep(0.05)
        with self.lock:
            jobs = list(self.jobs)
        if jobs:
            log.warning("shutdown: %d request(s) still running after the %.1f s grace: ending them "
                        "with 503", len(jobs), grace)
        for job in jobs:
            job.abort(shutting_down_error())
        return len(jobs)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancels every running job and waits (bounded) for their threads to let go of the engine."""
        self.draining = True
        with self.lock:
            jobs = list(self.jobs)
        if jobs:
            log.info("shutting down: cancelling %d running request(s)", len(jobs))
        for job in jobs:
            job.cancel()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.jobs:
                    break
            time.sleep(0.05)
        else:
            log.warning("%d request(s) still running at shutdown", len(self.jobs))
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.prep.shutdown(wait=False, cancel_futures=True)
