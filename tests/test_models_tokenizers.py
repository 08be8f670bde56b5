"""Draft/target tokenizer compatibility checks and the common-vocabulary policy."""

import pytest
import torch

from ssdcore.models import (TokenizerMismatchError, check_tokenizers_compatible, load_model,
                            reconcile_vocab)
from _model_util import make_tokenizer, save_random_checkpoint


def word_tokenizer(pieces):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.WordLevel(vocab={p: i for i, p in enumerate(pieces)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


BASE = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(3, 128)]


def test_identical_tokenizers_compatible():
    assert check_tokenizers_compatible(make_tokenizer(128), make_tokenizer(128), 128) == 128


def test_padded_draft_embedding_and_smaller_draft_vocab_are_compatible():
    # the draft's embedding has 160 rows but its tokenizer only 100 ids: ids >= 100 never emitted
    assert check_tokenizers_compatible(make_tokenizer(128), make_tokenizer(100), 160) == 128
    # target embedding smaller than its tokenizer: common vocab capped at the target's rows
    assert check_tokenizers_compatible(make_tokenizer(128), make_tokenizer(100), 100,
                                       target_vocab_size=120) == 120


def test_mismatch_reports_first_ids_and_pieces():
    pieces = list(BASE)
    pieces[7], pieces[9] = pieces[9], pieces[7]
    with pytest.raises(TokenizerMismatchError) as e:
        check_tokenizers_compatible(word_tokenizer(BASE), word_tokenizer(pieces), 128)
    msg = str(e.value)
    assert "2 of the 128" in msg
    assert "id 7: target 'w7' vs draft 'w9'" in msg and "id 9: target 'w9' vs draft 'w7'" in msg


def test_draft_emitting_ids_unknown_to_target_is_a_mismatch():
    with pytest.raises(TokenizerMismatchError, match="id 100: target None vs draft 'w100'"):
        check_tokenizers_compatible(make_tokenizer(100), make_tokenizer(128), 128)


def test_bad_draft_vocab_size_argument():
    with pytest.raises(ValueError, match="draft_vocab_size=0"):
        check_tokenizers_compatible(make_tokenizer(8), make_tokenizer(8), 0)


def test_reconcile_vocab_slices_and_masks(tmp_path):
    """Target: 160 embedding rows, 128-id tokenizer. Draft: 128 rows, 100-id tokenizer."""
    save_random_checkpoint(tmp_path / "t", "llama", seed=1, vocab_size=160, tokenizer_vocab=128)
    save_random_checkpoint(tmp_path / "d", "qwen3", seed=2, vocab_size=128, tokenizer_vocab=100)
    target, draft = load_model(tmp_path / "t"), load_model(tmp_path / "d")
    for m in (target.model, draft.model):
        m.allocate_kv(1, 16)
    before = target.model.prefill(0, [4, 5, 6])
    assert before.shape == (160,) and torch.isinf(before[128:]).all()
    assert reconcile_vocab(target, draft) == 128
    t_logits, d_logits = target.model.prefill(0, [4, 5, 6]), draft.model.prefill(0, [4, 5, 6])
    assert t_logits.shape == d_logits.shape == (128,)
    assert torch.equal(t_logits, before[:128])
    assert torch.isinf(d_logits[100:]).all() and torch.isfinite(d_logits[:100]).all()


def test_reconcile_vocab_raises_on_mismatch(tmp_path):
    save_random_checkpoint(tmp_path / "t", "llama", seed=1)
    save_random_checkpoint(tmp_path / "d", "llama", seed=2, tokenizer=False)
    pieces = list(BASE)
    pieces[50] = "zzz"
    word_tokenizer(pieces).save_pretrained(str(tmp_path / "d"))
    with pytest.raises(TokenizerMismatchError, match="id 50: target 'w50' vs draft 'zzz'"):
        reconcile_vocab(load_model(tmp_path / "t"), load_model(tmp_path / "d"))
