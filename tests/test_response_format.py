"""ResponseFormat (python/ssdcore/engine/response_format.py) and SamplingParams.response_format: every
accepted form compiles to a grammar llguidance accepts, and every bad one is a ValueError naming what
was wrong, what was given and what is allowed; without llguidance the error names the install command.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("llguidance")

from ssdcore import SamplingParams  # noqa: E402
from ssdcore.engine.response_format import ResponseFormat, as_response_format, json_schema_format  # noqa: E402

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


@pytest.mark.parametrize("value, kind", [
    ({"type": "json_object"}, "json_object"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA, "strict": True}}, "json_schema"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": '{"type": "string"}'}}, "json_schema"),
    ({"type": "regex", "regex": r"\d{3}-[a-z]+"}, "regex"),
    ({"type": "grammar", "grammar": 'start: "yes" | "no"', "syntax": "lark"}, "grammar"),
    ({"type": "grammar", "grammar": 'root ::= "yes" | "no"', "syntax": "gbnf"}, "grammar"),
    ({"type": "grammar", "grammar": 'root ::= answer\nanswer ::= [0-9]+'}, "grammar"),  # detected
])
def test_accepted_forms(value, kind):
    rf = as_response_format(value)
    assert isinstance(rf, ResponseFormat) and rf.type == kind and rf.grammar
    assert as_response_format(rf) is rf
    hash(rf)


def test_no_constraint():
    assert as_response_format(None) is None
    assert as_response_format({"type": "text"}) is None
    assert SamplingParams(response_format={"type": "text"}).response_format is None


@pytest.mark.parametrize("value, words", [
    (5, ["response_format = 5", "a dict"]),
    ({"type": "xml"}, ["'xml'", "json_schema"]),
    ({"type": "regex"}, ['response_format["regex"] = None', "non-empty string"]),
    ({"type": "regex", "regex": "a(b"}, ["does not compile", "unclosed group", "'a(b'", "regular expression"]),
    ({"type": "regex", "regex": "a", "flags": "i"}, ["unknown: ['flags']"]),
    ({"type": "grammar", "grammar": "start: foo"}, ["does not compile", 'unknown name: "foo"', "Lark"]),
    ({"type": "grammar", "grammar": "root ::= (", "syntax": "gbnf"}, ["GBNF grammar", "Expected ')'"]),
    ({"type": "grammar", "grammar": "x", "syntax": "peg"}, ["'peg'", "lark"]),
    ({"type": "json_schema"}, ['response_format["json_schema"] = None', '"schema"']),
    ({"type": "json_schema", "json_schema": {"schema": "{oops"}}, ["'{oops'", "JSON schema"]),
    ({"type": "json_schema", "json_schema": {"schema": {"type": "foo"}}}, ["Invalid type: foo", "JSON schema"]),
    ({"type": "json_schema", "json_schema": {"schema": SCHEMA, "strict": "yes"}}, ["'yes'", "true, false"]),
    ({"type": "json_schema", "json_schema": {"schema": SCHEMA, "extra": 1}}, ["unknown: ['extra']"]),
])
def test_errors_name_the_problem(value, words):
    with pytest.raises(ValueError) as e:
        as_response_format(value)
    for w in words:
        assert w in str(e.value)
    with pytest.raises(ValueError, match="response_format"):
        SamplingParams(response_format=value)


def test_sampling_params_compile_once_and_reject_ignore_eos():
    sp = SamplingParams(temperature=0, response_format={"type": "regex", "regex": "[0-9]+"})
    assert sp.response_format.type == "regex"
    assert SamplingParams(temperature=0, response_format=sp.response_format) == sp  # compiled once, reused
    with pytest.raises(ValueError, match="ignore_eos = True is invalid: allowed False with a response_format"):
        SamplingParams(ignore_eos=True, response_format={"type": "json_object"})
    assert json_schema_format(SCHEMA).type == "json_schema"
    with pytest.raises(ValueError, match="constraint = 3 is invalid: allowed 0 with a response_format"):
        SamplingParams(constraint=3, response_format={"type": "json_object"})


def test_without_llguidance_the_error_names_the_extra():
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "llguidance":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
from ssdcore import SamplingParams
SamplingParams()  # no constraint: no llguidance needed
try:
    SamplingParams(response_format={"type": "json_object"})
except RuntimeError as e:
    print(e)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'ssdcore[structured]'" in proc.stdout and "llguidance" in proc.stdout
