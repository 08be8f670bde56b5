"""Greedy exactness of the engine: ssd (every backup, uniform / geometric / list fan-out, several K),
sd and ar all produce exactly the token ids of `transformers` greedy `generate` on the target, at
batch 1 and batch 8 with mixed prompt lengths, and with requests joining while others run."""
import threading

import pytest
import torch

import ssdcore
from ssdcore import SamplingParams

NEW = 24
GREEDY = SamplingParams(temperature=0.0, max_tokens=NEW, ignore_eos=True)
SNIPPETS = [
    "def fibonacci(n):\n",
    "import os\n\n\nclass Config:\n    def __init__(self, path):\n",
    "    for i in range(len(items)):\n        if items[i] ",
    "x",
    "def _check(value, name):\n    if not isinstance(value, int):\n        raise TypeError(",
    "# Copyright 2001 Python Software Foundation\n\"\"\"Utilities for",
    "        return self._data[key]\n\n    def __len__(self",
    "from collections import namedtuple\n\nPoint = namedtuple('Point', ['x', 'y'])\n\ndef dist(a, b):\n"
    "    return ((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5\n\n\ndef main(",
]


@pytest.fixture(scope="module")
def pair():
    return tuple(str(p) for p in ssdcore.bundled_pair())


@pytest.fixture(scope="module")
def reference(pair):
    """transformers greedy generate on the target, per snippet (token ids of the prompt, output)."""
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(pair[0])
    model = transformers.AutoModelForCausalLM.from_pretrained(pair[0], dtype=torch.float32)
    model.eval()
    ref = {}
    with torch.inference_mode():
        for text in SNIPPETS:
            ids = tok.encode(text, add_special_tokens=False)
            out = model.generate(torch.tensor([ids]), max_new_tokens=NEW, do_sample=False,
                                 min_new_tokens=NEW, pad_token_id=tok.eos_token_id)
            ref[text] = out[0, len(ids):].tolist()
    return ref


def run(pair, prompts, **engine_kw):
    with ssdcore.Engine(*pair, max_context=256, **engine_kw) as engine:
        return [o.token_ids for o in engine.generate(prompts, GREEDY)], engine.stats()


def check(outputs, prompts, reference):
    for text, got in zip(prompts, outputs):
        assert got == reference[text], f"mismatch for {text!r}"


@pytest.mark.parametrize("mode", ["ar", "sd"])
def test_baselines_match_transformers(pair, reference, mode):
    outputs, _ = run(pair, SNIPPETS[:3], mode=mode, K=4, max_batch=1)
    check(outputs, SNIPPETS[:3], reference)


@pytest.mark.parametrize("K", [1, 3, 5, 8])
@pytest.mark.parametrize("backup", ["jit", "ngram", "none", "auto"])
def test_ssd_batch1_every_backup_and_K(pair, reference, K, backup):
    prompts = SNIPPETS[:2]
    outputs, stats = run(pair, prompts, mode="ssd", K=K, backup=backup, max_batch=1)
    check(outputs, prompts, reference)
    assert stats["rounds"] > 0


@pytest.mark.parametrize("fan_out", ["geometric", 3, [3, 2, 1, 1, 4]])
def test_ssd_fan_out_modes(pair, reference, fan_out):
    prompts = SNIPPETS[2:4]
    outputs, _ = run(pair, prompts, mode="ssd", K=4, fan_out=fan_out, backup="jit", max_batch=1)
    check(outputs, prompts, reference)


@pytest.mark.parametrize("mode,backup", [("ssd", "jit"), ("ssd", "ngram"), ("ssd", "none"),
                                         ("ssd", "auto"), ("sd", "jit"), ("ar", "jit")])
def test_batch8_mixed_lengths(pair, reference, mode, backup):
    outputs, stats = run(pair, SNIPPETS, mode=mode, K=4, backup=backup, max_batch=8)
    check(outputs, SNIPPETS, reference)
    assert stats["rounds"] < len(SNIPPETS) * NEW  # sequences really shared rounds


def test_requests_join_mid_run(pair, reference):
    """Requests submitted while others are decoding join the running batch and stay exact."""
    with ssdcore.Engine(*pair, mode="ssd", K=4, max_batch=4, max_context=256) as engine:
        late = {}

        def submit_late():
            late["out"] = engine.generate(SNIPPETS[4:7], GREEDY)

        first = engine.stream(SNIPPETS[0], GREEDY)
        next(first)  # the first request is running
        thread = threading.Thread(target=submit_late)
        thread.start()
        early = engine.generate(SNIPPETS[1:4], GREEDY)
        list(first)
        thread.join(timeout=120)
        assert engine.last_output.token_ids == reference[SNIPPETS[0]]
        check([o.token_ids for o in early], SNIPPETS[1:4], reference)
        check([o.token_ids for o in late["out"]], SNIPPETS[4:7], reference)


def test_seeded_sampling_independent_of_batch(pair):
    """Same seed, same output, whatever else is in the batch (with a fixed backup: `auto` picks
    backups from measured timings, which changes the proposals, not the output distribution)."""
    sp = SamplingParams(temperature=1.0, top_p=0.95, seed=1234, max_tokens=16, ignore_eos=True)
    other = SamplingParams(temperature=0.8, seed=99, max_tokens=20, ignore_eos=True)
    with ssdcore.Engine(*pair, mode="ssd", K=4, backup="jit", max_batch=4, max_context=256) as engine:
        alone = engine.generate([SNIPPETS[0]], sp)[0].token_ids
        mixed = engine.generate([SNIPPETS[1], SNIPPETS[0], SNIPPETS[2]], [other, sp, other])[1].token_ids
    assert alone == mixed
