"""ResponseFormat: the constraint a request's output must satisfy (structured output), compiled to a
grammar for llguidance, the grammar engine that turns it into per-token masks (token_masker.py).

Engine choice: llguidance (MIT, no Python dependencies) compiles JSON schemas, regular expressions,
Lark grammars and GBNF (through its gbnf_to_lark) itself, rolls a matcher back by any number of tokens
(what speculative verification needs) and writes a bitmask straight to a raw pointer; vLLM and SGLang
use it. xgrammar needs torch/triton-specific builds and outlines-core has no context-free grammars.
ssdcore writes no grammar or JSON-schema compiler of its own.

Accepted forms (``as_response_format``), dicts as in OpenAI's API plus two of ours:
  {"type": "text"} or None                       no constraint
  {"type": "json_object"}                        any JSON object
  {"type": "json_schema", "json_schema": {"name": ..., "schema": {...}, "strict": bool}}
                                                 JSON valid against the schema ("schema" may also be a
                                                 JSON string; strict=True rejects keywords llguidance
                                                 does not implement, otherwise they are ignored)
  {"type": "regex", "regex": "..."}              text matching the regular expression (whole output)
  {"type": "grammar", "grammar": "...", "syntax": "lark" | "gbnf"}
                                                 text in the grammar's language (syntax: Lark or
                                                 GBNF/EBNF as llama.cpp writes it; absent = detected)
Each form is checked on construction (structure, then llguidance's own validation of the grammar,
without a tokenizer): a ValueError names what was wrong, what was given and what is allowed.

Invariants: a ResponseFormat is frozen and hashable; ``grammar`` is a grammar llguidance accepted.
Threads: pure values and functions, any thread. llguidance is imported on first use; without it,
every function here raises RuntimeError naming ``pip install 'ssdcore[structured]'``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional, Union

INSTALL_HINT = "pip install 'ssdcore[structured]'"
TYPES = ("text", "json_object", "json_schema", "regex", "grammar")
SYNTAXES = ("lark", "gbnf")
_ALLOWED = ('{"type": "text"}, {"type": "json_object"}, {"type": "json_schema", "json_schema": '
            '{"name": ..., "schema": {...}, "strict": ...}}, {"type": "regex", "regex": "..."} or '
            '{"type": "grammar", "grammar": "...", "syntax": "lark" | "gbnf"}')


@dataclass(frozen=True)
class ResponseFormat:
    type: str       # one of TYPES other than "text"
    grammar: str    # the llguidance grammar (validated)
    source: str     # what the caller gave, for messages: the schema (JSON), the regex or the grammar


ResponseFormatLike = Union[ResponseFormat, dict, None]


def llguidance_module():
    """The llguidance module, or RuntimeError naming the install command."""
    try:
        import llguidance
    except ImportError as e:
        raise RuntimeError(f"structured output (response_format) needs llguidance ({e.name} is "
                           f"missing): {INSTALL_HINT}") from None
    return llguidance


def _fail(what: str, value: Any, allowed: str) -> ValueError:
    shown = repr(value)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return ValueError(f"response_format{what} = {shown} is invalid: allowed {allowed}")


def as_response_format(value: ResponseFormatLike) -> Optional[ResponseFormat]:
    """The ResponseFormat for ``value`` (None for no constraint); ValueError for anything else."""
    if value is None or isinstance(value, ResponseFormat):
        return value
    if not isinstance(value, dict):
        raise _fail("", value, f"None, a ResponseFormat or a dict: {_ALLOWED}")
    kind = value.get("type")
    if kind not in TYPES:
        raise _fail('["type"]', kind, f"one of {list(TYPES)}: {_ALLOWED}")
    if kind == "text":
        _check_keys(value, ("type",))
        return None
    if kind == "json_object":
        _check_keys(value, ("type",))
        return _compile("json_object", _json_grammar({"type": "object"}, strict=False), "{}")
    if kind == "json_schema":
        _check_keys(value, ("type", "json_schema"))
        return _from_json_schema(value.get("json_schema"))
    if kind == "regex":
        _check_keys(value, ("type", "regex"))
        regex = _text(value, "regex", "a regular expression")
        return _compile("regex", llguidance_module().LLMatcher.grammar_from_regex(regex), regex)
    _check_keys(value, ("type", "grammar", "syntax"))
    return _from_grammar(_text(value, "grammar", "a Lark or GBNF grammar"), value.get("syntax"))


def _check_keys(value: dict, allowed: tuple) -> None:
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise _fail(f" of type {value['type']!r}", value,
                    f"the keys {list(allowed)} (unknown: {unknown})")


def _text(value: dict, key: str, what: str) -> str:
    text = value.get(key)
    if not isinstance(text, str) or not text:
        raise _fail(f'["{key}"]', text, f"a non-empty string: {what}")
    return text


def _from_json_schema(spec: Any) -> ResponseFormat:
    if not isinstance(spec, dict):
        raise _fail('["json_schema"]', spec, 'a dict {"name": ..., "schema": {...}, "strict": ...}')
    unknown = sorted(set(spec) - {"name", "schema", "strict", "description"})
    if unknown:
        raise _fail('["json_schema"]', spec,
                    f"the keys name, schema, strict and description (unknown: {unknown})")
    schema = spec.get("schema")
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as e:
            raise _fail('["json_schema"]["schema"]', spec["schema"], f"a JSON schema ({e})") from None
    if not isinstance(schema, (dict, bool)):
        raise _fail('["json_schema"]["schema"]', schema, "a JSON schema (an object, or its JSON text)")
    strict = spec.get("strict")
    if strict not in (None, True, False):
        raise _fail('["json_schema"]["strict"]', strict, "true, false or absent")
    return _compile("json_schema", _json_grammar(schema, strict=bool(strict)),
                    json.dumps(schema, sort_keys=True))


def json_schema_format(schema: Any, strict: bool = False) -> ResponseFormat:
    """The ResponseFormat for a bare JSON schema (a dict or its JSON text), as vLLM's guided_json."""
    return _from_json_schema({"schema": schema, "strict": strict})


def _json_grammar(schema, strict: bool) -> str:
    options = None if strict else {"lenient": True}
    return llguidance_module().LLMatcher.grammar_from_json_schema(schema, overrides=options)


def _from_grammar(text: str, syntax: Optional[str]) -> ResponseFormat:
    if syntax not in (None,) + SYNTAXES:
        raise _fail('["syntax"]', syntax, f"one of {list(SYNTAXES)} or absent (detected)")
    llg = llguidance_module()
    from llguidance.gbnf_to_lark import gbnf_to_lark, is_lark_syntax

    if syntax is None:
        syntax = "lark" if is_lark_syntax(text) else "gbnf"
    lark = text
    if syntax == "gbnf":
        try:
            lark = gbnf_to_lark(text)
        except Exception as e:  # GbnfToLarkError, or whatever its parser stumbles on
            raise _fail('["grammar"]', text, f"a GBNF grammar: {one_line(str(e))}") from None
    return _compile("grammar", llg.LLMatcher.grammar_from_lark(lark), text)


def _compile(kind: str, grammar: str, source: str) -> ResponseFormat:
    """The ResponseFormat after llguidance's validation (without a tokenizer)."""
    error = llguidance_module().LLMatcher.validate_grammar(grammar)
    if error and not error.startswith("WARNING"):
        raise ValueError(f"response_format of type {kind!r} does not compile: {one_line(error)} "
                         f"(given: {_short(source)}); allowed: {_what(kind)}")
    return ResponseFormat(type=kind, grammar=grammar, source=source)


def one_line(message: str) -> str:
    """llguidance's multi-line message (source excerpt, caret) on one line: lines joined by '; '."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def _what(kind: str) -> str:
    return {"json_object": "any JSON object",
            "json_schema": "a JSON schema llguidance supports (draft 2020-12 keywords)",
            "regex": "a regular expression (Rust regex syntax, no look-around or back-references)",
            "grammar": "a Lark grammar with a start rule, or a GBNF grammar with a root rule"}[kind]


def _short(text: str) -> str:
    return repr(text if len(text) <= 200 else text[:200] + "...")
