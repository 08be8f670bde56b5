"""End-to-end load on ``ssdcore serve``: concurrent streaming clients, with and without an API key, and
``/health`` latency while a maximum-size prompt is tokenized.

Usage:
    python benchmarks/bench_server.py [--clients 64] [--max-tokens 256] [--max-batch 8]
                                      [--out bench_results/bench_server.json]

For each setting (no API key, then ``--api-key`` through ``SSDCORE_API_KEY``) it starts
``python -m ssdcore serve`` (bundled pair, default settings, ``--max-batch``) on a free port as a
subprocess, and:

1. (first setting only) asks for each of ``--clients`` distinct held-out stdlib prompts alone, one at
   a time (greedy, ``ignore_eos``, ``--max-tokens``): the single-request references;
2. streams all of them at once from one asyncio client (one connection each) and checks that every
   output equals its prompt's reference; reports p50/p99 request latency (send to ``[DONE]``), median
   time to first chunk and aggregate completion tokens/s (all tokens / wall time of the burst);
3. (first setting only) sends one body just under ``--max-request-bytes`` (a text prompt, rejected
   after tokenization as longer than the context) and meanwhile GETs ``/health`` one after another:
   median and max latency of those GETs, against an idle baseline.

Prints a table and writes the figures as JSON. CPU heavy: the server and the clients share the machine.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from ssdcore.bench.prompts import stdlib_prompts  # noqa: E402

MODEL = "ssdcore-bundled"
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]  # else Nagle + delayed ACK add 40 ms per request
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # the server's default --max-request-bytes


class Server:
    """``ssdcore serve`` in a subprocess; stopped with SIGTERM."""

    def __init__(self, max_batch: int, api_key: str | None):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "python"), env.get("PYTHONPATH")]))
        env.pop("SSDCORE_API_KEY", None)
        if api_key:
            env["SSDCORE_API_KEY"] = api_key
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.proc = subprocess.Popen([sys.executable, "-m", "ssdcore", "serve", "--port", str(port),
                                      "--max-batch", str(max_batch), "--log-level", "warning"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ssdcore serve exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/health", timeout=10).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("ssdcore serve did not come up in 300 s")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def body(prompt: str, max_tokens: int, stream: bool) -> dict:
    b = {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
         "ignore_eos": True, "stream": stream}
    if stream:
        b["stream_options"] = {"include_usage": True}
    return b


def references(server: Server, prompts: list, max_tokens: int) -> list:
    out = []
    with httpx.Client(timeout=600, headers=server.headers,
                      transport=httpx.HTTPTransport(socket_options=NODELAY)) as http:
        for p in prompts:
            r = http.post(f"{server.url}/v1/completions", json=body(p, max_tokens, False))
            r.raise_for_status()
            out.append(r.json()["choices"][0]["text"])
    return out


async def one_stream(http: httpx.AsyncClient, url: str, prompt: str, max_tokens: int) -> dict:
    t0 = time.perf_counter()
    first, parts, tokens = None, [], 0
    async with http.stream("POST", f"{url}/v1/completions", json=body(prompt, max_tokens, True)) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"stream ended with an error: {chunk['error']}")
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if not chunk["choices"]:
                continue
            if first is None:
                first = time.perf_counter() - t0
            parts.append(chunk["choices"][0]["text"])
    return {"text": "".join(parts), "latency": time.perf_counter() - t0, "ttft": first,
            "tokens": tokens}


async def burst(server: Server, prompts: list, max_tokens: int) -> tuple:
    limits = httpx.Limits(max_connections=len(prompts) + 4, max_keepalive_connections=len(prompts))
    transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=NODELAY)
    async with httpx.AsyncClient(timeout=600, headers=server.headers, transport=transport) as http:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one_stream(http, server.url, p, max_tokens) for p in prompts))
        return results, time.perf_counter() - t0


def pct(values: list, q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def concurrent_run(server: Server, prompts: list, refs: list, max_tokens: int) -> dict:
    asyncio.run(burst(server, prompts[:2], 8))  # warm-up
    results, wall = asyncio.run(burst(server, prompts, max_tokens))
    mismatches = [i for i, (r, ref) in enumerate(zip(results, refs)) if r["text"] != ref]
    latencies = [r["latency"] for r in results]
    return {"clients": len(prompts), "max_tokens": max_tokens, "wall_s": wall,
            "p50_latency_s": pct(latencies, 0.5), "p99_latency_s": pct(latencies, 0.99),
            "median_ttft_s": statistics.median(r["ttft"] for r in results),
            "completion_tokens": sum(r["tokens"] for r in results),
            "tokens_per_s": sum(r["tokens"] for r in results) / wall,
            "outputs_equal_single_request": not mismatches, "mismatches": mismatches}


def health_probe(server: Server, stop: threading.Event | None, count: int | None = None) -> list:
    times = []
    with httpx.Client(timeout=120, transport=httpx.HTTPTransport(socket_options=NODELAY)) as http:
        while (stop is None or not stop.is_set()) and (count is None or len(times) < count):
            t0 = time.perf_counter()
            assert http.get(f"{server.url}/health").status_code == 200
            times.append(time.perf_counter() - t0)
    return times


def health_during_big_prompt(server: Server) -> dict:
    idle = health_probe(server, None, count=50)
    unit = "    return self._cache.get(key, default)\n"
    envelope = json.dumps(body("", 1, False)).encode()
    unit_bytes = len(json.dumps(unit)) - 2  # as escaped in the JSON body
    text = unit * ((MAX_REQUEST_BYTES - len(envelope) - 1024) // unit_bytes)
    payload = json.dumps(body(text, 1, False)).encode()
    assert len(payload) < MAX_REQUEST_BYTES
    done, answer = threading.Event(), {}

    def big():
        t0 = time.perf_counter()
        r = httpx.post(f"{server.url}/v1/completions", content=payload, timeout=600,
                       headers=dict(server.headers, **{"content-type": "application/json"}))
        answer.update(status=r.status_code, seconds=time.perf_counter() - t0)
        done.set()

    thread = threading.Thread(target=big)
    thread.start()
    busy = health_probe(server, done)
    thread.join()
    return {"body_bytes": len(payload), "big_request_status": answer["status"],
            "big_request_s": answer["seconds"], "probes": len(busy),
            "health_median_ms": statistics.median(busy) * 1e3 if busy else None,
            "health_max_ms": max(busy) * 1e3 if busy else None,
            "idle_health_median_ms": statistics.median(idle) * 1e3,
            "idle_health_max_ms": max(idle) * 1e3}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "bench_results" / "bench_server.json"))
    args = ap.parse_args()
    prompts = stdlib_prompts(args.clients)
    assert len(set(prompts)) == args.clients, "prompts are not distinct"
    result = {"settings": vars(args), "runs": {}}
    refs = None
    for name, key in (("no api key", None), ("api key", "bench-key-0123456789")):
        server = Server(args.max_batch, key)
        try:
            if refs is None:
                t0 = time.perf_counter()
                refs = references(server, prompts, args.max_tokens)
                result["single_request_s"] = time.perf_counter() - t0
            result["runs"][name] = concurrent_run(server, prompts, refs, args.max_tokens)
            if key is None:
                result["health_during_big_prompt"] = health_during_big_prompt(server)
        finally:
            server.stop()
    print(f"{args.clients} streaming clients x {args.max_tokens} tokens, --max-batch {args.max_batch}")
    print(f"{'setting':<12} {'p50 s':>7} {'p99 s':>7} {'ttft s':>7} {'tok/s':>8}  outputs == single")
    for name, r in result["runs"].items():
        print(f"{name:<12} {r['p50_latency_s']:7.2f} {r['p99_latency_s']:7.2f} {r['median_ttft_s']:7.2f} "
              f"{r['tokens_per_s']:8.1f}  {r['outputs_equal_single_request']}")
    h = result["health_during_big_prompt"]
    print(f"/health while a {h['body_bytes'] / 2**20:.2f} MiB prompt is tokenized "
          f"({h['big_request_s']:.1f} s, answer {h['big_request_status']}): {h['probes']} GETs, "
          f"median {h['health_median_ms']:.1f} ms, "
          f"max {h['health_max_ms']:.1f} ms (idle: median {h['idle_health_median_ms']:.1f} ms, "
          f"max {h['idle_health_max_ms']:.1f} ms)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0 if all(r["outputs_equal_single_request"] for r in result["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
