"""TokenMasker (python/ssdcore/engine/token_masker.py) on its own, with the bundled pair's tokenizer: the
masks fill_masks writes through a raw pointer equal llguidance's own answers for the same tokens,
whatever order the rows come in (rollback), per side; rows that leave the grammar and unknown keys get
every bit; padding bits past the tokenizer's vocabulary stay 0; register/release/fill_masks from
several threads at once give the same masks.
"""
from __future__ import annotations

import json
import random
import threading

import numpy as np
import pytest

llguidance = pytest.importorskip("llguidance")
import llguidance.hf  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from ssdcore.engine.response_format import as_response_format  # noqa: E402
from ssdcore.engine.token_masker import TokenMasker  # noqa: E402
from ssdcore.models.bundled import bundled_pair  # noqa: E402

EOS = [0]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                           "tags": {"type": "array", "items": {"type": "string"}}},
          "required": ["name", "age"], "additionalProperties": False}
JSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}}
VALID_JSON = json.dumps({"name": "Ada Lovelace", "age": 36, "tags": ["math", "engines"]})


@pytest.fixture(scope="module")
def hf_tokenizer():
    return AutoTokenizer.from_pretrained(str(bundled_pair()[0]))


@pytest.fixture(scope="module")
def width(hf_tokenizer):
    return len(hf_tokenizer) + 40  # logits wider than the tokenizer (padded vocabulary)


@pytest.fixture(scope="module")
def masker(hf_tokenizer, width):
    return TokenMasker(hf_tokenizer, width, EOS)


@pytest.fixture(scope="module")
def llg_tokenizer(hf_tokenizer, width):
    return llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=width, eos_token=EOS)


def words_of(width: int) -> int:
    return (width + 31) // 32


def fill(masker, side, rows):
    buf = np.zeros((max(len(rows), 1), masker.words), dtype=np.uint32)
    masker.fill_masks(side, rows, buf.ctypes.data, masker.words)
    return buf[:len(rows)]


def reference(llg_tokenizer, response_format, tokens, words):
    """llguidance's own mask after ``tokens`` (a fresh matcher), or None if it rejects them."""
    m = llguidance.LLMatcher(llg_tokenizer, as_response_format(response_format).grammar, log_level=0)
    if m.try_consume_tokens(list(tokens)) != len(tokens):
        return None
    out = np.zeros(words, dtype=np.uint32)
    m.unsafe_compute_mask_ptr(out.ctypes.data, 4 * words)
    return out


def allowed(mask) -> list:
    return [int(t) for t in np.flatnonzero(np.unpackbits(mask.view(np.uint8), bitorder="little"))]


def test_verification_rows_match_llguidance(masker, llg_tokenizer, hf_tokenizer, width):
    ids = hf_tokenizer.encode(VALID_JSON, add_special_tokens=False)
    key = masker.register(JSON_FORMAT)
    K = 4
    for start in range(0, len(ids) - K, 3):  # each round: generated, then path = d1..di, i = 0..K
        rows = [(key, ids[:start], ids[start:start + i]) for i in range(K + 1)]
        got = fill(masker, 0, rows)
        for i, row in enumerate(got):
            want = reference(llg_tokenizer, JSON_FORMAT, ids[:start + i], masker.words)
            np.testing.assert_array_equal(row, want, err_msg=f"start {start}, path length {i}")
            assert ids[start + i] in allowed(row)
    masker.release(key)


def test_rows_in_any_order_roll_back(masker, llg_tokenizer, hf_tokenizer):
    ids = hf_tokenizer.encode(VALID_JSON, add_special_tokens=False)
    key = masker.register(JSON_FORMAT)
    rng = random.Random(0)
    cuts = [rng.randrange(len(ids) + 1) for _ in range(25)]
    rows = [(key, ids[:c // 2], ids[c // 2:c]) for c in cuts]
    for (_, g, p), row in zip(rows, fill(masker, 0, rows)):
        np.testing.assert_array_equal(row, reference(llg_tokenizer, JSON_FORMAT, g + p, masker.words))
    masker.release(key)


def test_sides_keep_separate_state(masker, llg_tokenizer, hf_tokenizer):
    ids = hf_tokenizer.encode(VALID_JSON, add_special_tokens=False)
    key = masker.register(JSON_FORMAT)
    for n in range(0, len(ids), 4):  # the target runs behind the draft, calls interleave
        target_row = fill(masker, 0, [(key, ids[:n], [])])[0]
        draft_row = fill(masker, 1, [(key, ids[:n + 2], ids[n + 2:n + 3])])[0]
        np.testing.assert_array_equal(target_row, reference(llg_tokenizer, JSON_FORMAT, ids[:n], masker.words))
        np.testing.assert_array_equal(draft_row, reference(llg_tokenizer, JSON_FORMAT, ids[:n + 3], masker.words))
    masker.release(key)


def test_rejected_path_unknown_key_and_padding(masker, hf_tokenizer, width):
    fmt = {"type": "regex", "regex": "ab+c"}
    a, b, c, x = (hf_tokenizer.convert_tokens_to_ids(t) for t in "abcx")
    key = masker.register(fmt)
    rows = [(key, [], []), (key, [a], [x]), (key, [a], [b, b]), (key, [a, b], [width + 5]),
            (key + 1000, [], []), (key, [a, b, c], [])]
    got = fill(masker, 0, rows)
    full = np.full(masker.words, 0xFFFFFFFF, dtype=np.uint32)
    for i in (1, 3, 4):  # a rejected draft token, an id past the logits, an unknown key
        np.testing.assert_array_equal(got[i], full, err_msg=f"row {i}")
    assert a in allowed(got[0]) and x not in allowed(got[0])
    assert set(allowed(got[2])) >= {b, c}
    assert allowed(got[5]) == EOS  # the whole regex matched: only the engine's EOS may follow
    vocab = len(hf_tokenizer)
    for i in (0, 2, 5):  # constrained rows never allow the padding ids of the logits
        assert max(allowed(got[i])) < vocab
    masker.release(key)
    np.testing.assert_array_equal(fill(masker, 0, [(key, [], [])])[0], full)  # released = unknown


def test_eos_then_more_tokens_leaves_the_grammar(masker, hf_tokenizer):
    a, b, c = (hf_tokenizer.convert_tokens_to_ids(t) for t in "abc")
    key = masker.register({"type": "regex", "regex": "ab+c?"})
    got = fill(masker, 1, [(key, [a, b], []), (key, [a, b], [EOS[0], b]), (key, [a, b], [c])])
    assert EOS[0] in allowed(got[0]) and b in allowed(got[0])
    assert (got[1] == 0xFFFFFFFF).all()
    assert allowed(got[2]) == EOS
    masker.release(key)


def test_register_rejects_what_does_not_compile(masker):
    with pytest.raises(ValueError, match="regex"):
        masker.register({"type": "regex", "regex": "a(b"})
    with pytest.raises(ValueError, match="constrains nothing"):
        masker.register({"type": "text"})
    with pytest.raises(ValueError, match="words = 3"):
        masker.fill_masks(0, [], 0, 3)
    with pytest.raises(ValueError, match="side = 2"):
        masker.fill_masks(2, [], 0, masker.words)
    key = masker.register({"type": "json_object"})  # still usable
    assert key > 0
    masker.release(key)
    masker.release(key)  # twice is harmless


def test_width_narrower_than_the_tokenizer(hf_tokenizer, llg_tokenizer):
    narrow = len(hf_tokenizer) - 100  # ids past the logits cannot be sampled: their bits are cut
    m = TokenMasker(hf_tokenizer, narrow, EOS)
    fmt = {"type": "grammar", "grammar": 'root ::= [a-z]+ "!"'}
    key = m.register(fmt)
    row = fill(m, 0, [(key, [], [])])[0]
    full = reference(llg_tokenizer, fmt, [], words_of(llg_tokenizer.vocab_size))
    want = [t for t in allowed(full) if t < narrow]
    assert allowed(row) == want and want


def test_threads_register_fill_and_release_at_once(masker, llg_tokenizer, hf_tokenizer):
    """Two 'workers' (sides 0 and 1) fill masks while four caller threads register and release;
    every mask equals the reference. The barrier makes them start together, nothing waits on time."""
    ids = hf_tokenizer.encode(VALID_JSON, add_special_tokens=False)
    keys = [masker.register(JSON_FORMAT) for _ in range(3)]
    want = [reference(llg_tokenizer, JSON_FORMAT, ids[:n], masker.words) for n in range(len(ids))]
    barrier = threading.Barrier(6)
    failures = []

    def worker(side):
        barrier.wait()
        for n in range(len(ids)):
            rows = [(k, ids[:max(n - 1, 0)], ids[max(n - 1, 0):n]) for k in keys]
            for row in fill(masker, side, rows):
                if not np.array_equal(row, want[n]):
                    failures.append((side, n))

    def caller(seed):
        barrier.wait()
        rng = random.Random(seed)
        for _ in range(10):
            k = masker.register(rng.choice([JSON_FORMAT, {"type": "regex", "regex": "[0-9]+"}]))
            fill(masker, rng.randrange(2), [(k, [], [])])
            masker.release(k)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (0, 1)]
    threads += [threading.Thread(target=caller, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    for k in keys:
        masker.release(k)
    assert masker.active() == 0


def test_masker_needs_a_tokenizer():
    with pytest.raises(ValueError, match="tokenizer"):
        TokenMasker(None, 10)
