"""SSD tree decoding: every branch row's logits equal those of the branch run alone.

Setup per lane: committed prefix of P tokens, then the glue forward over r, s1..sK
(context slots P..P+K). For each fork position j and fork token c, a branch decodes
DEPTH tokens in scratch slots, all branches of two lanes batched in one
``tree_forward`` per step (rows of the lanes interleaved). Reference: the ordinary
sequence prefix + glue[:j+1] + [c] + branch tokens, prefilled into a spare lane and
verified with ``decode``. Context 40 merges the scratch range into the key range;
context 200 exercises the two-range (context + scratch) key gather.
"""

import pytest
import torch

from ssdcore.models import load_model
from _model_util import branch_scratch_start, save_random_checkpoint, tree_forward

ATOL = 1e-4
K, DEPTH, FORKS = 3, 4, 2


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=["llama", "qwen3", "mistral_sliding3"])
def model(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    extra = {"sliding_window": 3} if request.param == "mistral_sliding3" else {}
    family = request.param.split("_")[0]
    save_random_checkpoint(path, family, seed=7, tokenizer=False, **extra)
    return load_model(path).model


def rand_tokens(gen, n):
    return torch.randint(3, 128, (n,), generator=gen).tolist()


def build_branches(gen, lanes_prefix, lanes_glue):
    """[(lane, j, fork_token, branch_tokens)] for every lane, fork position and fork."""
    out = []
    for lane in lanes_prefix:
        for j in range(K + 1):
            for _ in range(FORKS):
                out.append((lane, j, rand_tokens(gen, 1)[0], rand_tokens(gen, DEPTH - 1)))
    order = torch.randperm(len(out), generator=gen).tolist()  # interleave lanes
    return [out[i] for i in order]


def run_tree(model, prefixes, glues, branches, width):
    """Tree-decode all branches, ``width`` tokens per call; logits [Nb, DEPTH, V]."""
    per_lane_index = {}
    starts, fork_lens, lanes = [], [], []
    for lane, j, _, _ in branches:
        b = per_lane_index.get(lane, 0)
        per_lane_index[lane] = b + 1
        starts.append(branch_scratch_start(model, b, DEPTH))
        fork_lens.append(len(prefixes[lane]) + j + 1)
        lanes.append(lane)
    seqs = [[c] + rest for _, _, c, rest in branches]
    outs = []
    for depth in range(0, DEPTH, width):
        toks = [s[depth:depth + width] for s in seqs]
        outs.append(tree_forward(model, lanes, fork_lens, toks, starts, depth=depth))
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("context", [40, 200])
@pytest.mark.parametrize("width", [1, 2])
def test_tree_branches_equal_plain_sequences(model, context, width):
    gen = torch.Generator().manual_seed(context + width)
    n_branches = 2 * (K + 1) * FORKS
    model.allocate_kv(num_lanes=3, max_slots=context + n_branches * DEPTH,
                      scratch_slots=n_branches * DEPTH)
    prefixes = {0: rand_tokens(gen, 9), 1: rand_tokens(gen, 14)}
    glues = {lane: rand_tokens(gen, K + 1) for lane in prefixes}
    for lane, prefix in prefixes.items():
        model.prefill(lane, prefix)
    glue_logits = model.decode([0, 1], [glues[0], glues[1]], [9, 14])
    assert glue_logits.shape == (2, K + 1, 128)
    branches = build_branches(gen, prefixes, glues)
    tree = run_tree(model, prefixes, glues, branches, width)
    for b, (lane, j, c, rest) in enumerate(branches):
        ctx = prefixes[lane] + glues[lane][:j + 1]
        model.prefill(2, ctx)
        ref = model.decode([2], [[c] + rest], [len(ctx)])[0]
        diff = (tree[b] - ref).abs().max().item()
        assert diff < ATOL, f"branch {b} (lane {lane}, j={j}): max abs diff {diff:.3g}"


def test_tree_leaves_context_intact(model):
    """After tree steps the lane's context KV is unchanged: decoding continues exactly."""
    gen = torch.Generator().manual_seed(5)
    model.allocate_kv(num_lanes=2, max_slots=64 + 16, scratch_slots=16)
    ids = rand_tokens(gen, 20)
    model.prefill(0, ids[:12])
    tree_forward(model, [0] * 4, [12] * 4, [[5], [6], [7], [8]],
                 [branch_scratch_start(model, i, 4) for i in range(4)])
    after = model.decode([0], [ids[12:20]], [12])[0]
    model.prefill(1, ids[:12])
    ref = model.decode([1], [ids[12:20]], [12])[0]
    assert (after - ref).abs().max().item() < ATOL


def test_tree_rejects_branch_outside_scratch(model):
    model.allocate_kv(num_lanes=1, max_slots=48, scratch_slots=8)
    with pytest.raises(ValueError, match="scratch_starts"):
        tree_forward(model, [0], [4], [[1]], [10])  # slot 10 is inside the context region
    with pytest.raises(ValueError, match="scratch_starts \\+ depth"):
        tree_forward(model, [0], [4], [[1, 2]], [46], depth=1)  # runs past max_slots


def test_explicit_visibility_equals_default_causal(model):
    """attend_len = slot + 1 (and all-padding extra_slots) is exactly the default causal rule."""
    gen = torch.Generator().manual_seed(9)
    model.allocate_kv(num_lanes=2, max_slots=48)
    ids = rand_tokens(gen, 12)
    model.prefill(0, ids[:8])
    model.prefill(1, ids[:5])
    lanes, pos = [0, 0, 1, 0, 1], [8, 9, 5, 10, 6]
    toks = [ids[p] for p in pos]
    default = model.forward_rows(toks, pos, lanes, pos)
    explicit = model.forward_rows(toks, pos, lanes, pos, attend_len=[p + 1 for p in pos],
                                  extra_slots=[[-1, -1]] * 5)
    assert (default - explicit).abs().max().item() < 1e-6
