"""Temperature 0: ssdcore.ops.verify is exact argmax matching, and speculative rounds reproduce greedy decoding."""
from __future__ import annotations

import torch

from ssdcore import ops


def expected_greedy(target_logits, tokens, lengths):
    """Reference: accept while s_i == argmax(row i) (torch.argmax: first maximal index)."""
    b = target_logits.shape[0]
    arg = target_logits.argmax(dim=-1)
    acc, nxt = torch.empty(b, dtype=torch.int64), torch.empty(b, dtype=torch.int64)
    for i in range(b):
        n = int(lengths[i])
        k = 0
        while k < n and int(tokens[i, k]) == int(arg[i, k]):
            k += 1
        acc[i], nxt[i] = k, arg[i, k]
    return acc, nxt


def test_argmax_chain_with_random_mismatches():
    g = torch.Generator().manual_seed(0)
    b, k, v = 64, 4, 100
    tl = torch.randn(b, k + 1, v, generator=g)
    tokens = tl[:, :k].argmax(-1)
    flip = torch.rand(b, k, generator=g) < 0.25
    tokens = torch.where(flip, (tokens + 1 + torch.randint(0, v - 1, (b, k), generator=g)) % v, tokens)
    lengths = torch.randint(0, k + 1, (b,), generator=g)
    acc, nxt = ops.verify(tl, tokens, None, position=torch.arange(b) * 7, seed=torch.arange(b), draft_len=lengths,
                          temperature=0.0)
    eacc, enxt = expected_greedy(tl, tokens, lengths)
    assert torch.equal(acc, eacc) and torch.equal(nxt, enxt)
    assert bool((acc < lengths).any()) and bool((acc == lengths).any())  # both outcomes occur


def test_ties_pick_the_lowest_index_like_torch_argmax():
    tl = torch.tensor([[[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, -0.0, -1.0, 0.0]]])
    acc, nxt = ops.verify(tl, torch.tensor([[2, 0]]), None, position=0, temperature=0)
    assert (int(acc), int(nxt)) == (0, 1)
    acc, nxt = ops.verify(tl, torch.tensor([[1, 0]]), None, position=0, temperature=0)
    assert (int(acc), int(nxt)) == (2, 0)  # bonus row: 0.0 and -0.0 tie; index 0 wins


def test_greedy_ignores_draft_logits_seed_position_and_truncation():
    g = torch.Generator().manual_seed(1)
    b, k, v = 16, 3, 50
    tl = torch.randn(b, k + 1, v, generator=g)
    tokens = tl[:, :k].argmax(-1)
    tokens[::3, 1] = (tokens[::3, 1] + 1) % v
    base = ops.verify(tl, tokens, None, position=0, temperature=0)
    for kw in (dict(seed=123, position=999), dict(top_k=3, top_p=0.5, position=5),
               dict(draft_temperature=0.7, saguaro_c=0.1, saguaro_fanout=2, position=1)):
        out = ops.verify(tl, tokens.to(torch.int32), torch.randn(b, k, v, generator=g), temperature=0,
                         onehot=False, **kw)
        assert torch.equal(out[0], base[0]) and torch.equal(out[1], base[1])


def test_greedy_sequences_stay_exact_in_a_mixed_batch():
    g = torch.Generator().manual_seed(2)
    b, k, v = 20, 4, 30
    tl = torch.randn(b, k + 1, v, generator=g)
    dl = torch.randn(b, k, v, generator=g)
    tokens = tl[:, :k].argmax(-1)
    tokens[5:10, 2] = (tokens[5:10, 2] + 3) % v
    temps = torch.tensor([0.0, 1.0] * (b // 2))
    acc, nxt = ops.verify(tl, tokens, dl, position=0, seed=torch.arange(b), temperature=temps)
    eacc, enxt = expected_greedy(tl, tokens, torch.full((b,), k))
    greedy = temps == 0
    assert torch.equal(acc[greedy], eacc[greedy]) and torch.equal(nxt[greedy], enxt[greedy])


def test_top_k_one_is_greedy_at_any_temperature():
    g = torch.Generator().manual_seed(3)
    b, k, v = 32, 3, 40
    tl = torch.randn(b, k + 1, v, generator=g)
    tokens = tl[:, :k].argmax(-1)
    tokens[::4, 0] = (tokens[::4, 0] + 1) % v
    acc, nxt = ops.verify(tl, tokens, tl[:, :k].contiguous(), position=3, seed=torch.arange(b), temperature=1.3,
                          top_k=1)
    eacc, enxt = expected_greedy(tl, tokens, torch.full((b,), k))
    assert torch.equal(acc, eacc) and torch.equal(nxt, enxt)


def test_speculative_rounds_reproduce_greedy_decoding():
    """A toy bigram target and a noisy bigram draft: SD rounds (K = 3) commit exactly the greedy sequence."""
    g = torch.Generator().manual_seed(4)
    v, k, steps = 23, 3, 60
    target = torch.randn(v, v, generator=g) * 3
    draft = target + torch.randn(v, v, generator=g) * 2
    ar = [0]
    while len(ar) < steps + 1:
        ar.append(int(target[ar[-1]].argmax()))
    out = [0]  # committed tokens
    while len(out) < steps + 1:
        ctx = out[-1]
        proposals = []
        for _ in range(k):
            proposals.append(int(draft[ctx].argmax()))
            ctx = proposals[-1]
        prefix = [out[-1]] + proposals
        tl = torch.stack([target[t] for t in prefix])[None].contiguous()
        acc, nxt = ops.verify(tl, torch.tensor([proposals]), None, position=len(out), temperature=0)
        out += proposals[: int(acc)] + [int(nxt)]
    assert out[: steps + 1] == ar[: steps + 1]
