"""OpenAI-compatible server (``ssdcore serve``) driven by the official ``openai`` client.

One uvicorn server on a free 127.0.0.1 port, in a background thread, serves the bundled pair for the
whole module (shut down by the fixture). Greedy answers must equal ``Engine.generate`` on the same
engine; 16 concurrent streams must come back complete and independent; bad requests get 400 with an
OpenAI error body and leave the server serving; a client that disconnects mid-stream frees its
sequence (``ssdcore_requests_cancelled_total`` rises, ``ssdcore_requests_running`` returns to 0).
Every wait is bounded in count and time.
"""
import concurrent.futures
import re
import socket
import threading
import time

import httpx
import openai
import pytest

import ssdcore
from ssdcore import SamplingParams

MODEL = "ssdcore-bundled"
PROMPTS = ["def fibonacci(n):", "import os\n", "class Stack:\n", "for i in range(", "def parse_args(",
           "    return self.", "with open(path) as f:\n", "if __name__ == ", "try:\n    import ",
           "def __init__(self, ", "raise ValueError(", "# Copyright", "x = [i * i for i in ",
           "def test_", "while True:\n", "from collections import "]


@pytest.fixture(scope="module")
def engine():
    with ssdcore.Engine() as e:
        yield e


@pytest.fixture(scope="module")
def base_url(engine):
    import uvicorn

    from ssdcore.server import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine, MODEL), log_level="warning",
                                           timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server did not come up in 30 s"
        time.sleep(0.1)
    yield url
    server.should_exit = True
    thread.join(timeout=20)
    sock.close()
    assert not thread.is_alive(), "server did not shut down"


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", timeout=60, max_retries=0)


def greedy(engine, prompt, max_tokens=16, **kw):
    return engine.generate(prompt, SamplingParams(temperature=0, max_tokens=max_tokens, **kw))[0]


def chat_prompt(engine, messages):
    return engine.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def scrape(base_url) -> dict:
    """``/metrics`` as {'name{labels}': value}."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_models_health_metrics(base_url, client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert httpx.get(f"{base_url}/health", timeout=5).json() == {"status": "ok"}
    r = httpx.get(f"{base_url}/metrics", timeout=10)
    assert r.headers["content-type"].startswith("text/plain")
    for family in ("requests_total", "requests_running", "time_to_first_token_seconds",
                   "inter_token_latency_seconds", "accept_length_mean", "position_acceptance_ratio",
                   "cache_hits_total", "cache_misses_total", "backup_use_total",
                   "draft_hidden_fraction", "prompt_tokens_total", "completion_tokens_total"):
        assert f"# TYPE ssdcore_{family} " in r.text, family
    assert re.search(r'^ssdcore_cache_misses_total\{position="0"\} \d+$', r.text, re.M)


def test_completion_greedy_equals_engine(engine, client):
    ref = greedy(engine, PROMPTS[0], 24)
    r = client.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=24, temperature=0)
    assert r.choices[0].text == ref.text
    assert r.choices[0].finish_reason == ref.finish_reason
    assert r.usage.prompt_tokens == len(ref.prompt_token_ids)
    assert r.usage.completion_tokens == len(ref.token_ids)
    assert r.model == MODEL and r.object == "text_completion"
    ids = engine.tokenizer.encode(PROMPTS[0], add_special_tokens=False)
    r = client.completions.create(model=MODEL, prompt=ids, max_tokens=8, temperature=0)
    assert ref.text.startswith(r.choices[0].text)
    assert r.usage.completion_tokens == min(8, len(ref.token_ids))


def test_completion_stream_with_usage(engine, client):
    ref = greedy(engine, PROMPTS[2], 24)
    chunks = list(client.completions.create(model=MODEL, prompt=PROMPTS[2], max_tokens=24,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == ref.text
    assert len([c for c in chunks if c.choices and c.choices[0].text]) >= 2  # really streamed
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == ref.finish_reason
    assert chunks[-1].usage.completion_tokens == len(ref.token_ids)
    assert chunks[-1].usage.prompt_tokens == len(ref.prompt_token_ids)


def test_chat_greedy_and_stream(engine, client):
    messages = [{"role": "system", "content": "You write Python."},
                {"role": "user", "content": "Sort a list of numbers."}]
    ref = greedy(engine, chat_prompt(engine, messages), 20)
    r = client.chat.completions.create(model=MODEL, messages=messages, max_completion_tokens=20,
                                       temperature=0)
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == ref.text
    assert r.choices[0].finish_reason == ref.finish_reason
    assert r.usage.prompt_tokens == len(ref.prompt_token_ids)
    assert r.usage.completion_tokens == len(ref.token_ids)
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, max_tokens=20,
                                                 temperature=0, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ref.text
    assert chunks[-1].choices[0].finish_reason == ref.finish_reason
    assert all(c.usage is None for c in chunks)  # no include_usage: no usage chunk
    parts = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in messages]
    r = client.chat.completions.create(model=MODEL, messages=parts, max_tokens=20, temperature=0)
    assert r.choices[0].message.content == ref.text  # content parts == plain string content


def test_stop_seed_and_sampling(engine, client):
    ref = greedy(engine, PROMPTS[1], 24, ignore_eos=True)
    starts = [i for i in range(len(ref.text) // 2, len(ref.text) - 3) if ref.text[i:i + 3].strip()]
    assert starts, f"no stop string to pick in {ref.text!r}"
    stop = ref.text[starts[0]:starts[0] + 3]
    r = client.completions.create(model=MODEL, prompt=PROMPTS[1], max_tokens=24, temperature=0,
                                  stop=[stop, "\x00never"], extra_body={"ignore_eos": True})
    assert r.choices[0].text == ref.text[:ref.text.index(stop)]
    assert r.choices[0].finish_reason == "stop"
    # Seeded sampling: only the first token is reproducible run to run with backup="auto" (later
    # tokens depend on which backup auto picked), so compare one sampled token per seed.
    for seed in (1, 2, 3, 1234):
        sp = SamplingParams(temperature=1.0, top_p=0.95, top_k=50, seed=seed, max_tokens=1)
        sampled = engine.generate(PROMPTS[3], sp)[0]
        r = client.completions.create(model=MODEL, prompt=PROMPTS[3], max_tokens=1, temperature=1.0,
                                      top_p=0.95, seed=seed, extra_body={"top_k": 50})
        assert r.choices[0].text == sampled.text, seed
        assert r.usage.completion_tokens == 1


def _stream_text(base_url, prompt, max_tokens):
    c = openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", timeout=90, max_retries=0)
    parts, finish = [], None
    for chunk in c.completions.create(model=MODEL, prompt=prompt, max_tokens=max_tokens,
                                      temperature=0, stream=True):
        parts.append(chunk.choices[0].text)
        finish = chunk.choices[0].finish_reason or finish
    return "".join(parts), finish


def test_sixteen_concurrent_streams(engine, base_url):
    refs = [greedy(engine, p, 12) for p in PROMPTS]  # one at a time: single-request results
    before = scrape(base_url)
    with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
        futures = [pool.submit(_stream_text, base_url, p, 12) for p in PROMPTS]
        # the event loop stays responsive while 16 streams hold request threads
        assert httpx.get(f"{base_url}/health", timeout=5).status_code == 200
        assert "ssdcore_requests_running" in httpx.get(f"{base_url}/metrics", timeout=5).text
        results = [f.result(timeout=120) for f in futures]
    for prompt, ref, (text, finish) in zip(PROMPTS, refs, results):
        assert text == ref.text, prompt
        assert finish == ref.finish_reason, prompt
    after = scrape(base_url)
    key = 'ssdcore_requests_total{endpoint="/v1/completions",status="ok"}'
    assert after[key] - before.get(key, 0) == len(PROMPTS)
    assert after["ssdcore_requests_running"] == 0
    assert after["ssdcore_completion_tokens_total"] - before["ssdcore_completion_tokens_total"] == \
        sum(len(r.token_ids) for r in refs)
    assert after["ssdcore_time_to_first_token_seconds_count"] >= len(PROMPTS)


BAD = [
    (b'{"model": "ssdcore-bundled", "prompt": "x",', None),                  # malformed JSON
    (b'[1, 2]', None),                                                        # not an object
    (b'{"prompt": "x"}', "model"),                                            # missing field
    (b'{"model": "ssdcore-bundled"}', "prompt"),
    (b'{"model": "ssdcore-bundled", "prompt": "x", "max_tokens": "many"}', "max_tokens"),
    (b'{"model": "ssdcore-bundled", "prompt": "x", "temperature": -0.5}', "temperature"),
    (b'{"model": "ssdcore-bundled", "prompt": "x", "top_p": 0}', "top_p"),
    (b'{"model": "gpt-4", "prompt": "x"}', "model"),                          # unknown model
    (b'{"model": "ssdcore-bundled", "prompt": "x", "n": 2}', "n"),
    (b'{"model": "ssdcore-bundled", "prompt": "x", "stop": [""]}', "stop"),
    (b'{"model": "ssdcore-bundled", "prompt": "x", "seed": -1}', "seed"),
    (b'{"model": "ssdcore-bundled", "prompt": "x", "max_tokens": 5000}', "max_tokens"),
    (b'{"model": "ssdcore-bundled", "prompt": "' + b"x = 1\\n" * 2000 + b'"}', "prompt"),
]


def test_bad_requests_get_400_and_server_keeps_serving(engine, base_url, client):
    for body, param in BAD:
        r = httpx.post(f"{base_url}/v1/completions", content=body, timeout=30,
                       headers={"content-type": "application/json"})
        assert r.status_code == 400, (body[:60], r.text)
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["message"], body[:60]
        assert err["param"] == param and "code" in err, (body[:60], err)
    r = httpx.post(f"{base_url}/v1/chat/completions", json={"model": MODEL, "messages": []}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                       temperature=-1)
    assert info.value.status_code == 400
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="x", stream=True, max_tokens=4000)
    ref = greedy(engine, PROMPTS[4], 8)
    assert client.completions.create(model=MODEL, prompt=PROMPTS[4], max_tokens=8,
                                     temperature=0).choices[0].text == ref.text


def wait_for_one_cancel(base_url, before: dict) -> dict:
    """Scrape /metrics until exactly one more /v1/completions request is counted as cancelled and none
    is running (30 s at most); returns that scrape."""
    key = 'ssdcore_requests_cancelled_total{endpoint="/v1/completions"}'
    deadline = time.monotonic() + 30
    while True:
        m = scrape(base_url)
        if m.get(key, 0) == before.get(key, 0) + 1 and m["ssdcore_requests_running"] == 0:
            return m
        assert time.monotonic() < deadline, f"request not cancelled in 30 s: {m.get(key)}"
        time.sleep(0.2)


def test_disconnect_mid_stream_cancels_request(engine, base_url):
    ref = greedy(engine, PROMPTS[5], 24)
    before = scrape(base_url)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        other = pool.submit(_stream_text, base_url, PROMPTS[5], 24)
        body = {"model": MODEL, "prompt": PROMPTS[6], "max_tokens": 800, "temperature": 0,
                "stream": True, "ignore_eos": True}
        with httpx.Client(timeout=60) as http:
            with http.stream("POST", f"{base_url}/v1/completions", json=body) as r:
                assert r.status_code == 200
                first = next(line for line in r.iter_lines() if line.startswith("data: "))
                assert '"text_completion"' in first
        assert other.result(timeout=120) == (ref.text, ref.finish_reason)  # others unaffected
    m = wait_for_one_cancel(base_url, before)
    ok = 'ssdcore_requests_total{endpoint="/v1/completions",status="ok"}'
    assert m[ok] == before[ok] + 1  # only the other request completed
    committed = "ssdcore_engine_tokens_committed_total"
    assert m[committed] - before[committed] < 400  # the cancelled one stopped early
    assert client_still_serves(engine, base_url)


def test_disconnect_while_waiting_for_full_answer_cancels(engine, base_url):
    before = scrape(base_url)
    body = {"model": MODEL, "prompt": PROMPTS[8], "max_tokens": 800, "temperature": 0,
            "ignore_eos": True}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up on a non-streamed answer
        httpx.post(f"{base_url}/v1/completions", json=body, timeout=httpx.Timeout(30, read=1.0))
    wait_for_one_cancel(base_url, before)
    assert client_still_serves(engine, base_url)


def client_still_serves(engine, base_url) -> bool:
    r = httpx.post(f"{base_url}/v1/completions", timeout=60,
                   json={"model": MODEL, "prompt": PROMPTS[7], "max_tokens": 6, "temperature": 0})
    return r.status_code == 200 and r.json()["choices"][0]["text"] == greedy(engine, PROMPTS[7], 6).text


def test_cli_serve_arguments():
    from ssdcore.cli import build_parser

    args = build_parser().parse_args(["serve", "--port", "8123", "--max-batch", "4", "--K", "3"])
    assert (args.host, args.port, args.max_batch, args.K, args.model_name) == ("127.0.0.1", 8123, 4,
                                                                              3, None)
    for bad in (["serve", "--port", "70000"], ["serve", "--max-batch", "0"]):
        with pytest.raises(SystemExit) as info:
            build_parser().parse_args(bad)
        assert info.value.code == 2
