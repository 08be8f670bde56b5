"""CUDA kernels == CPU reference, exactly (token ids and accept lengths), on a grid of B, K, V.

Needs a GPU and a build with the CUDA kernels; skipped otherwise. Each case mixes per-sequence parameters
(greedy and sampled targets, top-k, top-p, Saguaro, one-hot proposals, short draft lengths) and uses peaked
or flat logits, with proposals drawn by the draft sampler so that acceptance, rejection and bonus all occur.
"""
from __future__ import annotations

import pytest
import torch

import ssdcore
from ssdcore import ops

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not ssdcore.cuda_kernels_built(), reason="ssdcore was built without its CUDA kernels (no nvcc)"),
    pytest.mark.skipif(not (torch.cuda.is_available() and ssdcore.cuda_available()),
                       reason="needs a CUDA GPU: " + ssdcore.device_summary()),
]


def _case(b, k, v, kind, seed):
    g = torch.Generator().manual_seed(seed)
    scale = 6.0 if kind == "peaked" else 0.3
    tl = torch.randn(b, k + 1, v, generator=g) * scale
    dl = tl[:, :k] + torch.randn(b, k, v, generator=g) * (0.5 if kind == "peaked" else 0.05)
    i = torch.arange(b)
    params = dict(
        temperature=torch.tensor([0.0, 1.0, 0.7, 1.3, 1.0, 0.4, 1.0])[i % 7],
        top_k=torch.tensor([0, 0, 50, 0, 3, 0, 0])[i % 7],
        top_p=torch.tensor([1.0, 1.0, 1.0, 0.9, 1.0, 0.6, 0.95])[i % 7],
        saguaro_c=torch.tensor([1.0, 1.0, 0.5, 1.0, 0.1, 1.0, 0.3])[i % 7],
    )
    fanout = (torch.arange(b * k, dtype=torch.int32).reshape(b, k) % 4)
    onehot = (i % 5) == 4
    draft_len = torch.where(i % 3 == 2, i % (k + 1), torch.full_like(i, k))
    seeds = i * 7919 + seed
    pos = i * 13 + 100
    draft_kw = {n: x.repeat_interleave(k) for n, x in params.items()}
    tokens = ops.sample_draft(dl.reshape(b * k, v), position=(pos[:, None] + torch.arange(k)).reshape(-1),
                              seed=seeds.repeat_interleave(k), saguaro_fanout=fanout.reshape(-1),
                              **{**draft_kw, "temperature": draft_kw["temperature"].clamp(min=0.5)}).reshape(b, k)
    kw = dict(position=pos, seed=seeds, draft_len=draft_len, onehot=onehot, saguaro_fanout=fanout,
              draft_temperature=params["temperature"].clamp(min=0.5), **params)
    return tl, tokens, dl, kw


GRID = [(b, k, v) for b in (1, 7, 64) for k in (1, 4, 8) for v in (5, 4096, 151936)]


@pytest.mark.parametrize("kind", ["peaked", "flat"])
@pytest.mark.parametrize("b,k,v", GRID, ids=[f"B{b}-K{k}-V{v}" for b, k, v in GRID])
def test_cuda_verify_matches_cpu(b, k, v, kind):
    tl, tokens, dl, kw = _case(b, k, v, kind, seed=b * 100 + k * 10 + (v % 97))
    cpu = ops.verify(tl, tokens, dl, **kw)
    gpu = ops.verify(tl.cuda(), tokens.cuda(), dl.cuda(), **kw)
    torch.cuda.synchronize()
    assert torch.equal(cpu[0], gpu[0].cpu()), "accept lengths differ"
    assert torch.equal(cpu[1], gpu[1].cpu()), "next tokens differ"


@pytest.mark.parametrize("v", [5, 4096, 151936])
def test_cuda_verify_without_draft_logits_matches_cpu(v):
    tl, tokens, _, kw = _case(16, 4, v, "peaked", seed=v)
    kw["onehot"] = True
    cpu = ops.verify(tl, tokens, None, **kw)
    gpu = ops.verify(tl.cuda(), tokens.cuda(), None, **kw)
    assert torch.equal(cpu[0], gpu[0].cpu()) and torch.equal(cpu[1], gpu[1].cpu())


@pytest.mark.parametrize("v", [5, 4096, 151936])
@pytest.mark.parametrize("kind", ["peaked", "flat"])
def test_cuda_sample_draft_matches_cpu(v, kind):
    g = torch.Generator().manual_seed(v)
    n = 96
    logits = torch.randn(n, v, generator=g) * (6.0 if kind == "peaked" else 0.3)
    i = torch.arange(n)
    kw = dict(position=i + 3, seed=i * 31, temperature=torch.tensor([0.0, 1.0, 0.6, 1.4])[i % 4],
              top_k=torch.tensor([0, 0, 20, 0, 1, 0])[i % 6], top_p=torch.tensor([1.0, 0.8, 1.0])[i % 3],
              saguaro_c=torch.tensor([1.0, 0.5, 0.0, 0.2, 1.0])[i % 5], saguaro_fanout=i % 4, return_probs=True)
    cpu_tok, cpu_probs = ops.sample_draft(logits, **kw)
    gpu_tok, gpu_probs = ops.sample_draft(logits.cuda(), **kw)
    assert torch.equal(cpu_tok, gpu_tok.cpu())
    assert torch.equal(cpu_probs, gpu_probs.cpu())
