"""The bundled target/draft pair: public API, offline `transformers` loading, basic quality."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

try:
    import ssdcore.models.bundled  # noqa: F401
except ImportError:  # running from a source checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    import ssdcore.models.bundled  # noqa: F401

import ssdcore  # noqa: E402

transformers = pytest.importorskip("transformers")

# Written for this test (not part of the CPython stdlib the pair was trained on).
SNIPPET = '''import os


def find_files(root, suffix=".py"):
    """Return the sorted paths under root that end with suffix."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            if name.endswith(suffix):
                found.append(os.path.join(dirpath, name))
    return sorted(found)


class Counter:
    def __init__(self):
        self.counts = {}

    def add(self, key, n=1):
        self.counts[key] = self.counts.get(key, 0) + n
        return self.counts[key]
'''


def _pair():
    fn = getattr(ssdcore, "bundled_pair", None) or ssdcore.models.bundled.bundled_pair
    return fn()


@pytest.fixture(scope="module")
def pair():
    target_dir, draft_dir = _pair()
    tok = transformers.AutoTokenizer.from_pretrained(target_dir, local_files_only=True)
    load = transformers.AutoModelForCausalLM.from_pretrained
    target = load(target_dir, local_files_only=True, dtype=torch.float32).eval()
    draft = load(draft_dir, local_files_only=True, dtype=torch.float32).eval()
    return tok, target, draft


def test_public_api_returns_existing_paths():
    target_dir, draft_dir = _pair()
    for d in (target_dir, draft_dir):
        assert isinstance(d, Path) and d.is_dir()
        for name in ("config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json", "generation_config.json"):
            assert (d / name).is_file(), d / name
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["model_type"] == "llama" and cfg["tie_word_embeddings"]
        gen = json.loads((d / "generation_config.json").read_text())
        assert gen["eos_token_id"] == cfg["eos_token_id"]


def test_public_api_is_exported_from_package():
    assert ssdcore.bundled_pair is ssdcore.models.bundled.bundled_pair


def test_missing_pair_names_path_and_command(tmp_path, monkeypatch):
    monkeypatch.setattr(ssdcore.models.bundled, "BUNDLED_DIR", tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        ssdcore.models.bundled.bundled_pair()
    assert str(tmp_path) in str(err.value) and "tools/train_pair.py" in str(err.value)


def test_tokenizers_identical_and_roundtrip(pair):
    tok, target, draft = pair
    draft_tok = transformers.AutoTokenizer.from_pretrained(_pair()[1], local_files_only=True)
    assert tok.get_vocab() == draft_tok.get_vocab()
    text = SNIPPET + "\tx = 'caf\u00e9 \u2603'  # tabs, unicode\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert len(ids) < len(text) / 2.0  # BPE actually compresses Python source
    assert tok.eos_token_id == target.config.eos_token_id
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


def test_vocab_sizes_match(pair):
    tok, target, draft = pair
    assert target.config.vocab_size == draft.config.vocab_size == len(tok)


def test_target_is_larger_than_draft(pair):
    _, target, draft = pair
    n_t = sum(p.numel() for p in target.parameters())
    n_d = sum(p.numel() for p in draft.parameters())
    assert n_t > 5 * n_d


def test_target_generates_greedily(pair):
    tok, target, _ = pair
    ids = tok("def add(a, b):\n", return_tensors="pt", add_special_tokens=False)["input_ids"]
    out = target.generate(ids, max_new_tokens=8, do_sample=False,
                          pad_token_id=tok.eos_token_id)
    assert out.shape[1] == ids.shape[1] + 8
    assert torch.equal(out[0, :ids.shape[1]], ids[0])
    assert isinstance(tok.decode(out[0, ids.shape[1]:]), str)


@torch.no_grad()
def test_draft_agrees_with_target_teacher_forced(pair):
    tok, target, draft = pair
    ids = tok(SNIPPET, return_tensors="pt", add_special_tokens=False)["input_ids"]
    t = target(input_ids=ids).logits.argmax(-1)
    d = draft(input_ids=ids).logits.argmax(-1)
    agreement = (t == d).float().mean().item()
    assert agreement > 0.5, agreement
