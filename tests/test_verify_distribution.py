"""Losslessness of ssdcore.ops.verify: committed tokens follow the target distribution exactly.

For random target/draft logits over small vocabularies we run many independent sequences (one seed each, all
in one batched call), draft with ops.sample_draft, verify, and compare the distribution of the first
committed token (accepted s_1, or the recovery/bonus token) with the target's transformed p by a chi-square
test; for K = 2 also the joint distribution of the first two committed tokens under context-dependent
"models" (a second round runs where the first one rejected at row 0).

Power: with the sample sizes below the test rejects, at ALPHA = 1e-4, a shift of 1/(4V) probability mass
between two tokens of a uniform p with probability >= 0.9 (checked by test_chi_square_power). The negative
controls show that plausible bugs (greedy matching of a sampled target, verifying against a different q than
the one sampled from, dropping Saguaro in verification) are detected by the same test.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from _verify_ref import ALPHA, chi_square_pvalue, power_against_shift, transform
from ssdcore import ops

N_SAMPLES = {2: 20000, 5: 30000, 17: 40000, 64: 60000}
POSITION = 1000


def _logits(seed: int, v: int, rows: int, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, v, generator=g) * scale


def _per_row(x, k: int):
    """A per-sequence parameter expanded to the sequence's K draft rows (scalars stay scalars)."""
    return x.repeat_interleave(k) if isinstance(x, torch.Tensor) else x


def run_round(target_logits, draft_logits, n, *, params, fanout=None, proposals=None, seed0=0,
              position=POSITION, draft_len=None, verify_overrides=None):
    """Draft (unless proposals are given: one-hot) and verify n sequences. Returns (tokens, accept, next)."""
    k = target_logits.shape[1] - 1
    seeds = torch.arange(seed0, seed0 + n, dtype=torch.int64)
    draft_kw = dict(temperature=params.get("draft_temperature", params.get("temperature", 1.0)),
                    top_k=params.get("draft_top_k", params.get("top_k", 0)),
                    top_p=params.get("draft_top_p", params.get("top_p", 1.0)))
    c = params.get("saguaro_c", 1.0)
    if proposals is None and k > 0:
        v = draft_logits.shape[2]
        tokens = ops.sample_draft(
            draft_logits.reshape(n * k, v),
            position=(position + torch.arange(k)).repeat(n), seed=seeds.repeat_interleave(k),
            temperature=_per_row(draft_kw["temperature"], k), top_k=_per_row(draft_kw["top_k"], k),
            top_p=_per_row(draft_kw["top_p"], k), saguaro_c=_per_row(c, k),
            saguaro_fanout=0 if fanout is None else fanout.reshape(-1)).reshape(n, k)
    else:
        tokens = proposals if proposals is not None else torch.zeros(n, 0, dtype=torch.int64)
    vkw = dict(temperature=params.get("temperature", 1.0), top_k=params.get("top_k", 0),
               top_p=params.get("top_p", 1.0), draft_temperature=draft_kw["temperature"],
               draft_top_k=draft_kw["top_k"], draft_top_p=draft_kw["top_p"], saguaro_c=c,
               saguaro_fanout=fanout, onehot=params.get("onehot", proposals is not None))
    vkw.update(verify_overrides or {})
    acc, nxt = ops.verify(target_logits, tokens, None if proposals is not None else draft_logits,
                          position=position, seed=seeds, draft_len=draft_len, **vkw)
    return tokens, acc, nxt


def first_token_counts(target_rows, draft_rows, n, v, **kw):
    k = target_rows.shape[0] - 1
    tl = target_rows.expand(n, k + 1, v).contiguous()
    dl = draft_rows.expand(n, k, v).contiguous() if draft_rows is not None else None
    tokens, acc, nxt = run_round(tl, dl, n, **kw)
    first = torch.where(acc >= 1, tokens[:, 0], nxt) if k > 0 else nxt
    return np.bincount(first.numpy(), minlength=v)


def target_p(target_rows, params, row=0):
    return transform(target_rows[row].numpy(), params.get("temperature", 1.0), params.get("top_k", 0),
                     params.get("top_p", 1.0))


CASES = [
    # (id, V, K, params, fanout per position)
    ("plain-V2", 2, 2, {}, None),
    ("plain-V5", 5, 2, {}, None),
    ("plain-V17", 17, 4, {}, None),
    ("plain-V64", 64, 2, {}, None),
    ("T0.3", 17, 2, {"temperature": 0.3}, None),
    ("T1.7", 17, 2, {"temperature": 1.7}, None),
    ("T1.7-draftT0.3", 17, 2, {"temperature": 1.7, "draft_temperature": 0.3}, None),
    ("saguaro-C1", 17, 2, {"saguaro_c": 1.0}, [2, 2]),
    ("saguaro-C0.5", 17, 2, {"saguaro_c": 0.5}, [2, 3]),
    ("saguaro-C0.1", 64, 2, {"saguaro_c": 0.1}, [3, 1]),
    ("saguaro-C0.1-V5", 5, 2, {"saguaro_c": 0.1}, [1, 4]),
    ("top-k", 17, 2, {"top_k": 5}, None),
    ("top-k-draft-wider", 17, 2, {"top_k": 4, "draft_top_k": 9}, None),
    ("top-p", 17, 2, {"top_p": 0.8}, None),
    ("top-p-T0.3", 64, 2, {"top_p": 0.7, "temperature": 0.3}, None),
    ("top-k-top-p-saguaro", 64, 2, {"top_k": 20, "top_p": 0.9, "saguaro_c": 0.5}, [2, 2]),
    ("draft-greedy", 17, 2, {"draft_temperature": 0.0}, None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_first_token_follows_p(case):
    name, v, k, params, fan = case
    n = N_SAMPLES[v]
    seed = zlib.crc32(name.encode()) % 10000
    target_rows = _logits(seed, v, k + 1)
    draft_rows = target_rows[:k] + _logits(seed + 1, v, k, scale=1.0)  # related, not equal: both paths run
    fanout = None if fan is None else torch.tensor(fan, dtype=torch.int32).expand(n, k).contiguous()
    counts = first_token_counts(target_rows, draft_rows, n, v, params=params, fanout=fanout, seed0=seed * 100000)
    p = target_p(target_rows, params)
    assert chi_square_pvalue(counts, p) > ALPHA, (counts, np.round(p * n))


@pytest.mark.parametrize("v", [5, 64])
def test_first_token_with_onehot_proposals(v):
    """Deterministic proposals (here random tokens independent of the verifier's randomness): one-hot q."""
    n, k = N_SAMPLES[v], 2
    target_rows = _logits(70 + v, v, k + 1)
    g = torch.Generator().manual_seed(v)
    proposals = torch.randint(0, v, (n, k), generator=g)
    counts = first_token_counts(target_rows, None, n, v, params={"temperature": 0.8}, proposals=proposals,
                                seed0=5_000_000)
    assert chi_square_pvalue(counts, target_p(target_rows, {"temperature": 0.8})) > ALPHA


def test_first_token_with_no_proposals_is_the_bonus():
    v, n = 17, N_SAMPLES[17]
    target_rows = _logits(3, v, 3)
    counts = first_token_counts(target_rows, target_rows[:2] + 0.5, n, v, params={"top_p": 0.9}, draft_len=0,
                                seed0=7_000_000)
    assert chi_square_pvalue(counts, target_p(target_rows, {"top_p": 0.9})) > ALPHA


def test_mixed_parameters_within_one_batch():
    """One batch mixing temperatures, top-k/top-p, Saguaro, one-hot proposals and draft lengths; each group
    of sequences sharing parameters must follow its own p."""
    v, k, groups, per_group = 17, 2, 6, 20000
    n = groups * per_group
    temps = torch.tensor([0.3, 1.0, 1.7, 1.0, 0.3, 1.7])
    top_ks = torch.tensor([0, 5, 0, 0, 8, 0])
    top_ps = torch.tensor([1.0, 1.0, 0.8, 1.0, 0.9, 1.0])
    cs = torch.tensor([1.0, 0.5, 1.0, 0.1, 1.0, 0.5])
    onehot = torch.tensor([False, False, False, False, True, False])
    lens = torch.tensor([2, 2, 1, 2, 2, 0])
    gid = torch.arange(n) % groups
    target_rows = _logits(11, v, k + 1)
    draft_rows = target_rows[:k] + _logits(12, v, k, scale=1.0)
    tl = target_rows.expand(n, k + 1, v).contiguous()
    dl = draft_rows.expand(n, k, v).contiguous()
    params = {"temperature": temps[gid], "top_k": top_ks[gid], "top_p": top_ps[gid], "saguaro_c": cs[gid]}
    fanout = torch.full((n, k), 2, dtype=torch.int32)
    tokens, acc, nxt = run_round(tl, dl, n, params=params, fanout=fanout, seed0=9_000_000, draft_len=lens[gid],
                                 verify_overrides={"onehot": onehot[gid]})
    first = torch.where(acc >= 1, tokens[:, 0], nxt)
    assert bool((acc <= lens[gid]).all())
    for g in range(groups):
        counts = np.bincount(first[gid == g].numpy(), minlength=v)
        p = transform(target_rows[0].numpy(), float(temps[g]), int(top_ks[g]), float(top_ps[g]))
        assert chi_square_pvalue(counts, p) > ALPHA, f"group {g}"


def _joint_counts(v, n, params, fan, seed):
    """First two committed tokens under context-dependent target/draft "models" (K = 2)."""
    g = torch.Generator().manual_seed(seed)
    l1, l2, l3 = torch.randn(v, generator=g) * 2, torch.randn(v, v, generator=g) * 2, torch.randn(v, generator=g)
    d1, d2 = l1 + torch.randn(v, generator=g), l2 + torch.randn(v, v, generator=g)
    c = params.get("saguaro_c", 1.0)
    sample_kw = dict(temperature=params.get("temperature", 1.0), top_k=params.get("top_k", 0),
                     top_p=params.get("top_p", 1.0), saguaro_c=c)
    seeds = torch.arange(seed * 1000, seed * 1000 + n)
    s1 = ops.sample_draft(d1.expand(n, v).contiguous(), position=POSITION, seed=seeds, saguaro_fanout=fan[0],
                          **sample_kw)
    s2 = ops.sample_draft(d2[s1].contiguous(), position=POSITION + 1, seed=seeds, saguaro_fanout=fan[1],
                          **sample_kw)
    tl = torch.stack([l1.expand(n, v), l2[s1], l3.expand(n, v)], dim=1).contiguous()
    dl = torch.stack([d1.expand(n, v), d2[s1]], dim=1).contiguous()
    fanout = torch.tensor(fan, dtype=torch.int32).expand(n, 2).contiguous()
    acc, nxt = ops.verify(tl, torch.stack([s1, s2], 1), dl, position=POSITION, seed=seeds, saguaro_fanout=fanout,
                          **{**sample_kw, "saguaro_c": c})
    x1 = torch.where(acc >= 1, s1, nxt)
    x2 = torch.where(acc == 2, s2, nxt)
    redo = acc == 0  # the round committed one token: the next round (position + 1) decides the second
    m = int(redo.sum())
    r1 = ops.sample_draft(d2[x1[redo]].contiguous(), position=POSITION + 1, seed=seeds[redo],
                          saguaro_fanout=fan[1], **sample_kw)
    tl2 = torch.stack([l2[x1[redo]], l3.expand(m, v)], dim=1).contiguous()
    acc2, nxt2 = ops.verify(tl2, r1[:, None], d2[x1[redo]][:, None].contiguous(), position=POSITION + 1,
                            seed=seeds[redo], saguaro_fanout=fan[1], **sample_kw)
    x2[redo] = torch.where(acc2 >= 1, r1, nxt2)
    counts = np.bincount((x1 * v + x2).numpy(), minlength=v * v)
    t, tk, tp = params.get("temperature", 1.0), params.get("top_k", 0), params.get("top_p", 1.0)
    p1 = transform(l1.numpy(), t, tk, tp)
    joint = np.stack([p1[a] * transform(l2[a].numpy(), t, tk, tp) for a in range(v)])
    return counts, joint, int(redo.sum())


@pytest.mark.parametrize("params,fan", [({}, (0, 0)), ({"temperature": 0.7, "top_k": 4, "saguaro_c": 0.5}, (1, 2)),
                                        ({"top_p": 0.85, "saguaro_c": 0.1}, (2, 1))],
                         ids=["plain", "T0.7-topk-saguaro", "topp-saguaro"])
def test_joint_first_two_tokens(params, fan):
    counts, joint, redone = _joint_counts(5, 40000, params, fan, seed=21 + len(params))
    assert redone > 1000  # the two-round path is exercised
    assert chi_square_pvalue(counts, joint) > ALPHA


def test_results_do_not_depend_on_batch_composition():
    """Each sequence's outcome depends only on its own rows, parameters, seed and position."""
    g = torch.Generator().manual_seed(12)
    b, k, v = 6, 3, 50
    tl, dl = torch.randn(b, k + 1, v, generator=g) * 2, torch.randn(b, k, v, generator=g) * 2
    fan = torch.randint(0, 3, (b, k), generator=g, dtype=torch.int32)
    top_p = torch.tensor([1.0, 0.9, 1.0, 0.8, 1.0, 1.0])
    tok = ops.sample_draft(dl.reshape(-1, v), position=(torch.arange(k) + 10).repeat(b), top_p=top_p.repeat_interleave(k),
                           seed=torch.arange(b).repeat_interleave(k), saguaro_c=0.5,
                           saguaro_fanout=fan.reshape(-1)).reshape(b, k)
    acc, nxt = ops.verify(tl, tok, dl, position=10, seed=torch.arange(b), top_p=top_p, saguaro_c=0.5,
                          saguaro_fanout=fan)
    for i in range(b):
        a1, n1 = ops.verify(tl[i:i + 1].contiguous(), tok[i:i + 1], dl[i:i + 1].contiguous(), position=10, seed=i,
                            top_p=float(top_p[i]), saguaro_c=0.5, saguaro_fanout=fan[i:i + 1])
        assert (int(a1), int(n1)) == (int(acc[i]), int(nxt[i]))


# ---- negative controls: the same test must catch plausible bugs ---------------------------------------------


def test_negative_control_greedy_matching_a_sampled_target_is_detected():
    v, k, n = 17, 2, N_SAMPLES[17]
    target_rows = _logits(5, v, k + 1)
    counts = first_token_counts(target_rows, target_rows[:k] + 0.3, n, v, params={}, seed0=1,
                                verify_overrides={"temperature": 0.0})
    assert chi_square_pvalue(counts, target_p(target_rows, {})) < ALPHA


def test_negative_control_q_mismatch_is_detected():
    """Proposals sampled at draft temperature 1.0, verified as if drawn at 1.3."""
    v, k, n = 17, 2, N_SAMPLES[17]
    target_rows = _logits(6, v, k + 1)
    counts = first_token_counts(target_rows, target_rows[:k] + _logits(7, v, k, 1.0), n, v, params={}, seed0=2,
                                verify_overrides={"draft_temperature": 1.3})
    assert chi_square_pvalue(counts, target_p(target_rows, {})) < ALPHA


def test_negative_control_saguaro_missing_in_verification_is_detected():
    v, k, n = 17, 2, N_SAMPLES[17]
    target_rows = _logits(8, v, k + 1)
    fanout = torch.full((n, k), 2, dtype=torch.int32)
    counts = first_token_counts(target_rows, target_rows[:k] + 0.2, n, v, params={"saguaro_c": 0.3}, fanout=fanout,
                                seed0=3, verify_overrides={"saguaro_c": 1.0})
    assert chi_square_pvalue(counts, target_p(target_rows, {})) < ALPHA


@pytest.mark.parametrize("v", sorted(N_SAMPLES))
def test_chi_square_power(v):
    assert power_against_shift(v, N_SAMPLES[v]) >= 0.9
