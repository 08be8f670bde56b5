"""Loading: sharded weights, EOS ids, chat template, vocab padding, dtypes, and clear errors.

Every failure must be one exception from ssdcore.models.errors (or ValueError for bad
arguments) with an actionable message and no chained traceback.
"""

import json
import shutil
import time

import pytest
import torch

from ssdcore.models import (ModelLoadError, ModelNotFoundError, UnsupportedArchitectureError,
                            WeightsError, load_model)
from _model_util import save_random_checkpoint


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A valid tiny Llama checkpoint (read-only for the tests: copy before editing)."""
    path = tmp_path_factory.mktemp("llama")
    hf = save_random_checkpoint(path, "llama", seed=3, generation_eos=[2, 5])
    return path, hf


def copy_of(ckpt, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(ckpt[0], dst)
    return dst


def clean(excinfo):
    """The error was raised ``from None``: no chained traceback soup."""
    err = excinfo.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_loaded_model_fields(ckpt):
    loaded = load_model(ckpt[0])
    assert loaded.eos_token_ids == (2, 5)  # generation_config [2, 5] + config 2, de-duplicated
    assert loaded.config.eos_token_ids == (2, 5)
    assert loaded.chat_template and "assistant" in loaded.chat_template
    assert loaded.tokenizer.convert_ids_to_tokens(7) == "w7"
    assert loaded.path == ckpt[0] and loaded.config.family == "llama"
    assert loaded.model.dtype == torch.float32 and loaded.model.device.type == "cpu"


def test_sharded_checkpoint_loads_identically(ckpt, tmp_path):
    path, hf = ckpt
    hf.save_pretrained(str(tmp_path), max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    sharded, single = load_model(tmp_path).model, load_model(path).model
    for (name, a), (_, b) in zip(sharded.named_parameters(), single.named_parameters()):
        assert torch.equal(a, b), name
    shard = sorted(tmp_path.glob("model-*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(WeightsError, match=shard.name) as e:
        load_model(tmp_path)
    clean(e)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", torch.bfloat16])
def test_low_precision_dtypes_run_close_to_fp32(ckpt, dtype):
    ids = list(range(3, 20))
    ref = load_model(ckpt[0]).model
    low = load_model(ckpt[0], dtype=dtype).model
    assert low.embed.dtype == (torch.float16 if dtype == "float16" else torch.bfloat16)
    for m in (ref, low):
        m.allocate_kv(1, 32)
    a, b = ref.prefill(0, ids), low.prefill(0, ids)
    assert b.dtype == torch.float32
    assert (a - b).abs().max().item() < 0.05 * a.abs().max().item()


def test_vocab_padding_masked(tmp_path):
    """Embedding has 128 rows, tokenizer 100 ids: ids >= 100 are -inf and never sampled."""
    save_random_checkpoint(tmp_path, "llama", seed=1, tokenizer_vocab=100)
    loaded = load_model(tmp_path)
    m = loaded.model
    assert len(loaded.tokenizer) == 100 and m.valid_vocab_size == 100
    m.allocate_kv(1, 16)
    logits = m.prefill(0, [5, 6, 7])
    assert logits.shape == (128,)
    assert torch.isinf(logits[100:]).all() and torch.isfinite(logits[:100]).all()
    assert int(logits.argmax()) < 100


def test_bad_arguments():
    with pytest.raises(ValueError, match="dtype='int8'"):
        load_model("/nonexistent", dtype="int8")
    with pytest.raises(ValueError, match="device='tpu'"):
        load_model("/nonexistent", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            load_model("/nonexistent", device="cuda:0")


def test_missing_directory(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist") as e:
        load_model(tmp_path / "no" / "such" / "model")
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ValueError)
    assert "config.json" in str(e.value)
    clean(e)


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json") as e:
        load_model(tmp_path)
    clean(e)


def test_missing_weights(ckpt, tmp_path):
    path = copy_of(ckpt, tmp_path)
    (path / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="no safetensors weights") as e:
        load_model(path)
    clean(e)
    (path / "pytorch_model.bin").write_bytes(b"\0")
    with pytest.raises(WeightsError, match="safetensors"):
        load_model(path)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_safetensors(ckpt, tmp_path, damage):
    path = copy_of(ckpt, tmp_path)
    f = path / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(b"\x13\x37" * 64 if damage == "garbage" else data[:len(data) // 2])
    with pytest.raises(WeightsError, match="model.safetensors") as e:
        load_model(path)
    clean(e)


def test_missing_tensor_and_shape_mismatch(ckpt, tmp_path):
    from safetensors.torch import load_file, save_file
    path = copy_of(ckpt, tmp_path)
    tensors = load_file(str(path / "model.safetensors"))
    name = "model.layers.1.mlp.up_proj.weight"
    save_file({k: v for k, v in tensors.items() if k != name}, str(path / "model.safetensors"))
    with pytest.raises(WeightsError, match=name.replace(".", r"\.")):
        load_model(path)
    tensors[name] = tensors[name][:, :-1].contiguous()
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(WeightsError, match="shape"):
        load_model(path)


def edit_config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))


def test_unsupported_architecture(ckpt, tmp_path):
    path = copy_of(ckpt, tmp_path)
    edit_config(path, architectures=["GPT2LMHeadModel"], model_type="gpt2")
    with pytest.raises(UnsupportedArchitectureError) as e:
        load_model(path)
    msg = str(e.value)
    assert "GPT2LMHeadModel" in msg
    for arch in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"):
        assert arch in msg
    clean(e)
    edit_config(path, architectures=None, model_type="gpt_neox")
    with pytest.raises(UnsupportedArchitectureError, match="gpt_neox"):
        load_model(path)


def test_unsupported_rope_type(ckpt, tmp_path):
    path = copy_of(ckpt, tmp_path)
    edit_config(path, rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4})
    with pytest.raises(UnsupportedArchitectureError, match="yarn"):
        load_model(path)


def test_corrupt_config_json(ckpt, tmp_path):
    path = copy_of(ckpt, tmp_path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json is not valid JSON") as e:
        load_model(path)
    clean(e)


def test_hub_id_offline_is_fast_and_clear(monkeypatch, tmp_path):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="not found locally") as e:
        load_model("ssdcore-tests/no-such-model")
    assert time.monotonic() - start < 5
    assert "HF_HUB_OFFLINE" in str(e.value) and "local" in str(e.value)
    clean(e)


def test_hub_id_unreachable_is_fast_and_clear(monkeypatch, tmp_path):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    start = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="unreachable") as e:
        load_model("Qwen/Qwen3-0.6B")
    assert time.monotonic() - start < 10
    assert "Qwen/Qwen3-0.6B" in str(e.value) and "local" in str(e.value)
    clean(e)


def test_forward_rows_input_errors(ckpt):
    m = load_model(ckpt[0], with_tokenizer=False).model
    with pytest.raises(RuntimeError, match="allocate_kv"):
        m.prefill(0, [1, 2])
    with pytest.raises(ValueError, match="scratch_slots"):
        m.allocate_kv(1, 8, scratch_slots=8)
    m.allocate_kv(2, 8)
    with pytest.raises(ValueError, match=r"slots\[1\] = 8 is out of range"):
        m.forward_rows([1, 2], [0, 1], [0, 0], [0, 8])
    with pytest.raises(ValueError, match="lanes"):
        m.forward_rows([1], [0], [2], [0])
    with pytest.raises(ValueError, match="tokens"):
        m.forward_rows([128], [0], [0], [0])
    with pytest.raises(ValueError, match="positions has 1 entries"):
        m.forward_rows([1, 2], [0], [0, 0], [0, 1])
    with pytest.raises(ValueError, match="dtype"):
        m.forward_rows(torch.tensor([1.0]), [0], [0], [0])
    with pytest.raises(ValueError, match="empty"):
        m.prefill(0, [])
    with pytest.raises(ValueError, match="extra_slots"):
        m.forward_rows([1], [0], [0], [0], extra_slots=[[9]])
