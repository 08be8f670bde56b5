"""OpenAI-compatible HTTP server for one shared :class:`~ssdcore.Engine` (``ssdcore serve``).

Routes: ``POST /v1/completions``, ``POST /v1/chat/completions`` (both with ``stream: true`` as
server-sent events), ``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus text).
:func:`create_app` builds the FastAPI app around an engine it does not own; :func:`serve` builds the
engine from CLI arguments and runs it with :mod:`~ssdcore.serve.server_http` (uvicorn, h11, request-read
timeout, graceful drain on SIGTERM). The pieces: :mod:`~ssdcore.serve.server_guard` (request id, API key,
body limit, before any route), :mod:`~ssdcore.serve.server_state` (admission, preparation, drain),
:mod:`~ssdcore.serve.server_job` (one engine request), :mod:`~ssdcore.serve.server_schema` (bodies),
:mod:`~ssdcore.serve.server_metrics` (Prometheus).

Threads: the event loop never blocks on the engine or on CPU work. Parsing, chat templates and
tokenization run on the state's ``prep`` pool; each request is an :class:`~ssdcore.serve.server_job.EngineJob`
that iterates ``Engine.stream`` on the request pool (``workers`` threads, default max(32, 4 x
max_batch)) and hands deltas to the loop through an ``asyncio.Queue``; ``/metrics`` reads the engine's
stats on the default pool. The engine batches concurrent requests itself (continuous batching).

Invariants: a client that goes away (disconnect mid-stream, or while waiting for a non-streamed
answer) sets its job's cancel flag; the job thread then closes the stream generator, which cancels
the request in the engine, at the latest when the next delta arrives. Every generation request is
counted exactly once in ``ssdcore_requests_total``: by the job when one ran, otherwise by the guard
or the error handler. Every error is an OpenAI-style body; validation errors are 400, never
FastAPI's 422; a 500 body names only the request id (``x-request-id``), never the exception.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import server_metrics
from .._version import __version__
from .server_guard import DEFAULT_MAX_REQUEST_BYTES, RequestGuard
from .server_http import build_server, listen
from .server_job import ClientGone, EngineJob, internal_error
from .server_schema import APIError, ResponseShape, error_body, validation_message
from .server_state import ServerState

log = logging.getLogger(__name__)
DEFAULT_MAX_QUEUE = 256  # generation requests admitted at once (running + waiting); then 429


def _sse(body) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _error_response(e: APIError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


def _status_label(status: int) -> str:
    if status in (401, 413, 429, 503):
        return "rejected"
    return "bad_request" if status < 500 else "error"


async def _sse_stream(job: EngineJob, shape: ResponseShape, first):
    """Server-sent events: one chunk per delta, a finish chunk, the usage chunk if asked, [DONE]; an
    error after the first chunk is sent as a final ``{"error": ...}`` event before ``[DONE]``."""
    try:
        if shape.chat:
            yield _sse(shape.chunk("", role=True))
        item = first
        while item[0] == "delta":
            yield _sse(shape.chunk(item[1]))
            item = await job.get()
        if item[0] == "error":
            yield _sse(item[1].body())
        else:
            out = item[1]
            yield _sse(shape.chunk(None if shape.chat else "", finish_reason=out.finish_reason))
            if shape.include_usage:
                yield _sse(shape.usage_chunk(len(out.prompt_token_ids), len(out.token_ids)))
        yield "data: [DONE]\n\n"
    finally:
        job.cancel()  # no-op when the job is done; on a disconnect, frees the engine request


class _SSEResponse(StreamingResponse):
    """An event stream that cancels its job however the response ends (even before it starts)."""

    def __init__(self, job: EngineJob, content):
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.job = job

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.cancel()


async def _respond(request: Request, job: EngineJob, shape: ResponseShape, stream: bool) -> Response:
    try:
        first = await job.get(request)
        if first[0] == "error":
            return _error_response(first[1])
        if stream:
            return _SSEResponse(job, _sse_stream(job, shape, first))
        parts, item = [], first
        while item[0] == "delta":
            parts.append(item[1])
            item = await job.get(request)
        if item[0] == "error":
            return _error_response(item[1])
        out = item[1]
        return JSONResponse(shape.full("".join(parts), out.finish_reason, len(out.prompt_token_ids),
                                       len(out.token_ids)))
    except ClientGone:
        return Response(status_code=499)
    except BaseException:
        job.cancel()
        raise


def _install_error_handlers(app: FastAPI, state: ServerState) -> None:
    metrics = state.metrics

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        message, param = validation_message(exc.errors())
        metrics.request_done(request.url.path, "bad_request")
        return JSONResponse(error_body(message, param), status_code=400)

    @app.exception_handler(APIError)
    async def on_api_error(request: Request, exc: APIError):
        metrics.request_done(request.url.path, _status_label(exc.status))
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), type=kind), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception):
        request_id = getattr(request.state, "request_id", "-")
        log.error("request %s failed on %s", request_id, request.url.path, exc_info=exc)
        metrics.request_done(request.url.path, "error")
        return JSONResponse(internal_error(request_id).body(), status_code=500,
                            headers={"x-request-id": request_id})


def create_app(engine, model_name: str = "ssdcore-bundled", workers: Optional[int] = None, *,
               api_key: Optional[str] = None, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
               max_queue: int = DEFAULT_MAX_QUEUE) -> FastAPI:
    """The FastAPI app serving ``engine`` (not closed by the app) under the name ``model_name``.

    ``api_key``: when set, ``/v1/*`` needs ``Authorization: Bearer <api_key>`` (401 otherwise;
    ``/health`` and ``/metrics`` stay open). ``max_request_bytes``: larger bodies get 413 (default
    4 MiB). ``max_queue``: generation requests admitted at once, running and waiting; the next gets
    429 with ``Retry-After: 1``. ``workers``: request threads (default max(32, 4 x max_batch)).
    ``app.state.ssd`` is the :class:`~ssdcore.serve.server_state.ServerState` (its ``drain`` is what
    :func:`~ssdcore.serve.server_http.build_server` runs at shutdown).
    """
    if max_queue < 1:
        raise ValueError(f"max_queue = {max_queue} is invalid: allowed >= 1")
    state = ServerState(engine, model_name, workers or max(32, 4 * engine.config.max_batch), max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        await asyncio.to_thread(state.shutdown)

    app = FastAPI(title="ssdcore", version=__version__, lifespan=lifespan)
    app.state.ssd = state
    app.add_middleware(RequestGuard, api_key=api_key, max_request_bytes=max_request_bytes,
                       on_reject=lambda path, status: state.metrics.request_done(path, "rejected"))
    _install_error_handlers(app, state)
    _install_routes(app, state)
    return app


def _install_routes(app: FastAPI, state: ServerState) -> None:
    engine = state.engine

    async def generate(request: Request, endpoint: str, prepare):
        t0 = time.perf_counter()
        request_id = request.state.request_id
        slot = state.admit()
        try:
            req, ids, max_tokens = await prepare(await request.body())
            job, shape = state.start_job(req, endpoint, ids, max_tokens, t0, request_id, slot)
        except APIError:
            slot.release()
            raise
        except Exception:
            slot.release()
            log.exception("request %s failed on %s", request_id, endpoint)
            state.metrics.request_done(endpoint, "error")
            return _error_response(internal_error(request_id))
        except BaseException:
            slot.release()
            raise
        return await _respond(request, job, shape, req.stream)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await generate(request, "/v1/completions", state.prepare_completion)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await generate(request, "/v1/chat/completions", state.prepare_chat)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [_model_card(state)]}

    @app.get("/v1/models/{model}")
    async def model(model: str):
        state.check_model(model)
        return _model_card(state)

    @app.get("/health")
    async def health():
        if getattr(engine, "_closed", False):
            return JSONResponse({"status": "closed"}, status_code=503)
        if state.draining:
            return JSONResponse({"status": "shutting_down"}, status_code=503)
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics():
        text = await asyncio.to_thread(state.metrics.exposition)
        return Response(text, media_type=server_metrics.CONTENT_TYPE)


def _model_card(state: ServerState) -> dict:
    return {"id": state.model_name, "object": "model", "created": state.created, "owned_by": "ssdcore",
            "max_model_len": state.engine.config.max_context}


def default_model_name(target: Optional[str]) -> str:
    if not target:
        return "ssdcore-bundled"
    return Path(str(target).rstrip("/")).name or str(target)


class _Terminated(Exception):
    """SIGTERM after the graceful shutdown (uvicorn re-raises the signal it handled)."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def serve(args) -> None:
    """Builds the engine from ``ssdcore serve`` arguments and serves until SIGTERM / Ctrl-C; SIGTERM
    drains gracefully (see :mod:`~ssdcore.serve.server_http`) and returns normally."""
    from ..engine.engine import Engine

    sock = listen(args.host, args.port)  # fail fast, before the models load
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main else None
    try:
        engine = Engine(args.target, args.draft, mode=args.mode, K=args.K, fan_out=args.fan_out,
                        backup=args.backup, saguaro_c=args.saguaro_c, max_batch=args.max_batch,
                        max_context=args.max_context, target_device=args.target_device,
                        draft_device=args.draft_device, target_threads=args.target_threads,
                        draft_threads=args.draft_threads, target_cores=args.target_cores,
                        draft_cores=args.draft_cores, ngram_n=args.ngram_n, ngram_min_n=args.ngram_min_n)
        with engine:
            app = create_app(engine, args.model_name or default_model_name(args.target), args.workers,
                             api_key=args.api_key or None, max_request_bytes=args.max_request_bytes,
                             max_queue=args.max_queue)
            server = build_server(app, drain=app.state.ssd.drain, host=args.host, port=args.port,
                                  log_level=args.log_level, timeout_keep_alive=args.timeout_keep_alive,
                                  timeout_request_read=args.timeout_request_read,
                                  shutdown_grace=args.shutdown_grace)
            log.info("serving %s on http://%s:%d/v1", app.state.ssd.model_name, args.host, args.port)
            server.run(sockets=[sock])
    except _Terminated:
        log.info("terminated")
    finally:
        sock.close()
        if main:
            signal.signal(signal.SIGTERM, previous)
