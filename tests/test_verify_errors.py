"""Bad input to ssdcore.ops.verify / sample_draft raises ValueError naming the argument, the value and what is
allowed."""
from __future__ import annotations

import re

import pytest
import torch

import ssdcore
from ssdcore import ops

B, K, V = 3, 2, 7


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, K + 1, V, generator=g), torch.randint(0, V, (B, K), generator=g), torch.randn(B, K, V,
                                                                                                           generator=g)


def _verify(**overrides):
    tl, tok, dl = _inputs()
    args = dict(target_logits=tl, draft_tokens=tok, draft_logits=dl, position=0)
    args.update(overrides)
    return ops.verify(args.pop("target_logits"), args.pop("draft_tokens"), args.pop("draft_logits"), **args)


def _expect(fn, *parts):
    """fn raises ValueError whose message contains every part (and the word 'allowed')."""
    with pytest.raises(ValueError) as info:
        fn()
    msg = str(info.value)
    for part in (*parts, "allowed"):
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


def test_valid_call_works():
    acc, nxt = _verify()
    assert acc.shape == (B,) and nxt.shape == (B,)


@pytest.mark.parametrize("name,value,parts", [
    ("target_logits", [[0.0]], ("target_logits", "list")),
    ("target_logits", torch.randn(B, K + 1, V, dtype=torch.float64), ("target_logits", "torch.float64")),
    ("target_logits", torch.randn(B, K + 1, V).to(torch.bfloat16), ("target_logits", "torch.bfloat16")),
    ("target_logits", torch.randn(B, V), ("target_logits", f"({B}, {V})")),
    ("target_logits", torch.randn(B, 0, V), ("target_logits", f"({B}, 0, {V})")),
    ("target_logits", torch.randn(B, V, K + 1).transpose(1, 2), ("target_logits", "non-contiguous")),
    ("target_logits", torch.randn(B, K + 1, V, device="meta"), ("target_logits", "meta")),
    ("draft_tokens", torch.zeros(B, K), ("draft_tokens", "torch.float32")),
    ("draft_tokens", torch.zeros(B, K + 1, dtype=torch.int64), ("draft_tokens", f"({B}, {K + 1})")),
    ("draft_tokens", torch.zeros(K, B, dtype=torch.int64).t(), ("draft_tokens", "non-contiguous")),
    ("draft_tokens", torch.tensor([[0, 1], [2, V], [0, 0]]), ("draft_tokens[1, 1]", f"got {V}", f"[0, {V - 1}]")),
    ("draft_tokens", torch.tensor([[0, 1], [2, 3], [-1, 0]]), ("draft_tokens[2, 0]", "got -1")),
    ("draft_logits", torch.randn(B, K, V + 1), ("draft_logits", f"({B}, {K}, {V + 1})")),
    ("draft_logits", torch.randn(B, K, V, dtype=torch.float16), ("draft_logits", "torch.float16")),
    ("draft_logits", torch.randn(B, V, K).transpose(1, 2), ("draft_logits", "non-contiguous")),
    ("temperature", -0.5, ("temperature", "-0.5", ">= 0")),
    ("temperature", float("nan"), ("temperature", "nan")),
    ("temperature", float("inf"), ("temperature", "inf")),
    ("temperature", [1.0, -1.0, 1.0], ("temperature[1]", "-1.0")),
    ("temperature", [1.0, 1.0], ("temperature", "length B=3")),
    ("temperature", "hot", ("temperature", "'hot'")),
    ("top_p", 0.0, ("top_p", "0.0", "(0, 1]")),
    ("top_p", 1.5, ("top_p", "1.5", "(0, 1]")),
    ("top_p", [0.5, 0.9, -0.1], ("top_p[2]", "-0.1")),
    ("top_k", -1, ("top_k", "-1", ">= 0")),
    ("top_k", 2.5, ("top_k", "2.5", "integer")),
    ("top_k", torch.tensor([1, -3, 0]), ("top_k[1]", "-3")),
    ("draft_temperature", -1.0, ("draft_temperature", "-1.0")),
    ("draft_top_k", -2, ("draft_top_k", "-2")),
    ("draft_top_p", 2.0, ("draft_top_p", "2.0")),
    ("saguaro_c", -0.1, ("saguaro_c", "-0.1", "[0, 1]")),
    ("saguaro_c", 1.1, ("saguaro_c", "1.1", "[0, 1]")),
    ("saguaro_fanout", -1, ("saguaro_fanout", "-1", ">= 0")),
    ("saguaro_fanout", torch.zeros(B, K + 1, dtype=torch.int32), ("saguaro_fanout", "[B, K]")),
    ("saguaro_fanout", [[1, 2], [0, -4], [0, 0]], ("saguaro_fanout[1, 1]", "-4")),
    ("draft_len", K + 1, ("draft_len", f"{K + 1}", f"[0, K={K}]")),
    ("draft_len", [0, -1, 2], ("draft_len[1]", "-1")),
    ("onehot", [True, 2, False], ("onehot[1]", "2")),
    ("seed", 2**64, ("seed", str(2**64))),
    ("seed", 1.5, ("seed", "1.5")),
    ("position", -3, ("position", "-3", "[0, 2**62]")),
    ("position", [0, 1], ("position", "length B=3")),
    ("num_threads", -1, ("num_threads", "-1")),
])
def test_verify_rejects(name, value, parts):
    _expect(lambda: _verify(**{name: value}), *parts)


def test_onehot_false_needs_draft_logits():
    _expect(lambda: _verify(draft_logits=None, onehot=[True, False, True]), "onehot[1]", "False")


def test_large_seeds_and_tokens_past_draft_len_are_fine():
    tl, tok, dl = _inputs()
    tok[0, 1] = -7  # not verified: draft_len[0] = 1
    ops.verify(tl, tok, dl, position=0, seed=2**64 - 1, draft_len=[1, 2, 2])


def test_int32_tokens_are_accepted():
    tl, tok, dl = _inputs()
    a = ops.verify(tl, tok, dl, position=4, seed=9)
    b = ops.verify(tl, tok.to(torch.int32), dl, position=4, seed=9)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("kw,parts", [
    (dict(logits=torch.randn(V)), ("logits", f"({V},)")),
    (dict(logits=torch.randn(B, V, dtype=torch.float64)), ("logits", "torch.float64")),
    (dict(logits=torch.randn(V, B).t()), ("logits", "non-contiguous")),
    (dict(temperature=-1.0), ("temperature", "-1.0")),
    (dict(top_k=-1), ("top_k", "-1")),
    (dict(top_p=0.0), ("top_p", "0.0")),
    (dict(saguaro_c=2.0), ("saguaro_c", "2.0")),
    (dict(saguaro_fanout=[0, -1, 0]), ("saguaro_fanout[1]", "-1")),
    (dict(seed=[1, 2]), ("seed", "length B=3")),
    (dict(position=-1), ("position", "-1")),
    (dict(return_probs="yes"), ("return_probs", "'yes'")),
])
def test_sample_draft_rejects(kw, parts):
    args = dict(logits=torch.randn(B, V), position=0)
    args.update(kw)
    _expect(lambda: ops.sample_draft(args.pop("logits"), **args), *parts)


@pytest.mark.skipif(ssdcore.cuda_available() and torch.cuda.is_available(), reason="needs a machine without GPU")
def test_cuda_tensors_without_usable_kernels_raise_clearly():
    # Without a GPU torch cannot even create CUDA tensors; the device check covers other devices.
    _expect(lambda: _verify(target_logits=torch.randn(B, K + 1, V, device="meta")), "target_logits", "meta")


@pytest.mark.skipif(not (ssdcore.cuda_available() and torch.cuda.is_available()), reason="needs a GPU")
@pytest.mark.gpu
def test_mixed_devices_are_rejected():
    tl, tok, dl = _inputs()
    _expect(lambda: ops.verify(tl.cuda(), tok, dl.cuda(), position=0), "draft_tokens", "cpu")
    _expect(lambda: ops.verify(tl.cuda(), tok.cuda(), dl, position=0), "draft_logits", "cpu")


def test_messages_quote_the_value():
    msg = _expect(lambda: _verify(top_p=1.25), "top_p")
    assert re.search(r"got 1\.25", msg)
