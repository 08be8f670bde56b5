"""``ssdcore serve`` against careless and hostile clients: CPU work off the event loop, the body limit,
the admission limit, the API key, connection timeouts, and 500s that leak nothing.

Each case runs its own app (``create_app`` around the module's bundled-pair engine, often wrapped in
``GatedEngine`` to hold requests at a known point) on a free port in a thread. Nothing here depends on
the machine's speed: requests are held with events, and every wait is for something that must happen,
bounded by a generous safety limit.
"""
import concurrent.futures
import json
import logging
import re

import httpx
import openai
import pytest

import ssdcore
from _server_util import (SAFETY_S, BlockingTokenizer, GatedEngine, raw_connection, read_until_closed,
                          request_bytes, running)

MODEL = "ssdcore-bundled"
SMALL = {"model": MODEL, "prompt": "def f(x):", "max_tokens": 4, "temperature": 0}


@pytest.fixture(scope="module")
def engine():
    with ssdcore.Engine() as e:
        yield e


def post(url, body, path="/v1/completions", **kw):
    return httpx.post(f"{url}{path}", json=body, timeout=SAFETY_S, **kw)


def response_head(data: bytes):
    """(status, headers dict, body bytes) of one raw HTTP/1.1 response."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return status, headers, body


# ---------------------------------------------------------------- 1. CPU work off the event loop
@pytest.mark.parametrize("path, body", [
    ("/v1/completions", {"model": MODEL, "prompt": "x = 1\n" * 50, "max_tokens": 2}),
    ("/v1/chat/completions", {"model": MODEL, "max_tokens": 2,
                              "messages": [{"role": "user", "content": "Sort a list."}]}),
])
def test_tokenization_does_not_block_health(engine, path, body):
    """encode blocks until /health has answered: on the event loop, /health could never answer."""
    from ssdcore.serve.server import create_app

    tok = BlockingTokenizer(engine.tokenizer)
    app = create_app(GatedEngine(engine, tokenizer=tok), MODEL)
    with running(app) as url, concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            pending = pool.submit(post, url, body, path)
            assert tok.entered.wait(SAFETY_S), "the prompt never reached the tokenizer"
            assert httpx.get(f"{url}/health", timeout=SAFETY_S).json() == {"status": "ok"}
            assert httpx.get(f"{url}/metrics", timeout=SAFETY_S).status_code == 200
        finally:
            tok.release.set()
        assert pending.result(timeout=SAFETY_S).status_code == 200


# ---------------------------------------------------------------- 2. request-body limit
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def limited_url(engine):
    from ssdcore.serve.server import create_app

    with running(create_app(engine, MODEL, max_request_bytes=LIMIT)) as url:
        yield url


def test_declared_body_over_the_limit_gets_413_before_it_is_sent(limited_url):
    sock = raw_connection(limited_url)
    # 50 MB announced, none of it sent: a server that buffered first would wait for ever
    sock.sendall(request_bytes("POST", "/v1/completions", b"", {"Content-Type": "application/json"})
                 .replace(b"Content-Length: 0", b"Content-Length: 50000000"))
    status, headers, body = response_head(read_until_closed(sock))
    sock.close()
    assert status == 413 and headers["connection"] == "close"
    err = json.loads(body)["error"]
    assert err["code"] == "request_too_large" and str(LIMIT) in err["message"]
    assert re.fullmatch(r"req-[0-9a-f]{24}", headers["x-request-id"])


def test_chunked_body_over_the_limit_gets_413_while_it_arrives(limited_url):
    sock = raw_connection(limited_url)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"a" * 4096
    for _ in range(LIMIT // len(piece) + 1):  # just past the limit, and the body never ends
        sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    status, headers, body = response_head(read_until_closed(sock))
    sock.close()
    assert status == 413 and json.loads(body)["error"]["code"] == "request_too_large"


def test_body_just_under_the_limit_is_served(limited_url):
    body = dict(SMALL)
    body["padding"] = ""  # unknown fields are ignored
    body["padding"] = "p" * (LIMIT - len(json.dumps(body)) - 10)
    r = post(limited_url, body)
    assert r.status_code == 200, r.text
    assert httpx.get(f"{limited_url}/metrics", timeout=SAFETY_S).status_code == 200


def test_default_limit_fits_a_max_context_prompt(engine):
    from ssdcore.serve.server_guard import DEFAULT_MAX_REQUEST_BYTES

    # a 32k-token context at 16 characters a token, each character escaped as \uXXXX in the JSON
    assert DEFAULT_MAX_REQUEST_BYTES >= 32768 * 16 * 6 >= engine.config.max_context * 16 * 6


# ---------------------------------------------------------------- 3. admission limit
def test_requests_past_max_queue_get_429(engine):
    from ssdcore.serve.server import create_app

    gated = GatedEngine(engine)
    gated.gate.clear()
    app = create_app(gated, MODEL, max_queue=2)
    with running(app) as url, concurrent.futures.ThreadPoolExecutor(2) as pool:
        try:
            held = [pool.submit(post, url, SMALL) for _ in range(2)]
            gated.wait_entered(2)  # both admitted and in the engine's hands
            r = post(url, SMALL)
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            err = r.json()["error"]
            assert err["code"] == "queue_full" and "2" in err["message"]
            r = post(url, {"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
                     "/v1/chat/completions")
            assert r.status_code == 429
            assert httpx.get(f"{url}/health", timeout=SAFETY_S).status_code == 200
        finally:
            gated.gate.set()
        assert [f.result(timeout=SAFETY_S).status_code for f in held] == [200, 200]
        assert post(url, SMALL).status_code == 200  # the slots came back
        text = httpx.get(f"{url}/metrics", timeout=SAFETY_S).text
        assert 'ssdcore_requests_total{endpoint="/v1/completions",status="rejected"} 1.0' in text
        assert "ssdcore_requests_admitted 0.0" in text


# ---------------------------------------------------------------- 4. API key
def test_api_key_guards_v1_only(engine):
    from ssdcore.serve.server import create_app

    with running(create_app(engine, MODEL, api_key="s3cret")) as url:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                        {"Authorization": "Bearer s3cretX"}, {"Authorization": "Bearer"}):
            for method, path in (("GET", "/v1/models"), ("POST", "/v1/completions")):
                r = httpx.request(method, f"{url}{path}", json=SMALL, headers=headers,
                                  timeout=SAFETY_S)
                assert r.status_code == 401, (headers, path)
                assert r.json()["error"]["code"] == "invalid_api_key"
        for path in ("/health", "/metrics"):  # open, as vLLM's are
            assert httpx.get(f"{url}{path}", timeout=SAFETY_S).status_code == 200
        good = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", timeout=SAFETY_S, max_retries=0)
        assert good.completions.create(**SMALL).usage.completion_tokens >= 1
        bad = openai.OpenAI(base_url=f"{url}/v1", api_key="nope", timeout=SAFETY_S, max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()


def test_api_key_from_the_environment(monkeypatch):
    from ssdcore.cli import build_parser

    monkeypatch.setenv("SSDCORE_API_KEY", "from-env")
    assert build_parser().parse_args(["serve"]).api_key == "from-env"
    assert build_parser().parse_args(["serve", "--api-key", "flag"]).api_key == "flag"
    monkeypatch.delenv("SSDCORE_API_KEY")
    assert build_parser().parse_args(["serve"]).api_key is None


# ---------------------------------------------------------------- 5. connection timeouts
def test_idle_and_incomplete_connections_are_closed(engine):
    from ssdcore.serve.server import create_app

    app = create_app(engine, MODEL)
    with running(app, timeout_request_read=1.0, timeout_keep_alive=0.5) as url:
        silent = raw_connection(url)                      # connects, sends nothing
        half_head = raw_connection(url)
        half_head.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        half_body = raw_connection(url)
        half_body.sendall(request_bytes("POST", "/v1/completions", b"{}")
                          .replace(b"Content-Length: 2", b"Content-Length: 100"))
        idle = raw_connection(url)                        # one request, then idle (keep-alive)
        idle.sendall(request_bytes("GET", "/health"))
        slow_second = raw_connection(url)                 # one request, then half of a second one
        slow_second.sendall(request_bytes("GET", "/health") + b"GET /health HTTP/1.1\r\n")
        for name, sock in (("silent", silent), ("half head", half_head), ("half body", half_body)):
            assert read_until_closed(sock) == b"", name  # closed without an answer
        for name, sock in (("idle", idle), ("slow second", slow_second)):
            data = read_until_closed(sock)
            assert data.count(b"HTTP/1.1 200") == 1, (name, data)
        for sock in (silent, half_head, half_body, idle, slow_second):
            sock.close()
        assert httpx.get(f"{url}/health", timeout=SAFETY_S).status_code == 200


def test_cli_timeouts_and_limits():
    from ssdcore.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.max_request_bytes, args.max_queue, args.timeout_keep_alive,
            args.timeout_request_read, args.shutdown_grace) == (4 * 1024 * 1024, 256, 5.0, 30.0, 10.0)
    args = build_parser().parse_args(["serve", "--shutdown-grace", "0", "--timeout-request-read", "2.5",
                                      "--max-queue", "3", "--max-request-bytes", "1000"])
    assert (args.shutdown_grace, args.timeout_request_read, args.max_queue,
            args.max_request_bytes) == (0.0, 2.5, 3, 1000)
    for bad in (["serve", "--max-queue", "0"], ["serve", "--shutdown-grace", "-1"],
                ["serve", "--timeout-keep-alive", "0"], ["serve", "--max-request-bytes", "x"]):
        with pytest.raises(SystemExit) as info:
            build_parser().parse_args(bad)
        assert info.value.code == 2


# ---------------------------------------------------------------- 7. errors leak nothing
SECRET = "boom at cpp/engine.cpp:42 submit(): incompatible function arguments"


@pytest.mark.parametrize("where", ["before the first delta", "after the first delta", "tokenizer"])
def test_internal_errors_name_only_the_request_id(engine, caplog, where):
    from ssdcore.serve.server import create_app

    class CrashingTokenizer(BlockingTokenizer):
        def encode(self, text, **kwargs):
            raise RuntimeError(SECRET)

    gated = GatedEngine(engine, tokenizer=CrashingTokenizer(engine.tokenizer)
                        if where == "tokenizer" else None)
    if where == "before the first delta":
        gated.fail = RuntimeError(SECRET)
    elif where == "after the first delta":
        gated.fail_after_first = RuntimeError(SECRET)
    caplog.set_level(logging.ERROR)
    with running(create_app(gated, MODEL)) as url:
        r = post(url, dict(SMALL, max_tokens=40))
        request_id = r.headers["x-request-id"]
        assert r.status_code == 500, r.text
        err = r.json()["error"]
        assert err["type"] == "server_error" and request_id in err["message"]
        for leak in ("boom", "cpp", "submit(", "Traceback", "RuntimeError"):
            assert leak not in r.text
        assert any(request_id in rec.getMessage() and rec.exc_info for rec in caplog.records)
        if where == "after the first delta":  # in a stream: a final error event, then [DONE]
            r = post(url, dict(SMALL, max_tokens=40, stream=True))
            assert r.status_code == 200
            events = [ln[6:] for ln in r.text.splitlines() if ln.startswith("data: ")]
            assert events[-1] == "[DONE]" and "error" in json.loads(events[-2])
            assert r.headers["x-request-id"] in events[-2]
            for leak in ("boom", "cpp", "submit(", "Traceback", "RuntimeError"):
                assert leak not in r.text
        assert httpx.get(f"{url}/health", timeout=SAFETY_S).status_code == 200


def test_engine_validation_errors_are_400(engine):
    from ssdcore.serve.server import create_app

    with running(create_app(engine, MODEL)) as url:
        r = post(url, {"model": MODEL, "prompt": [1, 2, 7000], "max_tokens": 2})
        assert r.status_code == 400
        assert "7000" in r.json()["error"]["message"]


# ---------------------------------------------------------------- the listening socket
def test_accepted_connections_have_nagle_off():
    """asyncio turns Nagle off only on accepted sockets whose protocol is named IPPROTO_TCP; with it
    on, each response written in two parts waits for the client's delayed ACK (40 ms on Linux)."""
    import asyncio
    import socket

    from ssdcore.serve.server_http import listen

    async def accepted_nodelay() -> int:
        seen = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        sock = listen("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        client = socket.create_connection(sock.getsockname(), timeout=SAFETY_S)
        try:
            return await asyncio.wait_for(seen, SAFETY_S)
        finally:
            client.close()
            server.close()

    assert asyncio.run(accepted_nodelay()) != 0


# ---------------------------------------------------------------- 8. a closed engine is a 503
def test_engine_closed_error_is_503_not_500(engine):
    from ssdcore.engine.errors import EngineClosedError
    from ssdcore.serve.server import create_app

    gated = GatedEngine(engine)
    with running(create_app(gated, MODEL)) as url:
        gated.fail = EngineClosedError("the engine was closed before the request finished")
        r = post(url, SMALL)
        assert r.status_code == 503 and r.json()["error"]["code"] == "shutting_down"
        gated.fail, gated.fail_after_first = None, EngineClosedError("closed")
        r = post(url, dict(SMALL, max_tokens=40, stream=True))
        events = [ln[6:] for ln in r.text.splitlines() if ln.startswith("data: ")]
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["error"]["code"] == "shutting_down"
        text = httpx.get(f"{url}/metrics", timeout=SAFETY_S).text
        assert 'ssdcore_requests_total{endpoint="/v1/completions",status="aborted"} 2.0' in text
