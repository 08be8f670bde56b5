"""Draft/target tokenizer compatibility and vocabulary reconciliation.

Speculative decoding exchanges token *ids* between the models, so every id the
draft can emit must denote the same piece in the target's tokenizer. The draft
can emit ids ``[0, min(draft embedding rows, draft tokenizer size))``; rows of a
padded embedding matrix beyond the tokenizer are never sampled.

Vocabulary policy (documented in causal_lm.py too): the common vocabulary is
``V = target tokenizer size`` (capped by the target's embedding rows). Both
models return exactly V logit columns: padded rows past a model's tokenizer
are sliced off (never computed), and ids a model's tokenizer lacks are set to
-inf, so they are never sampled and get zero probability in ``p`` and ``q``.
"""

from __future__ import annotations

import logging
from typing import Optional

from .errors import TokenizerMismatchError

log = logging.getLogger(__name__)
_REPORTED = 5


def tokenizer_vocab_size(tokenizer) -> int:
    """Number of ids the tokenizer defines (highest id + 1, added tokens included)."""
    vocab = tokenizer.get_vocab()
    return (max(vocab.values()) + 1) if vocab else len(tokenizer)


def _pieces(tokenizer, n: int) -> list:
    out = [None] * n
    for piece, idx in tokenizer.get_vocab().items():
        if 0 <= idx < n:
            out[idx] = piece
    return out


def check_tokenizers_compatible(target_tok, draft_tok, draft_vocab_size: int,
                                target_vocab_size: Optional[int] = None) -> int:
    """Raise TokenizerMismatchError unless target and draft agree on every id the
    draft can emit; return the common vocabulary size V (see module docstring)."""
    if isinstance(draft_vocab_size, bool) or not isinstance(draft_vocab_size, int) \
            or draft_vocab_size < 1:
        raise ValueError(f"draft_vocab_size={draft_vocab_size!r}: expected a positive int")
    if target_tok is None or draft_tok is None:
        raise TokenizerMismatchError("both target and draft need a tokenizer to check compatibility")
    emit = min(draft_vocab_size, tokenizer_vocab_size(draft_tok))
    target_size = tokenizer_vocab_size(target_tok)
    if target_vocab_size is not None:
        target_size = min(target_size, target_vocab_size)
    target_pieces, draft_pieces = _pieces(target_tok, emit), _pieces(draft_tok, emit)
    bad = [(i, target_pieces[i] if i < target_size else None, draft_pieces[i])
           for i in range(emit)
           if draft_pieces[i] is not None
           and (i >= target_size or target_pieces[i] != draft_pieces[i])]
    if bad:
        shown = "; ".join(f"id {i}: target {t!r} vs draft {d!r}" for i, t, d in bad[:_REPORTED])
        more = f" (and {len(bad) - _REPORTED} more)" if len(bad) > _REPORTED else ""
        raise TokenizerMismatchError(
            f"draft and target tokenizers differ on {len(bad)} of the {emit} token ids the draft "
            f"can emit: {shown}{more}. Use a draft trained with the target's tokenizer.")
    return target_size


def reconcile_vocab(target, draft) -> int:
    """Check a target/draft ``LoadedModel`` pair and set both models' logits to the common V."""
    common = check_tokenizers_compatible(target.tokenizer, draft.tokenizer,
                                         draft.config.vocab_size, target.config.vocab_size)
    draft_emit = min(draft.config.vocab_size, tokenizer_vocab_size(draft.tokenizer))
    target.model.set_vocab_policy(common, common)
    draft.model.set_vocab_policy(common, min(common, draft_emit))
    log.info("common vocabulary: %d ids (target rows %d, draft rows %d, draft emits %d)",
             common, target.config.vocab_size, draft.config.vocab_size, draft_emit)
    return common
