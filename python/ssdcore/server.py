"""OpenAI-compatible HTTP server for one shared :class:`~ssdcore.Engine` (``ssdcore serve``).

Routes: ``POST /v1/completions``, ``POST /v1/chat/completions`` (both with ``stream: true`` as
server-sent events), ``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus text).
:func:`create_app` builds the FastAPI app around an engine it does not own; :func:`serve` builds the
engine from CLI arguments and runs uvicorn.

Threads: the event loop never blocks on the engine. Each request is an
:class:`~ssdcore.server_job.EngineJob` that iterates ``Engine.stream`` on a dedicated thread pool
(``workers`` threads, default max(32, 4 x max_batch), so many concurrent streams never starve the
default pool that ``/metrics`` uses) and hands deltas to the loop through an ``asyncio.Queue``. The
engine batches the concurrent requests itself (continuous batching between rounds).

Invariants: a client that goes away (disconnect mid-stream, or while waiting for a non-streamed
answer) sets its job's cancel flag; the job thread then closes the stream generator, which cancels
the request in the engine, at the latest when the next delta arrives. Every generation request is
counted exactly once in ``ssdcore_requests_total``: by the job when one ran, otherwise by the error
handler. Every error is an OpenAI-style body; validation errors are 400, never FastAPI's 422.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Optional, Union

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import server_metrics
from .server_job import ClientGone, EngineJob
from ._version import __version__
from .server_schema import (APIError, ChatCompletionRequest, CompletionRequest, ResponseShape,
                            chat_messages, check_supported, completion_prompt, error_body,
                            sampling_params, validation_message)

log = logging.getLogger(__name__)
DEFAULT_COMPLETION_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


def _sse(body) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _error_response(e: Exception) -> JSONResponse:
    if isinstance(e, APIError):
        return JSONResponse(e.body(), status_code=e.status)
    return JSONResponse(error_body(str(e) or type(e).__name__, type="server_error"), status_code=500)


async def _sse_stream(job: EngineJob, shape: ResponseShape, first):
    """Server-sent events: one chunk per delta, a finish chunk, the usage chunk if asked, [DONE]."""
    try:
        if shape.chat:
            yield _sse(shape.chunk("", role=True))
        item = first
        while item[0] == "delta":
            yield _sse(shape.chunk(item[1]))
            item = await job.get()
        if item[0] == "error":
            e = item[1]
            body = e.body() if isinstance(e, APIError) else error_body(str(e), type="server_error")
            yield _sse(body)
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


class _Server:
    """State shared by the routes: the engine, the model name, metrics and the job thread pool."""

    def __init__(self, engine, model_name: str, workers: int):
        self.engine, self.model_name = engine, model_name
        self.metrics = server_metrics.ServerMetrics()
        self.executor = concurrent.futures.ThreadPoolExecutor(workers, "ssdcore-request")
        self.created = int(time.time())
        self.lock = threading.Lock()
        self.jobs: set = set()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancels every running job and waits (bounded) for their threads to let go of the engine."""
        with self.lock:
            jobs = list(self.jobs)
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

    def check_model(self, model: str) -> None:
        if model != self.model_name:
            raise APIError(f"The model `{model}` does not exist: this server serves "
                           f"`{self.model_name}`", "model", code="model_not_found")

    def encode(self, text: str) -> list:
        tok = self.engine.tokenizer
        if tok is None:
            raise APIError("the model has no tokenizer: give the prompt as token ids", "prompt")
        return list(tok.encode(text, add_special_tokens=False))

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

    def chat_prompt(self, req: ChatCompletionRequest) -> list:
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

    def job(self, req, endpoint: str, ids: list, max_tokens: int, t0: float):
        check_supported(req)
        sp = sampling_params(req, max_tokens)
        include_usage = bool(req.stream and req.stream_options and req.stream_options.include_usage)
        shape = ResponseShape(endpoint == "/v1/chat/completions", self.model_name, include_usage)
        job = EngineJob(self, endpoint, ids, sp, t0)
        job.start()
        return job, shape


def _install_error_handlers(app: FastAPI, metrics: server_metrics.ServerMetrics) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        message, param = validation_message(exc.errors())
        metrics.request_done(request.url.path, "bad_request")
        return JSONResponse(error_body(message, param), status_code=400)

    @app.exception_handler(APIError)
    async def on_api_error(request: Request, exc: APIError):
        metrics.request_done(request.url.path, "bad_request" if exc.status < 500 else "error")
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), type=kind), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        metrics.request_done(request.url.path, "error")
        return JSONResponse(error_body(f"internal error: {exc}", type="server_error"), status_code=500)


def create_app(engine, model_name: str = "ssdcore-bundled", workers: Optional[int] = None) -> FastAPI:
    """The FastAPI app serving ``engine`` (not closed by the app) under the name ``model_name``."""
    state = _Server(engine, model_name, workers or max(32, 4 * engine.config.max_batch))

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        await asyncio.to_thread(state.shutdown)

    app = FastAPI(title="ssdcore", version=__version__, lifespan=lifespan)
    app.state.ssd = state
    _install_error_handlers(app, state.metrics)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        t0 = time.perf_counter()
        state.check_model(req.model)
        prompt: Union[str, list] = completion_prompt(req)
        ids = state.encode(prompt) if isinstance(prompt, str) else list(prompt)
        max_tokens = state.budget(ids, req.max_tokens, DEFAULT_COMPLETION_MAX_TOKENS, "prompt")
        job, shape = state.job(req, "/v1/completions", ids, max_tokens, t0)
        return await _respond(request, job, shape, req.stream)

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest, request: Request):
        t0 = time.perf_counter()
        state.check_model(req.model)
        ids = state.chat_prompt(req)
        requested = req.max_tokens if req.max_completion_tokens is None else req.max_completion_tokens
        max_tokens = state.budget(ids, requested, None, "messages")
        job, shape = state.job(req, "/v1/chat/completions", ids, max_tokens, t0)
        return await _respond(request, job, shape, req.stream)

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
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics():
        stats = await asyncio.to_thread(engine.stats)
        return Response(server_metrics.exposition(state.metrics, stats),
                        media_type=server_metrics.CONTENT_TYPE)

    return app


def _model_card(state: _Server) -> dict:
    return {"id": state.model_name, "object": "model", "created": state.created, "owned_by": "ssdcore",
            "max_model_len": state.engine.config.max_context}


def default_model_name(target: Optional[str]) -> str:
    if not target:
        return "ssdcore-bundled"
    return Path(str(target).rstrip("/")).name or str(target)


def serve(args) -> None:
    """Builds the engine from ``ssdcore serve`` arguments and serves until Ctrl-C / SIGTERM."""
    import uvicorn

    from .engine import Engine

    sock = _listen(args.host, args.port)  # fail fast, before the models load
    try:
        engine = Engine(args.target, args.draft, mode=args.mode, K=args.K, fan_out=args.fan_out,
                        backup=args.backup, saguaro_c=args.saguaro_c, max_batch=args.max_batch,
                        max_context=args.max_context, target_device=args.target_device,
                        draft_device=args.draft_device, target_threads=args.target_threads,
                        draft_threads=args.draft_threads, target_cores=args.target_cores,
                        draft_cores=args.draft_cores)
        with engine:
            app = create_app(engine, args.model_name or default_model_name(args.target), args.workers)
            config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                                    timeout_graceful_shutdown=5)
            log.info("serving %s on http://%s:%d/v1", app.state.ssd.model_name, args.host, args.port)
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock
