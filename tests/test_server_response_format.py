"""Structured output through the HTTP server, up to the engine: OpenAI's ``response_format`` and vLLM's
``guided_json`` / ``guided_regex`` / ``guided_grammar`` / ``guided_choice`` become the request's
SamplingParams.response_format; an invalid schema, regex or grammar, two constraints at once, or an
error the engine raises while registering the constraint, is a 400 naming the field, and the server
keeps serving. The engine here is a stand-in that records what reaches it (no runtime needed);
tests/test_structured_output.py runs real constrained generation.
"""
from __future__ import annotations

import threading

import httpx
import pytest

pytest.importorskip("llguidance")
pytest.importorskip("fastapi")

from _server_util import running  # noqa: E402
from ssdcore.engine.engine_config import EngineConfig  # noqa: E402

MODEL = "ssdcore-bundled"
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


class RecordingEngine:
    """Enough of an Engine for create_app: each stream() records its SamplingParams and fails the
    way the engine's own validation does (ValueError), so every request ends in a 400 we can read."""

    def __init__(self, tokenizer):
        self.config, self.tokenizer, self._closed = EngineConfig(max_batch=2), tokenizer, False
        self.seen, self.lock = [], threading.Lock()

    def stats(self):
        raise AssertionError("not scraped here")

    def stream(self, ids, sp):
        with self.lock:
            self.seen.append(sp)
        raise ValueError("recorded: response_format does not compile for this tokenizer")
        yield  # a generator, like Engine.stream


@pytest.fixture(scope="module")
def engine():
    from transformers import AutoTokenizer

    from ssdcore.models.bundled import bundled_pair

    return RecordingEngine(AutoTokenizer.from_pretrained(str(bundled_pair()[0])))


@pytest.fixture(scope="module")
def base_url(engine):
    from ssdcore.serve.server import create_app

    with running(create_app(engine, MODEL)) as url:
        yield url


def post(base_url, **fields):
    body = {"model": MODEL, "prompt": "x", "max_tokens": 4, **fields}
    return httpx.post(f"{base_url}/v1/completions", json=body, timeout=60)


@pytest.mark.parametrize("fields, kind, source", [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}}},
     "json_schema", '"required": ["a"]'),
    ({"response_format": {"type": "json_object"}}, "json_object", "{}"),
    ({"response_format": {"type": "regex", "regex": "[0-9]+"}}, "regex", "[0-9]+"),
    ({"guided_json": SCHEMA}, "json_schema", '"required": ["a"]'),
    ({"guided_json": '{"type": "string"}'}, "json_schema", '"string"'),
    ({"guided_regex": "(yes|no)"}, "regex", "(yes|no)"),
    ({"guided_grammar": 'root ::= "yes" | "no"'}, "grammar", "root ::="),
    ({"guided_choice": ["a.b", "c"]}, "regex", r"a\.b|c"),
])
def test_constraints_reach_the_engine(engine, base_url, fields, kind, source):
    r = post(base_url, **fields)
    assert r.status_code == 400 and "recorded" in r.json()["error"]["message"], r.text
    rf = engine.seen[-1].response_format
    assert rf.type == kind and source in rf.source


def test_text_format_is_unconstrained(engine, base_url):
    r = post(base_url, response_format={"type": "text"})
    assert r.status_code == 400 and engine.seen[-1].response_format is None


BAD = [
    ({"response_format": {"type": "xml"}}, "response_format", "'xml'"),
    ({"response_format": {"type": "regex", "regex": "a(b"}}, "response_format", "unclosed group"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "foo"}}}},
     "response_format", "Invalid type: foo"),
    ({"response_format": {"type": "json_schema"}}, "response_format", "json_schema"),
    ({"response_format": "json"}, "response_format", "an object"),  # the schema's own type check
    ({"guided_json": "{not json"}, "guided_json", "JSON schema"),
    ({"guided_regex": "a(b"}, "guided_regex", "unclosed group"),
    ({"guided_grammar": "start: foo"}, "guided_grammar", 'unknown name: "foo"'),
    ({"guided_grammar": "root ::= (", }, "guided_grammar", "GBNF"),
    ({"guided_choice": []}, "guided_choice", "at least 1"),
    ({"guided_regex": "a", "guided_json": SCHEMA}, "guided_regex", "at most one"),
    ({"response_format": {"type": "json_object"}, "ignore_eos": True}, "ignore_eos", "response_format"),
]


@pytest.mark.parametrize("fields, param, words", BAD)
def test_invalid_constraints_are_400(engine, base_url, fields, param, words):
    before = len(engine.seen)
    r = post(base_url, **fields)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param, err
    assert words in err["message"], err["message"]
    assert len(engine.seen) == before  # refused before the engine


def test_chat_endpoint_takes_response_format(engine, base_url):
    if not getattr(engine.tokenizer, "chat_template", None):
        pytest.skip("the bundled tokenizer has no chat template")
    r = httpx.post(f"{base_url}/v1/chat/completions", timeout=60, json={
        "model": MODEL, "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA,
                                                                   "strict": True}}})
    assert r.status_code == 400 and engine.seen[-1].response_format.type == "json_schema"
