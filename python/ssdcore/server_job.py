"""The bridge between the server's event loop and the blocking engine: one :class:`EngineJob` per
HTTP generation request.

Threads: ``EngineJob._run`` iterates ``Engine.stream`` on a thread of the server's request pool and
posts items to an ``asyncio.Queue`` with ``call_soon_threadsafe``; the route awaits them on the event
loop. Only the job thread touches the stream generator (so closing it never races a ``next``).

Invariants: ``cancel()`` (any thread) sets a flag; the job thread sees it before its next ``next()``,
at the latest one delta later, and closes the generator, which cancels the request in the engine.
Every job leaves the server's job set and is counted exactly once in the metrics (ok, cancelled,
bad_request or error), with the running gauge going back down, whatever way it ends.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Optional

from starlette.requests import Request

from .server_schema import APIError

log = logging.getLogger(__name__)
DISCONNECT_POLL_S = 0.25


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


class EngineJob:
    """One engine request: runs ``Engine.stream`` on an executor thread, posts items to the loop.

    Items: ``("delta", str)``, ``("done", RequestOutput)``, ``("error", Exception)``.
    """

    def __init__(self, state, endpoint: str, prompt_ids: list, sp, t0: float):
        self.state, self.engine, self.metrics = state, state.engine, state.metrics
        self.endpoint, self.prompt_ids, self.sp, self.t0 = endpoint, prompt_ids, sp, t0
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self._pending: Optional[asyncio.Future] = None
        self._next_check = 0.0

    def start(self) -> None:
        self.metrics.started()
        with self.state.lock:
            self.state.jobs.add(self)
        self.state.executor.submit(self._run)

    def cancel(self) -> None:
        self.cancelled.set()

    async def get(self, request: Optional[Request] = None):
        """The next item; with ``request``, polls for a disconnect meanwhile (raises ClientGone)."""
        if request is None:
            return await self.queue.get()
        while True:
            if time.monotonic() >= self._next_check:  # also when deltas keep arriving
                self._next_check = time.monotonic() + DISCONNECT_POLL_S
                if await request.is_disconnected():
                    if self._pending is not None:
                        self._pending.cancel()
                    self.cancel()
                    raise ClientGone()
            if self._pending is None:
                self._pending = asyncio.ensure_future(self.queue.get())
            try:
                done, _ = await asyncio.wait({self._pending}, timeout=DISCONNECT_POLL_S)
            except BaseException:  # the route itself was cancelled (server shutdown)
                self._pending.cancel()
                raise
            if done:
                item, self._pending = self._pending.result(), None
                return item

    def _post(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shut down): nobody is listening
            pass

    def _run(self) -> None:  # executor thread
        status, out, gen = "error", None, None
        try:
            if self.cancelled.is_set():
                status = "cancelled"
                return
            gen = self.engine.stream(self.prompt_ids, self.sp)
            status, out = self._pump(gen)
        except ValueError as e:
            status = "bad_request"
            self._post(("error", APIError(str(e))))
        except Exception as e:  # a model forward failed: the engine keeps serving others
            log.exception("request failed")
            self._post(("error", e))
        finally:
            if gen is not None:
                gen.close()  # cancels the engine request when it has not finished
            completion = len(out.token_ids) if out is not None else 0
            prompt = len(self.prompt_ids) if status in ("ok", "cancelled") else 0
            self.metrics.finished(self.endpoint, status, prompt, completion,
                                  time.perf_counter() - self.t0)
            with self.state.lock:
                self.state.jobs.discard(self)

    def _pump(self, gen):
        last = None
        while not self.cancelled.is_set():
            try:
                delta = next(gen)
            except StopIteration as stop:
                self._post(("done", stop.value))
                return "ok", stop.value
            now = time.perf_counter()
            if last is None:
                self.metrics.observe_ttft(now - self.t0)
            else:
                self.metrics.observe_itl(now - last)
            last = now
            self._post(("delta", delta))
        return "cancelled", None
