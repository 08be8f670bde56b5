"""StaticForward (models/static_forward.py), everything a CPU can check of the CUDA-graph path.

Bucket choice and the grid layout (padding cells write only the spare slot, attend only to key slot 0,
give no logits); the static forward run eagerly equals the model's eager dynamic-shape forward on a
script of prefills, multi-lane verifications, decodes and tree steps, and leaves the same cache; with a
fake capture that, like a CUDA graph, keeps one output tensor per bucket and rewrites it on every
replay, each bucket is captured once and the logits keep the bits of the uncaptured run. The CUDA runs
themselves are in test_gpu_model_path.py.
"""
import pytest
import torch

from _model_util import runner_script, save_random_checkpoint
from ssdcore.engine import model_runner
from ssdcore.engine.model_runner import ModelRunner
from ssdcore.models import CausalLM, cpu_model, load_model
from ssdcore.models.rows import parse_rows
from ssdcore.models import static_forward
from ssdcore.models.static_forward import (MAX_GRID_ROWS, MAX_ROWS_PER_LANE, Bucket, StaticForward,
                                           choose_bucket, layout)

pytestmark = pytest.mark.usefixtures("one_thread")

CONTEXT, SCRATCH = 48, 16


@pytest.fixture(scope="module", params=["llama", "qwen3"])
def model(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    save_random_checkpoint(path, request.param, seed=5, tokenizer=False)
    previous = cpu_model.set_enabled(False)  # the reference is the torch path the static one reuses
    yield load_model(path).model
    cpu_model.set_enabled(previous)


def test_bucket_choice():
    assert choose_bucket(1, 1, 0) == Bucket(1, 1, 0)
    assert choose_bucket(3, 5, 0) == Bucket(4, 8, 0)
    assert choose_bucket(1, 24, 3) == Bucket(1, 32, 4)
    assert choose_bucket(8, 8, 0).cells == 64
    assert choose_bucket(1, MAX_ROWS_PER_LANE + 1, 0) is None               # a prefill: eager
    assert choose_bucket(MAX_GRID_ROWS // 4, 8, 0) is None                  # too many cells


def test_layout_pads_with_rows_that_touch_only_the_spare_slot(model):
    model.allocate_kv(4, CONTEXT + SCRATCH, SCRATCH, spare_slot=True)
    cache = model.kv_cache
    rows = parse_rows([11, 12, 13], [7, 4, 8], [2, 0, 2], [7, 4, 8], None, None, torch.tensor([2, 0]),
                      model.config.vocab_size, cache)
    grid = layout(rows, cache.spare_slot)
    assert grid.bucket == Bucket(2, 2, 0)
    assert grid.grid_lanes.tolist() == [0, 2]
    assert grid.tokens.tolist() == [12, 0, 11, 13]                          # lane 0: 1 row + padding
    assert grid.slots.tolist() == [4, cache.spare_slot, 7, 8]
    assert grid.write_lanes.tolist() == [0, 0, 2, 2]
    assert grid.attend_len.tolist() == [4, 1, 7, 8]                         # causal rows see [0, slot]
    assert grid.cells[:2].tolist() == [3, 2]                                # logits rows 2 then 0


def _pair(model):
    """Two caches of the same model: one run through StaticForward, one through the eager forward."""
    model.allocate_kv(3, CONTEXT + SCRATCH, SCRATCH, spare_slot=True)
    static_cache = model.kv_cache
    model.allocate_kv(3, CONTEXT + SCRATCH, SCRATCH)
    return static_cache, model.kv_cache


def _script(model, run):
    """Prefills, a mixed multi-lane verification, tree steps with extra slots, decodes; all logits.
    ``run(rows_args)`` runs forward_rows-style arguments on one cache and returns the logits."""
    gen = torch.Generator().manual_seed(3)
    tok = lambda n: torch.randint(3, 128, (n,), generator=gen).tolist()  # noqa: E731
    out = [run(tok(9), list(range(9)), [0] * 9, list(range(9))),
           run(tok(14), list(range(14)), [1] * 14, list(range(14)))]
    pos = [9, 10, 11, 14, 15, 16, 17]
    out.append(run(tok(7), pos, [0, 0, 0, 1, 1, 1, 1], pos, logits_rows=[6, 0, 3]))
    for depth in range(3):  # 4 branches over two lanes, each at its own scratch range
        starts = torch.tensor([CONTEXT, CONTEXT + 4, CONTEXT, CONTEXT + 4])
        fork = torch.tensor([10, 12, 15, 18])
        extra = [[s + j if j < depth else -1 for j in range(max(depth, 1))] for s in starts.tolist()]
        out.append(run(tok(4), (fork + depth).tolist(), [0, 0, 1, 1], (starts + depth).tolist(),
                       attend_len=fork.tolist(), extra_slots=extra))
    for step in range(3):
        out.append(run(tok(2), [12 + step, 18 + step], [0, 1], [12 + step, 18 + step]))
    return out


def _args(cache, model, tokens, positions, lanes, slots, attend_len=None, extra_slots=None,
          logits_rows=None):
    return parse_rows(tokens, positions, lanes, slots, attend_len, extra_slots, logits_rows,
                      model.config.vocab_size, cache)


def _static_runner(model, sf, cache):
    def run(*args, **kw):
        rows = _args(cache, model, *args, **kw)
        logits = sf.run(rows)
        return model.run_rows(rows, cache) if logits is None else logits  # what ModelRunner does
    return run


def test_static_forward_equals_eager_forward(model, monkeypatch):
    monkeypatch.setattr(static_forward, "MAX_ROWS_PER_LANE", 8)  # the prefills fall back to eager
    static_cache, eager_cache = _pair(model)
    sf = StaticForward(model, static_cache)
    static = _script(model, _static_runner(model, sf, static_cache))
    eager = _script(model, lambda *a, **kw: model.run_rows(_args(eager_cache, model, *a, **kw), eager_cache))
    for got, want in zip(static, eager):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)
    real = static_cache.buffer[..., :static_cache.max_slots, :]
    torch.testing.assert_close(real, eager_cache.buffer, atol=2e-5, rtol=1e-5)
    assert torch.equal(real != 0, eager_cache.buffer != 0)  # padding rows wrote no real slot


def _graph_like_capture(log):
    """Like a CUDA graph: one output tensor per capture, rewritten in place by every replay."""
    def capture(step):
        log.append(step)
        out = step()

        def replay():
            out.copy_(step())
            return out
        return replay
    return capture


def test_capture_once_per_bucket_and_same_bits(model):
    model.allocate_kv(3, CONTEXT + SCRATCH, SCRATCH, spare_slot=True)
    plain = _script(model, _static_runner(model, StaticForward(model, model.kv_cache), model.kv_cache))
    captures = []
    model.allocate_kv(3, CONTEXT + SCRATCH, SCRATCH, spare_slot=True)
    sf = StaticForward(model, model.kv_cache, capture=_graph_like_capture(captures))
    replayed = _script(model, _static_runner(model, sf, model.kv_cache))
    assert sf.captures == len(captures) >= 3
    for got, want in zip(replayed, plain):
        assert torch.equal(got, want)  # and earlier results were not overwritten by later replays


def test_static_forward_refuses_what_it_cannot_run(model, tmp_path):
    save_random_checkpoint(tmp_path, "mistral", seed=1, tokenizer=False, sliding_window=3)
    windowed = load_model(tmp_path).model
    windowed.allocate_kv(1, 16, spare_slot=True)
    with pytest.raises(ValueError, match="sliding-window"):
        StaticForward(windowed, windowed.kv_cache)
    model.allocate_kv(1, 16)
    with pytest.raises(ValueError, match="spare slot"):
        StaticForward(model, model.kv_cache)


def test_cpu_runner_keeps_host_logits(model):
    runner = ModelRunner(model, side="draft", num_lanes=2, context_slots=CONTEXT, scratch_slots=SCRATCH)
    assert runner.forward_kind == "torch" and runner.cuda_stream is None and not runner.device_logits
    bf16 = ModelRunner(CausalLM(model.config, dtype=torch.bfloat16), side="target", num_lanes=1,
                       context_slots=8)
    assert bf16.forward_kind == "torch" and "forward='torch'" in repr(bf16)


def test_runner_static_path_equals_eager_runner(model, monkeypatch):
    """The whole runner path of a CUDA model (static shapes, logits placed at out_index rows), run on
    the CPU: the logits of the eager runner."""
    kw = dict(side="draft", num_lanes=2, context_slots=48, scratch_slots=16)
    eager = runner_script(ModelRunner(model, **kw))
    monkeypatch.setattr(model_runner, "choose_forward", lambda m, cuda_graphs=True: "cuda-static")
    runner = ModelRunner(model, **kw)
    assert runner._static is not None and "forward='cuda-static'" in repr(runner)
    for got, want in zip(runner_script(runner), eager):
        assert got.shape == want.shape and got.device.type == "cpu"
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)
