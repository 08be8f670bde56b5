"""Graceful SIGTERM of ``ssdcore serve``, run as a user runs it: ``python -m ssdcore serve`` in a
subprocess on a free port.

Every client whose request is live when SIGTERM arrives gets either its complete answer or, once the
shutdown grace has run out, a final SSE error event followed by ``data: [DONE]`` (streams) or a 503
OpenAI-style body (non-streamed): never a cut connection or a bare "Internal Server Error". The
server says how many requests it aborted; that must be exactly the number of error endings. The
process exits 0 without a traceback. Outcomes are checked on content, not on timing: a short grace
with 1000-token requests makes the aborts happen, a long grace with short requests lets them finish.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading

import httpx

from _server_util import SAFETY_S, wait_until

MODEL = "ssdcore-bundled"


class ServerProcess:
    def __init__(self, tmp_path, *args: str):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"serve-{self.port}.log"
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        with open(self.log, "wb") as log:  # a file, not a pipe: a full pipe would block the server
            self.proc = subprocess.Popen([sys.executable, "-m", "ssdcore", "-v", "serve", "--port",
                                          str(self.port), "--max-batch", "4", *args],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_until(self._up, "server up", limit=SAFETY_S * 3, poll=0.1)

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.output()
        try:
            return httpx.get(f"{self.url}/health", timeout=SAFETY_S).status_code == 200
        except httpx.TransportError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=SAFETY_S).text
        return float(re.search(r"^ssdcore_requests_running (\S+)$", text, re.M).group(1))

    def terminate_and_wait(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=SAFETY_S * 2)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


class StreamClient(threading.Thread):
    """One streamed completion; ``events`` holds every ``data:`` payload once the stream has ended."""

    def __init__(self, url: str, prompt: str, max_tokens: int):
        super().__init__(daemon=True)
        self.url, self.prompt, self.max_tokens = url, prompt, max_tokens
        self.first, self.ended = threading.Event(), threading.Event()
        self.events, self.failure = [], None

    def run(self):
        body = {"model": MODEL, "prompt": self.prompt, "max_tokens": self.max_tokens,
                "temperature": 0, "ignore_eos": True, "stream": True}
        try:
            with httpx.stream("POST", f"{self.url}/v1/completions", json=body,
                              timeout=SAFETY_S * 2) as r:
                assert r.status_code == 200, r.read()
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line[6:])
                        self.first.set()
        except Exception as e:  # a cut connection: reported by the test
            self.failure = e
        finally:
            self.first.set()
            self.ended.set()

    def outcome(self) -> str:
        """'complete' or 'aborted'; fails on anything else."""
        assert self.failure is None, f"stream broke: {self.failure!r} after {self.events[-2:]}"
        assert self.events and self.events[-1] == "[DONE]", self.events[-3:]
        last = json.loads(self.events[-2])
        if "error" in last:
            assert last["error"]["code"] == "shutting_down" and last["error"]["type"] == "server_error"
            return "aborted"
        assert last["choices"][0]["finish_reason"] == "length", last
        return "complete"


def full_answer(url: str, prompt: str, max_tokens: int, out: dict) -> None:
    body = {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "ignore_eos": True}
    try:
        out["response"] = httpx.post(f"{url}/v1/completions", json=body, timeout=SAFETY_S * 2)
    except Exception as e:
        out["failure"] = e


def full_outcome(out: dict) -> str:
    assert "failure" not in out, f"request broke: {out.get('failure')!r}"
    r = out["response"]
    assert "Internal Server Error" not in r.text
    if r.status_code == 503:
        err = r.json()["error"]
        assert err["code"] == "shutting_down" and err["type"] == "server_error"
        return "aborted"
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["finish_reason"] == "length"
    return "complete"


def all_admitted(server: ServerProcess, streams: list, full: dict) -> bool:
    """Every request is running or over (a job leaves the running gauge before its client sees the
    end, so none is missed; one may be counted twice, hence >=)."""
    running = server.running()
    return running + sum(s.ended.is_set() for s in streams) + bool(full) >= len(streams) + 1


def aborted_count(output: str) -> int:
    found = re.findall(r"drain done, (\d+) request\(s\) aborted", output)
    assert len(found) == 1, output[-3000:]
    return int(found[0])


def sigterm_with_live_requests(tmp_path, grace: str, prompts, max_tokens: int):
    """Two streams and one full answer, all admitted, then SIGTERM; (outcomes, exit status, output)."""
    server = ServerProcess(tmp_path, "--shutdown-grace", grace)
    streams = [StreamClient(server.url, p, max_tokens) for p in prompts[:2]]
    full: dict = {}
    waiter = threading.Thread(target=full_answer, args=(server.url, prompts[2], max_tokens, full),
                              daemon=True)
    for t in streams + [waiter]:
        t.start()
    for s in streams:
        assert s.first.wait(SAFETY_S), "no first chunk"
    wait_until(lambda: all_admitted(server, streams, full), "all requests admitted")
    rc = server.terminate_and_wait()
    for t in streams + [waiter]:
        t.join(SAFETY_S)
        assert not t.is_alive(), "a client never got the end of its answer"
    return [s.outcome() for s in streams] + [full_outcome(full)], rc, server.output()


def test_sigterm_after_the_grace_ends_live_requests_cleanly(tmp_path):
    # grace 0: the requests (1000 tokens each, just admitted) cannot finish first on any machine
    outcomes, rc, output = sigterm_with_live_requests(
        tmp_path, "0", ("def fibonacci(n):", "class Stack:\n", "import os\n"), 1000)
    assert rc == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert outcomes.count("aborted") == aborted_count(output) >= 1, (outcomes, output[-3000:])


def test_sigterm_lets_running_requests_finish_within_the_grace(tmp_path):
    outcomes, rc, output = sigterm_with_live_requests(
        tmp_path, str(SAFETY_S), ("def parse_args(", "with open(path) as f:\n", "while True:\n"), 200)
    assert outcomes == ["complete"] * 3
    assert rc == 0 and "Traceback" not in output, output[-3000:]
