"""The ASGI middleware in front of every route of ``ssdcore serve``: request ids, the API key and the
request-body limit, checked before the app sees a request.

For each HTTP request, in order:

1. a request id ``req-<24 hex>`` goes into ``scope["state"]["request_id"]`` (routes read it as
   ``request.state.request_id``, logs name it) and into the ``x-request-id`` response header;
2. with an API key set, ``/v1/*`` needs ``Authorization: Bearer <key>`` (compared with
   ``hmac.compare_digest``), else 401; ``/health`` and ``/metrics`` stay open (as vLLM's do);
3. a ``Content-Length`` above ``max_request_bytes`` gets 413 before any of the body is read; a body
   without one (chunked) is counted while it arrives and gets 413 as soon as it passes the limit, so
   at most ``max_request_bytes`` of a body is ever held. Both 413s close the connection;
4. the app gets the body, already read, from a replayed ``receive`` (later calls reach the server's,
   so disconnects are still seen).

Every refusal is an OpenAI-style JSON body. Threads: the event loop only; no state between requests.
"""
from __future__ import annotations

import hmac
import json
import uuid
from typing import Callable, Optional

from .server_schema import error_body

DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024  # see the README's "Serving" section


def new_request_id() -> str:
    return f"req-{uuid.uuid4().hex[:24]}"


def _json_response_events(status: int, body: dict, close: bool, extra=()) -> tuple:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    headers += list(extra)
    return ({"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": data, "more_body": False})


class RequestGuard:
    """ASGI middleware: request id, API key, body limit (see the module docstring).

    ``on_reject(path, status)`` is called for each refusal (the server counts them).
    """

    def __init__(self, app, *, api_key: Optional[str], max_request_bytes: int,
                 on_reject: Callable[[str, int], None] = lambda path, status: None):
        if max_request_bytes < 1:
            raise ValueError(f"max_request_bytes = {max_request_bytes} is invalid: allowed >= 1")
        self.app, self.max_bytes, self.on_reject = app, max_request_bytes, on_reject
        self.expected = f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=list(message.get("headers", [])) + [header])
            await send(message)

        headers = dict(scope.get("headers") or [])
        path = scope.get("path", "")
        if self.expected is not None and (path == "/v1" or path.startswith("/v1/")):
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await self._refuse(send_with_id, path, 401, error_body(
                    "missing or wrong API key: send the header `Authorization: Bearer <key>`",
                    type="invalid_request_error", code="invalid_api_key"), False,
                    [(b"www-authenticate", b"Bearer")])
                return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._too_large(send_with_id, path)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left while sending
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send_with_id, path)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay_receive():
            return replay.pop() if replay else await receive()

        await self.app(scope, replay_receive, send_with_id)

    async def _too_large(self, send, path: str) -> None:
        await self._refuse(send, path, 413, error_body(
            f"request body too large: the limit is {self.max_bytes} bytes (--max-request-bytes)",
            type="invalid_request_error", code="request_too_large"), True)

    async def _refuse(self, send, path: str, status: int, body: dict, close: bool, extra=()) -> None:
        self.on_reject(path, status)
        for message in _json_response_events(status, body, close, extra):
            await send(message)
