"""Our CausalLM vs transformers on random tiny checkpoints of every supported family.

Tolerance: float32 logits must agree within ATOL = 1e-4 absolute (observed ~1e-5 with
logits of magnitude ~6). Covered per family variant: prefill, incremental decode,
K+1-token verification at batch 1 and at batch 3 with different lengths (also with
rows shuffled and non-contiguous lanes), and greedy generation == HF ``generate``.
"""

import pytest
import torch

from ssdcore.models import load_model
from _model_util import greedy_generate, save_random_checkpoint

ATOL = 1e-4
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
VARIANTS = {
    "llama": ("llama", {}),
    "llama3_rope_tied": ("llama", dict(rope_scaling=LLAMA3_ROPE, rope_theta=500000.0,
                                       tie_word_embeddings=True)),
    "llama_linear_rope_bias": ("llama", dict(rope_scaling={"rope_type": "linear", "factor": 2.0},
                                             attention_bias=True, mlp_bias=True)),
    "mistral": ("mistral", {}),
    "mistral_sliding4": ("mistral", dict(sliding_window=4)),
    "qwen2": ("qwen2", {}),
    "qwen2_sliding_layer1": ("qwen2", dict(use_sliding_window=True, sliding_window=5,
                                           max_window_layers=1)),
    "qwen3": ("qwen3", {}),
    "qwen3_tied_bias": ("qwen3", dict(tie_word_embeddings=True, attention_bias=True)),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def pair(request, tmp_path_factory):
    family, overrides = VARIANTS[request.param]
    path = tmp_path_factory.mktemp(request.param)
    hf = save_random_checkpoint(path, family, seed=len(request.param), **overrides)
    loaded = load_model(path)
    loaded.model.allocate_kv(num_lanes=4, max_slots=96)
    return hf, loaded


def hf_logits(hf, ids):
    with torch.no_grad():
        return hf(torch.tensor([ids])).logits[0].float()


def seq(seed, n, vocab=128):
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def close(ours, ref):
    diff = (ours - ref).abs().max().item()
    assert diff < ATOL, f"max abs diff {diff:.3g} >= {ATOL}"


def test_prefill_and_incremental_decode(pair):
    hf, loaded = pair
    model, ids = loaded.model, seq(1, 40)
    ref = hf_logits(hf, ids)
    close(model.prefill(0, ids[:25]), ref[24])
    for i in range(25, 40):
        close(model.decode([0], [[ids[i]]], [i])[0, 0], ref[i])


def test_verification_batch1(pair):
    hf, loaded = pair
    model, ids = loaded.model, seq(2, 30)
    ref = hf_logits(hf, ids)
    model.prefill(1, ids[:20])
    for k_plus_1 in (5, 8):  # rejected tokens are simply overwritten next time
        close(model.decode([1], [ids[20:20 + k_plus_1]], [20])[0], ref[20:20 + k_plus_1])


def test_verification_batch3_different_lengths(pair):
    hf, loaded = pair
    model = loaded.model
    lens, n = (6, 17, 33), 5
    seqs = [seq(10 + i, L + n) for i, L in enumerate(lens)]
    refs = [hf_logits(hf, s) for s in seqs]
    lanes = [0, 2, 3]  # non-contiguous lanes
    for lane, s, L in zip(lanes, seqs, lens):
        model.prefill(lane, s[:L])
    out = model.decode(lanes, [s[L:L + n] for s, L in zip(seqs, lens)], list(lens))
    for b, (ref, L) in enumerate(zip(refs, lens)):
        close(out[b], ref[L:L + n])
    step = model.decode(lanes, [[s[L + n - 1]] for s, L in zip(seqs, lens)],
                        [L + n - 1 for L in lens])
    for b, (ref, L) in enumerate(zip(refs, lens)):
        close(step[b, 0], ref[L + n - 1])


def test_shuffled_rows_ragged_lanes(pair):
    hf, loaded = pair
    model = loaded.model
    seqs = [seq(20, 12), seq(21, 20)]
    refs = [hf_logits(hf, s) for s in seqs]
    model.prefill(0, seqs[0][:9])
    model.prefill(1, seqs[1][:14])
    rows = [(0, i) for i in range(9, 12)] + [(1, i) for i in range(14, 20)]  # 3 + 6 rows
    perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0)).tolist()
    rows = [rows[p] for p in perm]
    tokens = [seqs[lane][i] for lane, i in rows]
    pos = [i for _, i in rows]
    out = model.forward_rows(tokens, pos, [lane for lane, _ in rows], pos)
    for r, (lane, i) in enumerate(rows):
        close(out[r], refs[lane][i])


def test_logits_rows_subset(pair):
    hf, loaded = pair
    ids = seq(3, 16)
    ref = hf_logits(hf, ids)
    pos = list(range(16))
    out = loaded.model.forward_rows(ids, pos, [2] * 16, pos, logits_rows=[3, 15])
    assert out.shape == (2, 128) and out.dtype == torch.float32
    close(out, ref[[3, 15]])


def test_greedy_matches_transformers_generate(pair):
    hf, loaded = pair
    prompt, n = seq(4, 7), 24
    with torch.no_grad():
        gen = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, 7, dtype=torch.long),
                          max_new_tokens=n, do_sample=False, pad_token_id=0)
    expected = gen[0, 7:].tolist()
    ours = greedy_generate(loaded.model, prompt, n, lane=3, eos_token_ids=loaded.eos_token_ids)
    assert ours == expected
