"""The bridge between the server's event loop and the blocking engine: one :class:`EngineJob` per
HTTP generation request.

Threads: ``EngineJob._run`` iterates ``Engine.stream`` on a thread of the server's request pool and
posts items to an ``asyncio.Queue`` with ``call_soon_threadsafe``; the route awaits them on the event
loop. Only the job thread touches the stream generator (so closing it never races a ``next``).
``abort`` runs on the event loop (server shutdown).

Invariants: ``cancel()`` (any thread) sets a flag; the job thread sees it before its next ``next()``,
at the latest one delta later, and closes the generator, which cancels the request in the engine.
``abort(error)`` puts ``error`` in the queue and cancels, so the route ends the response with it at
once. Every job leaves the server's job set, gives back its admission slot, and is counted exactly
once in the metrics (ok, cancelled, aborted, bad_request or error), with the running gauge going back
down, whatever way it ends, and all of that before it posts its last item (``done`` or ``error``):
a client that has read the end of its answer finds the slot free and the counts final. An error
item is always an :class:`APIError`: a client's mistake (``ValueError`` from the engine's validation)
is a 400 with its message, a closed engine a 503, and anything else a 500 whose body carries only the
request id (the exception goes to the log with it).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Optional

from starlette.requests import Request

from ..engine.errors import EngineClosedError
from .server_schema import APIError

log = logging.getLogger(__name__)
DISCONNECT_POLL_S = 0.25


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


def shutting_down_error() -> APIError:
    return APIError("the server is shutting down: retry on another instance or later", None, 503,
                    "server_error", "shutting_down")


def internal_error(request_id: str) -> APIError:
    return APIError(f"internal server error (request id {request_id}); the server log has the details",
                    None, 500, "server_error", "internal_error")


class EngineJob:
    """One engine request: runs ``Engine.stream`` on an executor thread, posts items to the loop.

    Items: ``("delta", str)``, ``("done", RequestOutput)``, ``("error", APIError)``. ``release`` is
    called once when the job ends (the admission slot).
    """

    def __init__(self, state, endpoint: str, prompt_ids: list, sp, t0: float, request_id: str,
                 release=lambda: None):
        self.state, self.engine, self.metrics = state, state.engine, state.metrics
        self.endpoint, self.prompt_ids, self.sp, self.t0 = endpoint, prompt_ids, sp, t0
        self.request_id, self.release = request_id, release
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self.aborted = False
        self._pending: Optional[asyncio.Future] = None
        self._next_check = 0.0

    def start(self) -> None:
        self.metrics.started()
        with self.state.lock:
            self.state.jobs.add(self)
        self.state.executor.submit(self._run)

    def cancel(self) -> None:
        self.cancelled.set()

    def abort(self, error: APIError) -> None:
        """Ends the response with ``error`` now and cancels the engine request (event loop only)."""
        self.aborted = True
        self.queue.put_nowait(("error", error))
        self.cancel()

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
        status, out, gen, final = "error", None, None, None
        try:
            if self.cancelled.is_set():
                status = "cancelled"
                return
            gen = self.engine.stream(self.prompt_ids, self.sp)
            status, out = self._pump(gen)
            if status == "ok":
                final = ("done", out)
        except EngineClosedError:
            status, final = "aborted", ("error", shutting_down_error())
        except ValueError as e:  # the engine's validation: the request's content is at fault
            status, final = "bad_request", ("error", APIError(str(e)))
        except Exception:  # a model forward failed: the engine keeps serving others
            log.exception("request %s failed in the engine", self.request_id)
            final = ("error", internal_error(self.request_id))
        finally:
            if gen is not None:
                gen.close()  # cancels the engine request when it has not finished
            if status == "cancelled" and self.aborted:
                status = "aborted"
            completion = len(out.token_ids) if out is not None else 0
            prompt = len(self.prompt_ids) if status in ("ok", "cancelled", "aborted") else 0
            self.metrics.finished(self.endpoint, status, prompt, completion,
                                  time.perf_counter() - self.t0)
            with self.state.lock:
                self.state.jobs.discard(self)
            self.release()
            if final is not None:  # last: a client that sees its answer end sees the job gone
                self._post(final)

    def _pump(self, gen):
        """Posts each delta; ("ok", output) at the end, ("cancelled", None) when cancelled."""
        last = None
        while not self.cancelled.is_set():
            try:
                delta = next(gen)
            except StopIteration as stop:
                return "ok", stop.value
            now = time.perf_counter()
            if last is None:
                self.metrics.observe_ttft(now - self.t0)
            else:
                self.metrics.observe_itl(now - last)
            last = now
            self._post(("delta", delta))
        return "cancelled", None
