"""The CUDA model path (model_runner.py, models/static_forward.py) on a GPU; skipped without one.

* CUDA graphs on and off give the same logits bits, call for call, through the engine's runner
  (prefills, multi-lane verification, tree steps with extra slots, decodes), and each runs on its own
  stream, which the returned logits name (the protocol in model_runner.py's docstring);
* the engine's greedy ssd and sd give exactly ar's token ids with both models on CUDA;
* with bindings that take device logits (``_core.accepts_device_logits``), a seeded sampled run whose
  verification and draft sampling run on the GPU gives the token ids of the same run with the logits
  copied to the host (the CPU reference), in sd and ssd. Skipped while the bindings cannot.
The CPU-side checks of the same path are in test_models_static_forward.py.
"""
import pytest
import torch

import ssdcore
from _engine_util import save_tiny_pair
from _model_util import runner_script, save_random_checkpoint
from ssdcore import SamplingParams
from ssdcore.engine import model_runner
from ssdcore.engine.model_runner import ModelRunner
from ssdcore.models import load_model

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

PROMPTS = [[3, 4, 5], [7, 8, 9, 10, 11], [12], [5, 6, 7, 8, 9, 10, 11, 12, 13]]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama")
    save_random_checkpoint(path, "llama", seed=4, tokenizer=False)
    return path


def test_cuda_graphs_on_and_off_give_the_same_bits(checkpoint):
    runs = {}
    for graphs in (True, False):
        model = load_model(checkpoint, device="cuda").model
        runner = ModelRunner(model, side="draft", num_lanes=2, context_slots=48, scratch_slots=16,
                             cuda_graphs=graphs, device_logits=True)
        assert runner.forward_kind == ("cuda-graphs" if graphs else "cuda-static")
        logits = runner_script(runner)
        assert all(t.is_cuda and t.cuda_stream == runner.cuda_stream for t in logits)
        assert runner.cuda_stream != torch.cuda.default_stream().cuda_stream
        runner.stream.synchronize()
        runs[graphs] = [t.cpu() for t in logits]
        assert (runner._static.captures > 0) == graphs
    for on, off in zip(runs[True], runs[False]):
        assert torch.equal(on, off)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    return save_tiny_pair(tmp_path_factory.mktemp("pair"))


def _generate(pair, mode, sp, **kw):
    with ssdcore.Engine(*pair, mode=mode, K=3, max_batch=4, max_context=64, target_device="cuda",
                        draft_device="cuda", **kw) as engine:
        return [o.token_ids for o in engine.generate(PROMPTS, sp)]


def test_engine_greedy_ssd_and_sd_equal_ar_on_cuda(tiny_pair):
    greedy = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    ar = _generate(tiny_pair, "ar", greedy)
    assert _generate(tiny_pair, "sd", greedy) == ar
    for backup in ("jit", "ngram"):
        assert _generate(tiny_pair, "ssd", greedy, backup=backup, fan_out=4) == ar


@pytest.mark.skipif(not model_runner.engine_takes_device_logits() or not ssdcore.cuda_available(),
                    reason="needs bindings that take CUDA logits and the CUDA kernels")
@pytest.mark.parametrize("mode", ["sd", "ssd"])
def test_cuda_verification_in_the_engine_gives_the_cpu_reference_bits(tiny_pair, mode, monkeypatch):
    sampled = SamplingParams(temperature=1.0, top_k=20, top_p=0.9, max_tokens=24, ignore_eos=True, seed=7)
    on_device = _generate(tiny_pair, mode, sampled)
    monkeypatch.setattr(model_runner, "engine_takes_device_logits", lambda: False)  # host logits
    assert _generate(tiny_pair, mode, sampled) == on_device
