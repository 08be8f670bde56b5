"""Structured output in the runtime (cpp/include/ssdcore/token_masker.h), exact in every mode, with a
synthetic path-dependent token masker (no grammar library): token t is allowed after context c (the
generated tokens, then the speculative path) iff (7 t + sum(c) + len(c)) % 3 != 0, and EOS never (this
grammar never completes, so requests run to max_tokens).

* greedy: ssd under every backup (jit, ngram, none, auto), sd, draft-free sd (prompt lookup) and ar give the same tokens, and every
  token is allowed after the ones before it;
* sampled: the committed tokens follow the masked target distribution (the target's logits with -inf
  at disallowed tokens, then the sampling transform): no disallowed token, a randomized PIT over all
  positions and chi-square tests of the 2nd and 3rd tokens' exact marginals (as in
  test_engine_sampling.py), through cache hits and misses under each backup and Saguaro C < 1; the
  statistics reject the draft's own masked distribution (negative control);
* a masker that raises fails the constrained request with a clear error (on the draft side only, it
  fails nothing: the draft proposes unmasked), and the engine then serves
  an unconstrained request; an unconstrained request in a batch of constrained ones gets the tokens
  it gets alone;
* requests the engine cannot constrain are rejected with ValueError.

The greedy and neighbour tests run with the native C++ forward and with the Python (torch) runner,
whose logits tensors the engine masks in place through DLPack.
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch

import ssdcore
from ssdcore import SamplingParams
from ssdcore.engine.errors import ModelRunnerError

pytest.importorskip("scipy.stats")
pytest.importorskip("transformers")
from test_engine_sampling import (V, hf, marginal_pvalue, one_torch_thread, pair,  # noqa: E402,F401
                                  pit_pvalue, transform)

K = 3
NEW = 5
N = 500                     # sampled requests per configuration
PROMPT = [3, 4, 5, 6, 3, 4, 5, 6, 3, 4]
ALPHA = 1e-4
SP = dict(temperature=1.0, top_k=0, top_p=1.0)
KEY = 7                     # the constraint key of every constrained request


def allowed(context) -> np.ndarray:
    """[V] bool: the rule after `context` (a sequence of token ids)."""
    t = np.arange(V)
    return (7 * t + int(sum(context)) + len(context)) % 3 != 0


class RuleMasker:
    """The synthetic grammar, through the engine's fill_masks protocol."""

    def __init__(self):
        self.forbid = ()        # EOS ids, set once the engine knows them
        self.calls = [0, 0]     # per side
        self.fail = False
        self.fail_draft = False

    def fill_masks(self, side, rows, masks_ptr, words):
        self.calls[side] += 1
        if self.fail or (self.fail_draft and side == 1):
            raise RuntimeError("the grammar broke")
        masks = np.ctypeslib.as_array((ctypes.c_uint32 * (len(rows) * words)).from_address(masks_ptr))
        masks = masks.reshape(len(rows), words)
        for i, (key, generated, path) in enumerate(rows):
            assert key == KEY
            ok = allowed(list(generated) + list(path))
            ok[list(self.forbid)] = False
            for t in np.flatnonzero(ok):
                masks[i, t // 32] |= np.uint32(1 << (t % 32))


def follows_rule(tokens) -> bool:
    return all(allowed(tokens[:j])[tok] for j, tok in enumerate(tokens))


def engine_for(pair, masker, **kw):
    target, draft = pair[0], kw.pop("draft", pair[1])
    engine = ssdcore.Engine(target, draft, K=K, max_batch=64, max_context=64, token_masker=masker, **kw)
    masker.forbid = tuple(engine.eos_token_ids)
    return engine


MODES = {
    "ar": dict(mode="ar"),
    "sd": dict(mode="sd"),
    "sd-prompt-lookup": dict(mode="sd", draft="ngram"),
    "ssd-jit": dict(mode="ssd", backup="jit", fan_out=16),
    "ssd-ngram": dict(mode="ssd", backup="ngram", fan_out=16),
    "ssd-none": dict(mode="ssd", backup="none", fan_out=16),
    "ssd-auto": dict(mode="ssd", backup="auto", fan_out=16),
}


@pytest.fixture(params=["native", "python"])
def runner_kind(request, monkeypatch):
    """The native C++ forward, or the Python runner (a torch tensor through DLPack, masked in place)."""
    if request.param == "python":
        from ssdcore.engine.model_runner import ModelRunner
        monkeypatch.setattr(ModelRunner, "native_runner", lambda runner: None)
    return request.param


def test_greedy_constrained_output_is_the_same_in_every_mode(pair, runner_kind):
    prompts = [PROMPT, [1, 2, 3], [9], [5, 5, 5, 5]]
    sp = SamplingParams(temperature=0, max_tokens=12, constraint=KEY)
    outputs = {}
    for name, kw in MODES.items():
        masker = RuleMasker()
        with engine_for(pair, masker, **kw) as engine:
            outputs[name] = [o.token_ids for o in engine.generate(prompts, sp)]
            free = [o.token_ids for o in engine.generate(prompts, SamplingParams(temperature=0, max_tokens=12))]
            phases = engine.stats()["phases"]
        assert masker.calls[0] > 0 and phases["target_mask"][1] > 0, name
        if name in ("sd", "ssd-jit"):
            assert masker.calls[1] > 0 and phases["draft_mask"][1] > 0, name
        for out in outputs[name]:
            assert len(out) == 12 and follows_rule(out), (name, out)
    assert any(a != b for a, b in zip(outputs["ar"], free)), "the grammar changed nothing"
    for name in MODES:
        assert outputs[name] == outputs["ar"], name


@torch.inference_mode()
def masked_conditionals(model, outputs: np.ndarray, forbid) -> np.ndarray:
    """[N, NEW, V]: the masked, transformed target distribution of each generated token."""
    seqs = np.concatenate([np.tile(PROMPT, (len(outputs), 1)), outputs], 1)
    logits = model(torch.as_tensor(seqs, dtype=torch.long)).logits[:, len(PROMPT) - 1:-1, :].clone()
    for n in range(len(outputs)):
        for j in range(NEW):
            ok = allowed(outputs[n, :j])
            ok[list(forbid)] = False
            logits[n, j, torch.as_tensor(~ok)] = float("-inf")
    return transform(logits, **SP)


@torch.inference_mode()
def masked_marginals(model, forbid):
    """Exact marginals of the 2nd and 3rd generated tokens under the masked target."""
    def dist(ctx_rows, generated):
        logits = model(torch.as_tensor(ctx_rows)).logits[:, -1].clone()
        for i, g in enumerate(generated):
            ok = allowed(g)
            ok[list(forbid)] = False
            logits[i, torch.as_tensor(~ok)] = float("-inf")
        return transform(logits, **SP)
    p1 = dist([PROMPT], [[]])[0]
    p2 = dist([PROMPT + [a] for a in range(V)], [[a] for a in range(V)])
    p3 = dist([PROMPT + [a, b] for a in range(V) for b in range(V)],
              [[a, b] for a in range(V) for b in range(V)]).reshape(V, V, V)
    return p1 @ p2, np.einsum("a,ab,abc->c", p1, p2, p3)


def exactness(outputs: np.ndarray, hf_target, forbid) -> dict:
    probs = masked_conditionals(hf_target, outputs, forbid)
    tok, p = outputs.reshape(-1), probs.reshape(-1, V)
    m2, m3 = masked_marginals(hf_target, forbid)
    return dict(impossible=int((np.take_along_axis(p, tok[:, None], -1) < 1e-12).sum()),
                pit=pit_pvalue(tok, p), second=marginal_pvalue(outputs[:, 1], m2),
                third=marginal_pvalue(outputs[:, 2], m3))


SAMPLED = {
    "sd": dict(mode="sd"),
    "sd-prompt-lookup": dict(mode="sd", draft="ngram"),
    "ssd-jit": dict(mode="ssd", backup="jit", fan_out=16),
    "ssd-ngram": dict(mode="ssd", backup="ngram", fan_out=16),
    "ssd-none": dict(mode="ssd", backup="none", fan_out=16),
    "ssd-saguaro": dict(mode="ssd", backup="jit", fan_out=16, saguaro_c=0.3),
}


@pytest.mark.parametrize("name", list(SAMPLED))
def test_sampled_constrained_output_follows_the_masked_target(pair, hf, name):
    kw = SAMPLED[name]
    masker = RuleMasker()
    params = [SamplingParams(max_tokens=NEW, seed=50_000 * list(SAMPLED).index(name) + i, constraint=KEY, **SP)
              for i in range(N)]
    with engine_for(pair, masker, **kw) as engine:
        outs = engine.generate([PROMPT] * N, params)
        s = engine.stats()
    tokens = np.array([o.token_ids for o in outs], dtype=np.int64)
    assert tokens.shape == (N, NEW)
    reached, accepted = sum(s["position_reached"]), sum(s["position_accepted"])
    assert 0 < accepted < reached, f"{name}: want acceptances and rejections: {s}"
    if kw["mode"] == "ssd":
        hits, misses = sum(s["cache_hits"]), sum(s["cache_misses"])
        assert hits > 0 and misses > 0, f"{name}: want both cache hits and misses: {s}"
        assert s["backup_use"][kw["backup"]] > N, f"{name}: the backup served no miss: {s['backup_use']}"
    r = exactness(tokens, hf[0], masker.forbid)
    assert r["impossible"] == 0, f"{name}: tokens the masked target excludes: {r}"
    for key in ("pit", "second", "third"):
        assert r[key] > ALPHA, f"{name}: the {key} test rejects the masked target: {r}"


@torch.inference_mode()
def test_the_statistics_reject_the_masked_draft(hf):
    """Negative control: tokens from the draft's own masked distribution must be rejected."""
    rng = np.random.default_rng(5)
    seqs = np.tile(PROMPT, (N, 1))
    for j in range(NEW):
        logits = hf[1](torch.as_tensor(seqs)).logits[:, -1].clone()
        for n in range(N):
            logits[n, torch.as_tensor(~allowed(seqs[n, len(PROMPT):]))] = float("-inf")
        d = transform(logits, **SP)
        t = np.minimum((rng.random(N)[:, None] > np.cumsum(d, -1)).sum(-1), V - 1)
        seqs = np.concatenate([seqs, t[:, None]], 1)
    r = exactness(seqs[:, len(PROMPT):], hf[0], ())
    assert r["impossible"] == 0 and max(r["pit"], r["second"], r["third"]) < ALPHA, r


def test_a_masker_that_raises_fails_the_request_and_the_engine_goes_on(pair):
    for kw in (MODES["ssd-jit"], MODES["ar"]):
        masker = RuleMasker()
        masker.fail = True
        with engine_for(pair, masker, **kw) as engine:
            with pytest.raises(ModelRunnerError, match="token masker failed: RuntimeError: the grammar broke"):
                engine.generate(PROMPT, SamplingParams(temperature=0, max_tokens=6, constraint=KEY))
            out = engine.generate(PROMPT, SamplingParams(temperature=0, max_tokens=6))[0]
            assert len(out.token_ids) > 0
            masker.fail = False
            out = engine.generate(PROMPT, SamplingParams(temperature=0, max_tokens=6, constraint=KEY))[0]
            assert follows_rule(out.token_ids)


def test_a_masker_that_raises_on_the_draft_side_fails_nothing(pair):
    """The draft's masking is advice: when it raises, the draft proposes unmasked and the target's own
    masking keeps the output exact (greedy: the target-only constrained output), counted in stats."""
    params = SamplingParams(temperature=0, max_tokens=12, constraint=KEY)
    with engine_for(pair, RuleMasker(), mode="ar") as engine:
        want = engine.generate(PROMPT, params)[0].token_ids
    for name in ("sd", "ssd-jit", "ssd-auto"):
        masker = RuleMasker()
        masker.fail_draft = True
        with engine_for(pair, masker, **MODES[name]) as engine:
            assert engine.generate(PROMPT, params)[0].token_ids == want, name
            assert engine.stats()["draft_mask_failures"] > 0 and masker.calls[1] > 0, name


def test_unconstrained_neighbours_are_unaffected(pair, runner_kind):
    free = [SamplingParams(max_tokens=8, seed=11, **SP), SamplingParams(temperature=0, max_tokens=8)]
    for kw in (MODES["sd"], MODES["ssd-jit"], MODES["ar"]):
        with engine_for(pair, RuleMasker(), **kw) as engine:
            alone = [o.token_ids for o in engine.generate([PROMPT, PROMPT], free)]
            mixed = engine.generate([PROMPT] * 6, free + [SamplingParams(max_tokens=8, seed=3 + i, constraint=KEY, **SP)
                                                          for i in range(4)])
        assert [o.token_ids for o in mixed[:2]] == alone, kw
        assert all(follows_rule(o.token_ids) for o in mixed[2:])


def test_requests_that_cannot_be_constrained_are_rejected(pair):
    with ssdcore.Engine(*pair, K=K, max_batch=4, max_context=64, mode="sd") as engine:
        with pytest.raises(ValueError, match="constraint = 7 needs an engine built with a TokenMasker"):
            engine.generate(PROMPT, SamplingParams(max_tokens=4, constraint=KEY))
        assert engine.generate(PROMPT, SamplingParams(max_tokens=4))[0].token_ids
    with pytest.raises(ValueError, match="ignore_eos"):
        SamplingParams(max_tokens=4, constraint=KEY, ignore_eos=True)
    with pytest.raises(ValueError, match="constraint = -1 is invalid"):
        SamplingParams(max_tokens=4, constraint=-1)
    with pytest.raises(ValueError, match="token_masker"):
        ssdcore.Engine(*pair, K=K, max_batch=4, max_context=64, mode="sd", token_masker=object())
