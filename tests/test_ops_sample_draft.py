"""ssdcore.ops.sample_draft samples exactly q' (temperature, top-k, top-p, Saguaro), deterministically per key."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _verify_ref import ALPHA, chi_square_pvalue, transform
from ssdcore import ops

N = 40000


def _row(seed, v, scale=2.0):
    return torch.randn(v, generator=torch.Generator().manual_seed(seed)) * scale


CASES = [
    ("plain", 5, dict()),
    ("plain-V64", 64, dict()),
    ("T0.3", 17, dict(temperature=0.3)),
    ("T1.7", 17, dict(temperature=1.7)),
    ("top-k", 17, dict(top_k=4)),
    ("top-p", 64, dict(top_p=0.75)),
    ("top-k-top-p", 64, dict(top_k=10, top_p=0.8, temperature=0.7)),
    ("saguaro-C0.5", 17, dict(saguaro_c=0.5, saguaro_fanout=3)),
    ("saguaro-C0.1", 64, dict(saguaro_c=0.1, saguaro_fanout=2)),
    ("saguaro-C0-topk", 17, dict(saguaro_c=0.0, saguaro_fanout=2, top_k=6)),
]


@pytest.mark.parametrize("name,v,kw", CASES, ids=[c[0] for c in CASES])
def test_samples_follow_q_prime(name, v, kw):
    row = _row(len(name) * 31 + v, v)
    tokens, probs = ops.sample_draft(row.expand(N, v).contiguous(), position=torch.arange(N), seed=5,
                                     return_probs=True, **kw)
    q = transform(row.numpy(), kw.get("temperature", 1.0), kw.get("top_k", 0), kw.get("top_p", 1.0),
                  kw.get("saguaro_c", 1.0), kw.get("saguaro_fanout", 0))
    assert np.allclose(probs[0].double().numpy(), q, atol=2e-6, rtol=1e-5)
    assert torch.equal(probs[0], probs[-1])
    assert chi_square_pvalue(np.bincount(tokens.numpy(), minlength=v), q) > ALPHA


def test_negative_control_plain_q_is_not_q_prime():
    v, row = 17, _row(1, 17)
    tokens = ops.sample_draft(row.expand(N, v).contiguous(), position=torch.arange(N), saguaro_c=0.3,
                              saguaro_fanout=2)
    assert chi_square_pvalue(np.bincount(tokens.numpy(), minlength=v), transform(row.numpy())) < ALPHA


def test_temperature_zero_is_argmax_and_ignores_saguaro():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(50, 30, generator=g)
    logits[0, :] = 1.0  # all tied: index 0
    tokens, probs = ops.sample_draft(logits, position=0, temperature=0.0, saguaro_c=0.1, saguaro_fanout=3,
                                     return_probs=True)
    assert torch.equal(tokens, logits.argmax(-1))
    assert torch.equal(probs, torch.nn.functional.one_hot(tokens, 30).float())


def test_keyed_by_seed_and_position_not_by_batch():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(40, 100, generator=g)
    seeds, pos = torch.arange(40) * 11, torch.arange(40) + 500
    all_rows = ops.sample_draft(logits, position=pos, seed=seeds, top_p=0.95)
    for r in (0, 17, 39):
        one = ops.sample_draft(logits[r:r + 1].contiguous(), position=int(pos[r]), seed=int(seeds[r]), top_p=0.95)
        assert int(one) == int(all_rows[r])
    again = ops.sample_draft(logits, position=pos, seed=seeds, top_p=0.95, num_threads=1)
    assert torch.equal(again, all_rows)
    moved = ops.sample_draft(logits, position=pos + 1, seed=seeds, top_p=0.95)
    assert not torch.equal(moved, all_rows)


def test_saguaro_zero_over_the_whole_support_falls_back_to_q():
    v, row = 6, _row(4, 6)
    _, probs = ops.sample_draft(row[None].contiguous(), position=0, top_k=3, saguaro_c=0.0, saguaro_fanout=5,
                                return_probs=True)
    assert np.allclose(probs[0].double().numpy(), transform(row.numpy(), top_k=3), atol=1e-6)


def test_large_vocabulary_probs_sum_to_one():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(4, 151936, generator=g) * 3
    _, probs = ops.sample_draft(logits, position=0, return_probs=True, top_p=torch.tensor([1.0, 0.9, 0.5, 0.99]),
                                saguaro_c=0.5, saguaro_fanout=4)
    assert torch.allclose(probs.double().sum(-1), torch.ones(4, dtype=torch.float64), atol=1e-5)
