"""Request models and response bodies of the OpenAI-compatible server (``ssdcore serve``).

Pydantic models validate the JSON of ``POST /v1/completions`` and ``POST /v1/chat/completions``
(types, widths; the sampling values' ranges are SamplingParams' own rules); :func:`parse_request` parses and validates a raw body in one step (the server runs it
off the event loop); :func:`sampling_params` turns a request into :class:`SamplingParams`, whose own
ValueErrors become HTTP 400 too. Unknown fields are ignored (as vLLM does); known OpenAI fields that
ssdcore cannot honour (``n`` > 1, ``logprobs``, ``echo``, penalties, tools...) are rejected with an
:class:`APIError` naming the field. Structured output: OpenAI's ``response_format`` (json_schema,
json_object, text, plus ssdcore's regex and grammar forms) or one of vLLM's ``guided_json``,
``guided_regex``, ``guided_grammar``, ``guided_choice``; :func:`response_format_of` compiles it (a 400
naming the field when it does not compile), on the preparation threads since a schema may be large.

Invariants: every integer that reaches the runtime is bounded here (token ids, counts and ``top_k`` fit
an int32, ``seed`` a uint64), so no request can make a binding raise instead of a 400; strings are
valid UTF-8 (the JSON parser rejects lone surrogates such as ``"\\ud800"``); chat roles are system,
user or assistant. Everything here is pure: no engine, no I/O, any thread.
"""
from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from ..engine.response_format import ResponseFormat, as_response_format, json_schema_format
from ..engine.sampling_params import SamplingParams


INT32_MAX = 2**31 - 1  # token ids and counts are int32 in the runtime
UINT64_MAX = 2**64 - 1
TokenId = Annotated[int, Field(ge=0, le=INT32_MAX)]
Count = Annotated[int, Field(ge=1, le=INT32_MAX)]
ROLES = ("system", "user", "assistant")  # tools are not supported, so neither is the tool role


class APIError(Exception):
    """An error answered with an OpenAI-style body: ``{"error": {message, type, param, code}}``."""

    def __init__(self, message: str, param: Optional[str] = None, status: int = 400,
                 type: str = "invalid_request_error", code: Optional[str] = None,
                 headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.message, self.param, self.status, self.type, self.code = message, param, status, type, code
        self.headers = headers

    def body(self) -> dict:
        return error_body(self.message, self.param, self.type, self.code)


def error_body(message: str, param: Optional[str] = None, type: str = "invalid_request_error",
               code: Optional[str] = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Common(BaseModel):
    """Fields shared by both endpoints (OpenAI names; ``top_k``, ``ignore_eos`` and
    ``stop_token_ids`` are vLLM-style extensions)."""
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    model: str
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    temperature: Optional[float] = None  # its range is SamplingParams' (one set of rules)
    top_p: Optional[float] = None
    top_k: Optional[int] = Field(None, ge=-1, le=INT32_MAX)
    max_tokens: Optional[Count] = None
    stop: Optional[Union[str, List[str]]] = None
    seed: Optional[int] = Field(None, ge=0, le=UINT64_MAX)
    n: Optional[int] = None
    logprobs: Any = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    logit_bias: Optional[Dict[str, float]] = None
    ignore_eos: bool = False
    stop_token_ids: Optional[List[TokenId]] = None
    response_format: Optional[Dict[str, Any]] = None
    guided_json: Optional[Union[Dict[str, Any], str]] = None  # vLLM's structured-output extras
    guided_regex: Optional[str] = None
    guided_grammar: Optional[str] = None
    guided_choice: Optional[List[str]] = Field(None, min_length=1)
    _constraint: Optional[ResponseFormat] = PrivateAttr(None)  # response_format_of(), compiled once


class CompletionRequest(_Common):
    prompt: Union[str, List[str], List[TokenId], List[List[TokenId]]]
    echo: bool = False
    best_of: Optional[int] = None
    suffix: Optional[str] = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal[ROLES]
    content: Optional[Union[str, List[Dict[str, Any]]]] = None


class ChatCompletionRequest(_Common):
    messages: List[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Optional[Count] = None
    tools: Optional[List[Any]] = None


def check_supported(req: _Common) -> None:
    """Rejects OpenAI options that ssdcore does not implement (400 naming the field)."""
    if req.n not in (None, 1):
        raise APIError(f"n = {req.n} is not supported: ssdcore returns one choice per request (n = 1)",
                       "n")
    if req.logprobs not in (None, False, 0):
        raise APIError("logprobs are not supported by ssdcore", "logprobs")
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(req, name) not in (None, 0):
            raise APIError(f"{name} is not supported by ssdcore: allowed 0 or absent", name)
    if req.logit_bias:
        raise APIError("logit_bias is not supported by ssdcore", "logit_bias")
    if isinstance(req, CompletionRequest):
        if req.echo:
            raise APIError("echo is not supported by ssdcore", "echo")
        if req.best_of not in (None, 1):
            raise APIError("best_of > 1 is not supported by ssdcore", "best_of")
        if req.suffix:
            raise APIError("suffix is not supported by ssdcore", "suffix")
    if isinstance(req, ChatCompletionRequest):
        if req.tools:
            raise APIError("tools are not supported by ssdcore", "tools")


GUIDED = ("response_format", "guided_json", "guided_regex", "guided_grammar", "guided_choice")


def response_format_of(req: _Common) -> Optional[ResponseFormat]:
    """The request's compiled constraint (None: unconstrained); APIError 400 naming the field. Also
    stored on the request, so that sampling_params() does not compile it again."""
    given = [name for name in GUIDED if getattr(req, name) is not None]
    if len(given) > 1:
        raise APIError(f"{' and '.join(given)} are given: allowed at most one of {', '.join(GUIDED)}",
                       given[1])
    name = given[0] if given else None
    value = getattr(req, name) if name else None
    try:
        if name == "guided_json":
            rf = json_schema_format(value)
        elif name == "guided_regex":
            rf = as_response_format({"type": "regex", "regex": value})
        elif name == "guided_grammar":
            rf = as_response_format({"type": "grammar", "grammar": value})
        elif name == "guided_choice":
            rf = as_response_format({"type": "regex", "regex": "|".join(_regex_escape(c) for c in value)})
        else:
            rf = as_response_format(value)
    except ValueError as e:
        raise APIError(f"{name}: {e}", name) from None
    req._constraint = rf
    return rf


def _regex_escape(text: str) -> str:
    """``text`` as a literal in llguidance's (Rust) regex syntax."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$#&-~" else c for c in text)


def completion_prompt(req: CompletionRequest) -> Union[str, List[int]]:
    """The single prompt of a completion request (text or token ids)."""
    p = req.prompt
    if isinstance(p, list) and len(p) == 1 and isinstance(p[0], (str, list)):
        p = p[0]
    if isinstance(p, list) and not all(isinstance(i, int) for i in p):
        raise APIError("only one prompt per request is supported: give a string or a list of token ids",
                       "prompt")
    if not p:
        raise APIError("prompt is empty", "prompt")
    return p


def chat_messages(req: ChatCompletionRequest) -> List[dict]:
    """Messages as plain dicts for ``apply_chat_template`` (text content parts are joined)."""
    out = []
    for i, m in enumerate(req.messages):
        content = m.content
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise APIError(f"messages[{i}].content: only text parts are supported",
                                   f"messages.{i}.content")
                parts.append(part["text"])
            content = "".join(parts)
        out.append({"role": m.role, "content": content or ""})
    return out


def sampling_params(req: _Common, max_tokens: int) -> SamplingParams:
    """SamplingParams for the request (OpenAI defaults: temperature 1, top_p 1)."""
    top_k = req.top_k or 0
    constraint = req._constraint if req._constraint is not None else response_format_of(req)
    try:
        return SamplingParams(
            temperature=1.0 if req.temperature is None else req.temperature,
            top_p=1.0 if req.top_p is None else req.top_p, top_k=max(top_k, 0),
            max_tokens=max_tokens, stop=req.stop or (), seed=req.seed, ignore_eos=req.ignore_eos,
            stop_token_ids=tuple(req.stop_token_ids or ()), response_format=constraint)
    except ValueError as e:
        msg = str(e)
        field = msg.split(" ", 1)[0].removeprefix("SamplingParams.")
        raise APIError(msg, field if field.isidentifier() else None) from None


def parse_request(model: type, body: bytes):
    """The validated ``model`` (a request class above) for a raw JSON body; APIError 400 otherwise."""
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        message, param = validation_message(e.errors(include_url=False))
        raise APIError(message, param) from None


def _is_union_tag(part) -> bool:
    """pydantic names the member of a union in an error's loc ('str', 'list[constrained-int]')."""
    return isinstance(part, str) and (not part.isidentifier() or part in ("str", "int", "float"))


def validation_message(errors: list):
    """(message, param) for a pydantic validation error (malformed JSON included). For a union field
    every member reports an error; the first that is not a plain type mismatch says the most."""
    if not errors:
        return "invalid request body", None
    err = next((e for e in errors if not e.get("type", "").endswith("_type")), errors[0])
    if err.get("type") == "json_invalid":
        return f"malformed JSON body: {err.get('ctx', {}).get('error', err.get('msg'))}", None
    loc = [p for p in err.get("loc", ()) if p != "body" and not _is_union_tag(p)]
    param = ".".join(str(p) for p in loc) or None
    where = f"{param}: " if param else "request body: "
    return f"{where}{err.get('msg', 'invalid value')}", param


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class ResponseShape:
    """Builds the bodies and stream chunks of one request; ``chat`` picks the endpoint's format."""

    def __init__(self, chat: bool, model: str, include_usage: bool = False):
        self.chat, self.model, self.include_usage = chat, model, include_usage
        self.id = new_id("chatcmpl" if chat else "cmpl")
        self.created = int(time.time())

    def _envelope(self, obj: str, choices: list) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "choices": choices}

    def full(self, text: str, finish_reason: str, prompt_tokens: int, completion_tokens: int) -> dict:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text},
                      "logprobs": None, "finish_reason": finish_reason}
            body = self._envelope("chat.completion", [choice])
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
            body = self._envelope("text_completion", [choice])
        body["usage"] = usage(prompt_tokens, completion_tokens)
        return body

    def chunk(self, delta: Optional[str], finish_reason: Optional[str] = None,
              role: bool = False) -> dict:
        if self.chat:
            d: dict = {"role": "assistant"} if role else {}
            if delta is not None:
                d["content"] = delta
            choice = {"index": 0, "delta": d, "logprobs": None, "finish_reason": finish_reason}
            body = self._envelope("chat.completion.chunk", [choice])
        else:
            choice = {"index": 0, "text": delta or "", "logprobs": None, "finish_reason": finish_reason}
            body = self._envelope("text_completion", [choice])
        if self.include_usage:
            body["usage"] = None
        return body

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict:
        body = self._envelope("chat.completion.chunk" if self.chat else "text_completion", [])
        body["usage"] = usage(prompt_tokens, completion_tokens)
        return body
