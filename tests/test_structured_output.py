"""Structured output end to end on the bundled pair: the runtime masks both models' logits with the
engine's TokenMasker (SamplingParams.response_format -> C++ SamplingParams.constraint).

* greedy: ssd == sd == draft-free sd == ar token for token under a JSON schema, a regex and a Lark grammar, and each
  output is valid (jsonschema / re.fullmatch / the grammar's language);
* sampled: a randomized probability integral transform (PIT) of every generated token under the
  target's masked conditional (teacher-forced transformers forward, mask from a fresh llguidance
  matcher) is uniform for ssd and for sd, and the same tokens under the unmasked conditional are
  rejected (negative control);
* every constraint is released when its request ends (finished, stopped by a stop string, abandoned
  stream, failed submit), and bad formats are ValueErrors that leave the engine usable;
* the server answers response_format / guided_regex with conforming text, and ``ssdcore generate
  --regex`` prints it.

Skipped while the runtime lacks ``_core.Engine(..., token_masker=...)``.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import ssdcore
from ssdcore import SamplingParams, _core
from ssdcore.engine.response_format import as_response_format

llguidance = pytest.importorskip("llguidance")
jsonschema = pytest.importorskip("jsonschema")
stats = pytest.importorskip("scipy.stats")
if "token_masker" not in (_core.Engine.__init__.__doc__ or ""):
    pytest.skip("runtime without token_masker", allow_module_level=True)
import llguidance.hf  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["name", "size"],
          "properties": {"name": {"enum": ["stack", "queue", "heap"]},
                         "size": {"type": "integer", "minimum": 0, "maximum": 999}},
          "x-guidance": {"whitespace_flexible": False}}
JSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "thing", "schema": SCHEMA, "strict": True}}
REGEX = r"(def|class) [a-z_]{1,12}\(\)"
LARK = 'start: "x = " NUMBER\nNUMBER: /[1-9][0-9]{0,3}/'
PROMPTS = ["def make_stack(size):\n    return ", "class Queue:\n", "x = "]
CASES = [(JSON_FORMAT, lambda t: jsonschema.validate(json.loads(t), SCHEMA)),
         ({"type": "regex", "regex": REGEX}, lambda t: re.fullmatch(REGEX, t) or pytest.fail(t)),
         ({"type": "grammar", "grammar": LARK}, lambda t: re.fullmatch(r"x = [1-9][0-9]{0,3}", t)
          or pytest.fail(t))]


@pytest.fixture(scope="module")
def engines():
    made = {mode: ssdcore.Engine(mode=mode, K=4, max_batch=4) for mode in ("ssd", "sd", "ar")}
    made["sd-ngram"] = ssdcore.Engine(draft="ngram", mode="sd", K=4, max_batch=4)  # draft-free
    for backup in ("jit", "ngram", "none"):  # ssd above uses backup auto
        made[f"ssd-{backup}"] = ssdcore.Engine(mode="ssd", backup=backup, K=4, max_batch=4)
    yield made
    for e in made.values():
        e.close()


@pytest.mark.parametrize("case", range(len(CASES)))
def test_greedy_modes_agree_and_outputs_conform(engines, case):
    fmt, check = CASES[case]
    sp = SamplingParams(temperature=0, max_tokens=48, response_format=fmt)
    outs = {mode: e.generate(PROMPTS, sp) for mode, e in engines.items()}
    for i in range(len(PROMPTS)):
        ids = {mode: o[i].token_ids for mode, o in outs.items()}
        assert all(tokens == ids["ar"] for tokens in ids.values()), (PROMPTS[i], ids)
        assert outs["ar"][i].finish_reason == "stop", outs["ar"][i]
        check(outs["ar"][i].text)
    for e in engines.values():
        assert e._masker.active() == 0


def target_logits(prompt_ids, outputs) -> torch.Tensor:
    """[N, T, V] float64 logits of the transformers target at each generated position (teacher
    forced, one batched forward; right padding leaves the causal positions before it unchanged)."""
    seqs = [list(prompt_ids) + list(o.token_ids) for o in outputs]
    width = max(len(x) for x in seqs)
    batch = torch.tensor([x + [0] * (width - len(x)) for x in seqs])
    with torch.no_grad():
        logits = transformers_target()(batch).logits
    return logits[:, len(prompt_ids) - 1:-1].double()


def pit_pvalue(engine, logits, outputs, fmt, masked: bool, seed=0, bins=20) -> float:
    """Chi-square p-value of the randomized PIT of every generated token under the target's
    (masked or plain) conditional at temperature 1."""
    width = engine._vocab
    tok = llguidance.hf.from_tokenizer(engine.tokenizer, n_vocab=width, eos_token=list(engine.eos_token_ids))
    m = llguidance.LLMatcher(tok, as_response_format(fmt).grammar, log_level=0)
    words = np.zeros((width + 31) // 32, dtype=np.uint32)
    rng = np.random.default_rng(seed)
    us = []
    for row, out in zip(logits, outputs):
        m.reset()
        for j, t in enumerate(out.token_ids):
            x = row[j].clone()
            if masked:
                m.unsafe_compute_mask_ptr(words.ctypes.data, words.nbytes)
                bits = np.unpackbits(words.view(np.uint8), bitorder="little")[:x.numel()].astype(bool)
                x[torch.from_numpy(~bits)] = -float("inf")
                assert m.consume_token(t)
            p = torch.softmax(x, 0).numpy()
            us.append(p[:t].sum() + rng.random() * p[t])
    counts = np.histogram(np.asarray(us), bins=bins, range=(0, 1))[0]
    return float(stats.chisquare(counts).pvalue)


_HF = {}


def transformers_target():
    if "model" not in _HF:
        import transformers

        from ssdcore.models.bundled import bundled_pair

        _HF["model"] = transformers.AutoModelForCausalLM.from_pretrained(
            str(bundled_pair()[0]), dtype=torch.float32).eval()
    return _HF["model"]


@pytest.mark.parametrize("mode", ["ssd", "sd"])
def test_sampled_tokens_follow_the_masked_target(mode):
    fmt = {"type": "regex", "regex": r"[0-9]{2,6}"}
    prompt = "x = "
    sps = [SamplingParams(temperature=1.0, max_tokens=8, seed=1000 + i, response_format=fmt)
           for i in range(160)]
    with ssdcore.Engine(mode=mode, K=4, max_batch=32) as engine:
        outs = engine.generate([prompt] * len(sps), sps)
        assert all(re.fullmatch(r"[0-9]{2,6}", o.text) for o in outs)
        logits = target_logits(engine.tokenizer.encode(prompt, add_special_tokens=False), outs)
        assert pit_pvalue(engine, logits, outs, fmt, masked=True) > 1e-4
        assert pit_pvalue(engine, logits, outs, fmt, masked=False) < 1e-4  # the mask matters


def test_constraints_are_released_whatever_ends_the_request(engines):
    engine = engines["ssd"]
    fmt = {"type": "regex", "regex": "[a-z ]{1,40}"}
    engine.generate("x", SamplingParams(temperature=0, max_tokens=6, response_format=fmt, stop=["e"]))
    it = engine.stream("def ", SamplingParams(temperature=0, max_tokens=30, response_format=fmt))
    next(it)
    it.close()  # abandoned: discarded
    with pytest.raises(ValueError):  # the runtime refuses it after the constraint was registered
        engine.generate([[5] * 5000], SamplingParams(response_format=fmt))
    assert engine._masker.active() == 0


def test_bad_formats_leave_the_engine_usable(engines):
    engine = engines["sd"]
    with pytest.raises(ValueError, match="unclosed group"):
        engine.generate("x", {"response_format": {"type": "regex", "regex": "a(b"}})
    with pytest.raises(ValueError, match="ignore_eos"):
        engine.generate("x", {"response_format": {"type": "json_object"}, "ignore_eos": True})
    with pytest.raises(ValueError, match="constraint = 5 needs an engine built with a TokenMasker"):
        engine.generate("x", SamplingParams(constraint=5))  # a raw key: this engine's masker is its own
    out = engine.generate("x = ", SamplingParams(temperature=0, max_tokens=8,
                                                 response_format={"type": "regex", "regex": "[0-9]+"}))
    assert re.fullmatch("[0-9]+", out[0].text)


def test_server_answers_in_the_format(engines):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from _server_util import running

    from ssdcore.serve.server import create_app

    with running(create_app(engines["ssd"], "m")) as url:
        r = httpx.post(f"{url}/v1/completions", timeout=120, json={
            "model": "m", "prompt": PROMPTS[0], "max_tokens": 40, "temperature": 0,
            "response_format": JSON_FORMAT})
        assert r.status_code == 200, r.text
        jsonschema.validate(json.loads(r.json()["choices"][0]["text"]), SCHEMA)
        r = httpx.post(f"{url}/v1/completions", timeout=120, json={
            "model": "m", "prompt": "class ", "max_tokens": 24, "temperature": 0, "guided_regex": REGEX,
            "stream": True})
        text = "".join(json.loads(line[6:])["choices"][0]["text"] for line in r.text.splitlines()
                       if line.startswith("data: {"))
        assert re.fullmatch(REGEX, text), text


def test_cli_generate_with_a_regex():
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "ssdcore.cli", "generate", "x = ", "--regex",
                           "[0-9]{3}", "--max-tokens", "8", "--mode", "sd"], capture_output=True,
                          text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"x = [0-9]{3}\n", proc.stdout), proc.stdout
