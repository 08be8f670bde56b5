"""How ``ssdcore serve`` runs its app over HTTP/1.1: uvicorn with h11, a read timeout for requests and
a graceful shutdown that drains the engine's requests.

:class:`TimedH11Protocol` (uvicorn's h11 protocol, one instance per connection) closes a connection
that has not delivered a complete request, head and body, ``timeout_request_read`` seconds after it
opened or after its previous response ended. uvicorn's own ``timeout_keep_alive`` only starts after
a response, so without this a client that connects and sends nothing, or half a header, would hold
its connection for ever. The keep-alive timeout still closes idle connections between requests.

:class:`GracefulServer` shuts down in this order on SIGTERM / SIGINT: stop accepting connections and
close the idle ones; ``drain(grace)`` (new requests get 503, running ones may finish for ``grace``
seconds, then each remaining one ends with a 503 body or a final SSE error event and ``[DONE]``);
then uvicorn's own shutdown, which waits at most ``flush_s`` seconds for those responses to be
written before it cancels what is left, and runs the app's lifespan shutdown.

Threads: everything here runs on the event loop.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Awaitable, Callable, Optional

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for receiving each complete request."""

    timeout_request_read: float = 30.0  # set on a subclass by :func:`build_server`

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._read_timer: Optional[asyncio.TimerHandle] = None
        self._timed_cycle = None
        self._arm_read_timer()

    def connection_lost(self, exc) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._check_request_read()

    def on_response_complete(self) -> None:
        self._arm_read_timer()  # before the parent handles pipelined requests
        super().on_response_complete()
        self._check_request_read()

    def handle_websocket_upgrade(self, event) -> None:
        self._cancel_read_timer()  # the connection belongs to the websocket protocol from here on
        super().handle_websocket_upgrade(event)

    def _arm_read_timer(self) -> None:
        self._cancel_read_timer()
        if self.transport.is_closing():
            return
        self._timed_cycle = self.cycle  # the request whose end armed the timer (None: none yet)
        self._read_timer = self.loop.call_later(self.timeout_request_read, self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if getattr(self, "_read_timer", None) is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _check_request_read(self) -> None:
        """Disarms the timer once a new request has arrived whole (head and body)."""
        cycle = self.cycle
        if self._read_timer is not None and cycle is not None and cycle is not self._timed_cycle \
                and not cycle.more_body:
            self._cancel_read_timer()

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if not self.transport.is_closing():
            log.info("closing a connection from %s: no complete request within %.1f s", self.client,
                     self.timeout_request_read)
            self.transport.close()


class GracefulServer(uvicorn.Server):
    """uvicorn's server with the drain of ``ssdcore serve`` in front of its shutdown."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[float], Awaitable[int]], grace: float):
        super().__init__(config)
        self.drain, self.grace = drain, grace

    async def shutdown(self, sockets=None) -> None:
        log.info("shutting down: no new connections; running requests get %.1f s", self.grace)
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle ones close now, busy ones after their response
        aborted = await self.drain(self.grace)
        log.info("shutdown: drain done, %d request(s) aborted", aborted)
        await super().shutdown(sockets)


def build_server(app, *, drain: Callable[[float], Awaitable[int]], host: str = "127.0.0.1",
                 port: int = 8000, log_level: str = "info", timeout_keep_alive: float = 5.0,
                 timeout_request_read: float = 30.0, shutdown_grace: float = 10.0,
                 flush_s: float = 5.0) -> GracefulServer:
    """The uvicorn server for ``app`` (run it with ``.run(sockets=[sock])`` or ``await .serve()``)."""
    for name, value in (("timeout_keep_alive", timeout_keep_alive),
                        ("timeout_request_read", timeout_request_read)):
        if not value > 0:
            raise ValueError(f"{name} = {value!r} is invalid: allowed a number of seconds > 0")
    if not shutdown_grace >= 0:
        raise ValueError(f"shutdown_grace = {shutdown_grace!r} is invalid: allowed >= 0 seconds")
    protocol = type("TimedH11Protocol", (TimedH11Protocol,),
                    {"timeout_request_read": float(timeout_request_read)})
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, http=protocol,
                            timeout_keep_alive=timeout_keep_alive,
                            timeout_graceful_shutdown=flush_s)
    return GracefulServer(config, drain, shutdown_grace)


def listen(host: str, port: int) -> socket.socket:
    """A bound listening socket (fails fast, before the models load). Its protocol is named
    (IPPROTO_TCP) because asyncio turns Nagle's algorithm off only on accepted sockets that say so:
    with proto 0 every response written in two parts (headers, then body or each SSE event) would wait
    for the client's delayed ACK, 40 ms on Linux."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock
