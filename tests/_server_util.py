"""Test helpers for the HTTP server: run an app in a thread, hold requests at a gate, block the
tokenizer, talk raw HTTP over a socket.

Every wait here is for something that must happen, bounded by a generous safety limit (``SAFETY_S``)
that only a broken server reaches; nothing depends on how fast the machine is.
"""
from __future__ import annotations

import contextlib
import socket
import threading

import httpx
from _wait import wait_until  # noqa: F401 (part of this module's helpers)

SAFETY_S = 60.0  # _wait.wait_until's default limit


@contextlib.contextmanager
def running(app, **server_kwargs):
    """Serves ``app`` with ``ssdcore.serve.server_http.build_server`` on a free 127.0.0.1 port in a thread;
    yields the base URL; shuts the server down (graceful drain included) on exit."""
    from ssdcore.serve.server_http import build_server, listen

    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server_kwargs.setdefault("log_level", "warning")
    server = build_server(app, drain=app.state.ssd.drain, **server_kwargs)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return httpx.get(f"{url}/health", timeout=SAFETY_S).status_code == 200
        except httpx.TransportError:
            return False
    try:
        wait_until(up, "server up", poll=0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=SAFETY_S)
        sock.close()
        assert not thread.is_alive(), "server did not shut down"


class GatedEngine:
    """Wraps a real Engine for ``create_app``: each held ``stream`` waits at ``gate`` before it reaches
    the engine and at ``after_first`` after its first delta (both open unless cleared), and may fail
    on purpose.

    ``held(sp)`` picks the requests the gates apply to (default: all). ``entered``: held streams that
    reached the first gate; ``closed_early``: streams closed before they returned (the server cancelled
    them). ``fail``: raised at the gate; ``fail_after_first``: raised after the first delta.
    """

    def __init__(self, engine, tokenizer=None, held=lambda sp: True):
        self.engine, self.config, self.held = engine, engine.config, held
        self.tokenizer = tokenizer if tokenizer is not None else engine.tokenizer
        self.gate, self.after_first = threading.Event(), threading.Event()
        self.gate.set()
        self.after_first.set()
        self.fail = self.fail_after_first = None
        self._cond = threading.Condition()
        self.entered = self.closed_early = 0

    @property
    def _closed(self):
        return self.engine._closed

    def stats(self):
        return self.engine.stats()

    def wait_entered(self, n: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.entered >= n, SAFETY_S), \
                f"{n} request(s) did not reach the engine"

    def stream(self, ids, sp):
        held = self.held(sp)
        if held:
            with self._cond:
                self.entered += 1
                self._cond.notify_all()
            assert self.gate.wait(SAFETY_S * 2), "gate never opened"
        if self.fail is not None:
            raise self.fail
        inner = self.engine.stream(ids, sp)
        finished = False
        try:
            yield next(inner)
            if self.fail_after_first is not None:
                raise self.fail_after_first
            if held:
                assert self.after_first.wait(SAFETY_S * 2), "after_first never opened"
            out = yield from inner
            finished = True
            return out
        finally:
            if not finished:
                inner.close()
                with self._cond:
                    self.closed_early += 1


class BlockingTokenizer:
    """A tokenizer whose ``encode`` sets ``entered`` and then waits for ``release``."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.chat_template = getattr(tokenizer, "chat_template", None)
        self.entered, self.release = threading.Event(), threading.Event()

    def apply_chat_template(self, *args, **kwargs):
        return self.tokenizer.apply_chat_template(*args, **kwargs)

    def encode(self, text, **kwargs):
        self.entered.set()
        assert self.release.wait(SAFETY_S * 2), "tokenizer never released"
        return self.tokenizer.encode(text, **kwargs)


def raw_connection(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=SAFETY_S)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (b'' on a clean close)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def request_bytes(method: str, path: str, body: bytes = b"", headers: dict = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
