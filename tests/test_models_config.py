"""config.json parsing for real-world layouts (transformers 4 and 5) and RoPE frequencies."""

import pytest
import torch

from ssdcore.models import ModelConfig, ModelLoadError, UnsupportedArchitectureError
from ssdcore.models.rope import RopeTable, inverse_frequencies

LLAMA_32_1B = {  # shape of meta-llama/Llama-3.2-1B's config.json (transformers 4 layout)
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "hidden_act": "silu",
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": True, "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "torch_dtype": "bfloat16",
}
QWEN25 = {  # Qwen2.5-0.5B-like: sliding_window set but use_sliding_window false
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
    "rope_theta": 1000000.0, "sliding_window": 32768, "use_sliding_window": False,
    "max_window_layers": 21, "tie_word_embeddings": True, "eos_token_id": 151643,
}


def test_llama_32_layout():
    c = ModelConfig.from_hf_dict(LLAMA_32_1B)
    assert (c.family, c.head_dim, c.kv_groups, c.tie_word_embeddings) == ("llama", 64, 4, True)
    assert c.rope_scaling["rope_type"] == "llama3" and c.rope_theta == 500000.0
    assert c.eos_token_ids == (128001, 128008, 128009) and c.torch_dtype == "bfloat16"
    assert not c.qkv_bias and not c.qk_norm and c.layer_windows == (None,) * 16


def test_qwen25_and_qwen3_flags():
    c = ModelConfig.from_hf_dict(QWEN25)
    assert c.qkv_bias and not c.o_bias and c.head_dim == 64 and c.layer_windows == (None,) * 24
    windowed = ModelConfig.from_hf_dict({**QWEN25, "use_sliding_window": True})
    assert windowed.layer_windows == (None,) * 21 + (32768,) * 3
    q3 = ModelConfig.from_hf_dict({**QWEN25, "architectures": ["Qwen3ForCausalLM"],
                                  "model_type": "qwen3", "head_dim": 128})
    assert q3.qk_norm and not q3.qkv_bias and q3.head_dim == 128


def test_mistral_window_and_model_type_fallback():
    base = {"model_type": "mistral", "vocab_size": 32000, "hidden_size": 4096,
            "intermediate_size": 14336, "num_hidden_layers": 2, "num_attention_heads": 32,
            "num_key_value_heads": 8, "sliding_window": 4096}
    c = ModelConfig.from_hf_dict(base)
    assert c.architecture == "MistralForCausalLM" and c.layer_windows == (4096, 4096)
    assert ModelConfig.from_hf_dict({**base, "sliding_window": None}).layer_windows == (None, None)


def test_legacy_linear_rope_and_errors():
    c = ModelConfig.from_hf_dict({**LLAMA_32_1B, "rope_scaling": {"type": "linear", "factor": 2.0}})
    assert c.rope_scaling == {"rope_type": "linear", "factor": 2.0}
    with pytest.raises(UnsupportedArchitectureError, match="dynamic"):
        ModelConfig.from_hf_dict({**LLAMA_32_1B, "rope_scaling": {"type": "dynamic", "factor": 2.0}})
    with pytest.raises(UnsupportedArchitectureError, match="hidden_act='gelu'"):
        ModelConfig.from_hf_dict({**LLAMA_32_1B, "hidden_act": "gelu"})
    with pytest.raises(ModelLoadError, match="num_key_value_heads=5"):
        ModelConfig.from_hf_dict({**LLAMA_32_1B, "num_key_value_heads": 5})
    with pytest.raises(ModelLoadError, match="'vocab_size'"):
        ModelConfig.from_hf_dict({k: v for k, v in LLAMA_32_1B.items() if k != "vocab_size"})
    with pytest.raises(UnsupportedArchitectureError, match="quant_method='awq'"):
        ModelConfig.from_hf_dict({**LLAMA_32_1B, "quantization_config": {"quant_method": "awq"}})
    with pytest.raises(ModelLoadError, match="eos_token_id"):
        ModelConfig.from_hf_dict({**LLAMA_32_1B, "eos_token_id": "</s>"})


@pytest.mark.parametrize("scaling", [None, {"rope_type": "linear", "factor": 4.0},
                                     LLAMA_32_1B["rope_scaling"]])
def test_inverse_frequencies_match_transformers(scaling):
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    hf_cfg = LlamaConfig(hidden_size=2048, num_attention_heads=32, head_dim=64,
                         rope_theta=500000.0, rope_scaling=scaling,
                         max_position_embeddings=131072)
    ours = inverse_frequencies(64, 500000.0, scaling)
    if scaling is None:
        ref = 1.0 / (500000.0 ** (torch.arange(0, 64, 2, dtype=torch.int64).float() / 64))
    else:
        ref, _ = ROPE_INIT_FUNCTIONS[scaling["rope_type"]](hf_cfg, "cpu")
    assert torch.equal(ours, ref)


def test_rope_table_grows_on_demand():
    table = RopeTable(8, 10000.0, None, torch.float32, torch.device("cpu"), capacity=16)
    table.ensure(100)
    assert table.capacity >= 101
    cos, _ = table.lookup(torch.tensor([100]))
    assert torch.allclose(cos[0, 0, 0], torch.cos(torch.tensor(100.0)))


def test_a_drafts_speculation_recommendation_is_parsed_and_checked():
    assert ModelConfig.from_hf_dict(LLAMA_32_1B).speculation is None
    c = ModelConfig.from_hf_dict(dict(LLAMA_32_1B, ssdcore_speculation={
        "K": 3, "fan_out": [4, 2, 1, 0], "saguaro_c": 0.5}))
    assert c.speculation == {"K": 3, "fan_out": (4, 2, 1, 0), "saguaro_c": 0.5}
    for bad in ({"K": 0}, {"K": True}, {"fan_out": 0}, {"fan_out": "wide"}, {"fan_out": [1, -1]},
                {"saguaro_c": 0}, {"saguaro_c": 1.5}, {"temperature": 0.7}, [3, 10]):
        with pytest.raises(ModelLoadError, match="ssdcore_speculation=.*allowed"):
            ModelConfig.from_hf_dict(dict(LLAMA_32_1B, ssdcore_speculation=bad))
