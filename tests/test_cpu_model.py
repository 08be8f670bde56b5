"""The native CPU forward (cpp/cpu_model.h) against CausalLM's torch path, and its own guarantees.

For every family flag the native code handles (Llama; Qwen2's QKV bias; Qwen3's q/k norm; Mistral's
sliding window) the same calls are made on a fresh cache through both paths: prefills of two lanes,
a mixed-length multi-lane verification, and SSD tree steps. Then: batch invariance (a token's logits
are bitwise the same in a decode, a verification and a tree branch), the bfloat16 weight copy
(bitwise equal to float32), which models take the native path (whatever the thread count), its errors, and the same bits from every
CPU kernel path (AVX-512, AVX2, portable; each in a subprocess, since the path is chosen once per process).
"""
import functools
import pytest
import torch

from ssdcore.models import CausalLM, cpu_model, load_model
from _model_util import save_random_checkpoint, tree_forward

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not cpu_model.available(), reason="native CPU forward not built")]

FAMILIES = {"llama": {}, "qwen2": {}, "qwen3": {}, "mistral": {"sliding_window": 3}}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def model(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    save_random_checkpoint(path, request.param, seed=11, tokenizer=False, **FAMILIES[request.param])
    return load_model(path).model


@pytest.fixture
def native_off():
    previous = cpu_model.set_enabled(False)
    yield
    cpu_model.set_enabled(previous)


def script(model):
    """Prefill two lanes, verify both with different lengths, run two tree steps; all logits."""
    model.allocate_kv(num_lanes=2, max_slots=48 + 16, scratch_slots=16)
    gen = torch.Generator().manual_seed(5)
    tok = lambda n: torch.randint(3, 128, (n,), generator=gen).tolist()  # noqa: E731
    out = [model.prefill(0, tok(9)), model.prefill(1, tok(14))]
    out.append(model.forward_rows(tok(7), [9, 10, 11, 14, 15, 16, 17], [0, 0, 0, 1, 1, 1, 1],
                                  [9, 10, 11, 14, 15, 16, 17]))
    starts = [48, 52, 48, 52]
    out.append(tree_forward(model, [0, 0, 1, 1], [10, 12, 15, 18], tok(4), starts, depth=0))
    out.append(tree_forward(model, [0, 0, 1, 1], [10, 12, 15, 18], tok(4), starts, depth=1))
    return out


def assert_native_matches_torch(model):
    native = script(model)
    previous = cpu_model.set_enabled(False)
    try:
        reference = script(model)
    finally:
        cpu_model.set_enabled(previous)
    for got, want in zip(native, reference):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_native_matches_torch_path(model):
    assert_native_matches_torch(model)


def test_batch_invariance_decode_verify_tree(model):
    model.allocate_kv(num_lanes=2, max_slots=40 + 8, scratch_slots=8)
    seq = [5, 17, 33, 8, 91, 60, 7, 44]
    model.prefill(0, seq[:5])
    verify = model.decode([0], [seq[5:8]], [5])[0]              # 3 rows at once
    model.prefill(1, seq[:5])
    singles = [model.decode([1], [[t]], [5 + i])[0, 0] for i, t in enumerate(seq[5:8])]
    for i in range(3):
        assert torch.equal(verify[i], singles[i])
    # a tree branch forked after seq[:5] + seq[5] in lane 1, decoding seq[6], seq[7] in scratch slots
    tree = torch.cat([tree_forward(model, [1], [6], [[seq[6]]], [40], depth=0),
                      tree_forward(model, [1], [6], [[seq[7]]], [40], depth=1)], dim=1)[0]
    assert torch.equal(tree[0], verify[1]) and torch.equal(tree[1], verify[2])


@pytest.mark.parametrize("threads", [2, 3])
def test_thread_team_gives_the_same_bits(model, monkeypatch, threads):
    """A forward split over a ThreadTeam (by output column blocks and (row, kv head) attention items)
    gives bitwise the logits of one thread: prefills, verifications and tree steps, every family."""
    from ssdcore import _core

    one = script(model)
    team, original = _core.ThreadTeam(threads), cpu_model.CpuModel.forward
    assert team.size == threads
    monkeypatch.setattr(cpu_model.CpuModel, "forward",
                        lambda self, m, cache, rows, lm_rows, out_cols, team_=None:
                        original(self, m, cache, rows, lm_rows, out_cols, team))
    split = script(model)
    for a, b in zip(one, split):
        assert torch.equal(a, b)


def test_engine_runner_with_threads_is_native_and_exact(tmp_path):
    """target_threads=2 runs the native forward (no longer the torch path) with the bits of one thread."""
    import ssdcore
    from ssdcore.engine.model_runner import ModelRunner

    save_random_checkpoint(tmp_path, "llama", seed=3, tokenizer=False)
    runner = ModelRunner(load_model(tmp_path).model, side="target", num_lanes=1, context_slots=32, threads=2)
    assert runner.native_runner() is not None and runner.native_runner().threads == 2
    assert runner.forward_kind == "native" and "forward='native'" in repr(runner)
    sp = ssdcore.SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    outs = []
    for threads in (1, 2):
        with ssdcore.Engine(str(tmp_path), None, mode="ar", max_batch=2, max_context=64,
                            target_threads=threads) as e:
            outs.append([o.token_ids for o in e.generate([[3, 4, 5], [9, 8]], sp)])
    assert outs[0] == outs[1]


def test_bf16_exact_weights_equal_float32(model):
    """Rounding the weights to bfloat16 makes the native copy bf16; it must equal the float32 math."""
    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    try:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).float())
        model.refresh_native()  # the packed copies were made from the old values
        assert all(not layer.qkv_w.to(torch.bfloat16).float().ne(layer.qkv_w).any() for layer in model.layers)
        assert_native_matches_torch(model)
    finally:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(saved[n])
        model.refresh_native()


def test_forward_choice(model, native_off):
    """Which forward runs follows from the device, the dtype and the process-wide switch, and never from
    the torch thread count: a model that takes the native path takes it with any number of threads."""
    from ssdcore.engine.model_runner import choose_forward

    assert not cpu_model.supports(model) and choose_forward(model) == "torch"
    cpu_model.set_enabled(True)
    torch.set_num_threads(2)
    try:
        assert cpu_model.supports(model) and choose_forward(model) == "native"
    finally:
        torch.set_num_threads(1)
    assert choose_forward(model) == "native"
    assert choose_forward(CausalLM(model.config, dtype=torch.bfloat16)) == "native"
    assert choose_forward(CausalLM(model.config, dtype=torch.float16)) == "torch"


def test_bf16_runner_is_native_with_the_bits_of_its_widened_weights(model):
    """A bfloat16 model's runner takes the native forward: logits bitwise those of the float32 model
    holding the same (bfloat16-rounded) weights."""
    from _model_util import runner_script
    from ssdcore.engine.model_runner import ModelRunner

    bf16 = CausalLM(model.config, dtype=torch.bfloat16)
    widened = CausalLM(model.config)
    with torch.no_grad():
        for low, wide, p in zip(bf16.parameters(), widened.parameters(), model.parameters()):
            low.copy_(p)
            wide.copy_(low)
    kw = dict(side="draft", num_lanes=2, context_slots=48, scratch_slots=16)
    runner = ModelRunner(bf16, **kw)
    assert runner.forward_kind == "native" and "dtype=bfloat16" in repr(runner)
    for got, want in zip(runner_script(runner), runner_script(ModelRunner(widened, **kw))):
        assert torch.equal(got, want)


def test_native_errors_name_the_array(model):
    model.allocate_kv(num_lanes=1, max_slots=16)
    model.prefill(0, [3, 4, 5])
    native = model._native._native
    i32 = functools.partial(torch.tensor, dtype=torch.int32)  # the rows are a ForwardBatch's: int32
    base = dict(tokens=i32([7]), positions=i32([3]), lanes=i32([0]),
                slots=i32([3]), attend_len=None, extra_slots=None, logits_rows=None,
                kv=model.kv_cache.buffer, slot_pos=model.kv_cache.slot_pos, rope_cos=model.rope.cos,
                rope_sin=model.rope.sin_signed, logits=torch.empty(1, 128))
    cases = {"tokens": i32([128]), "lanes": i32([1]), "slots": i32([16]), "positions": i32([-1])}
    for name, bad in cases.items():
        arrays = dict(base, **{name: bad})
        with pytest.raises(ValueError, match=name):
            native.forward({k: None if v is None else v.__dlpack__() for k, v in arrays.items()}, 128)
    arrays = dict(base, tokens=torch.tensor([7], dtype=torch.int64))
    with pytest.raises(ValueError, match="tokens: dtype int64"):
        native.forward({k: None if v is None else v.__dlpack__() for k, v in arrays.items()}, 128)
    assert model.decode([0], [[7]], [3]).shape == (1, 1, 128)  # still usable


_PATH_SCRIPT = """
import sys, torch
from ssdcore.models import load_model
from _model_util import save_random_checkpoint
import test_cpu_model as t
torch.set_num_threads(1)
save_random_checkpoint(sys.argv[1], "llama", seed=11, tokenizer=False)
torch.save([o.clone() for o in t.script(load_model(sys.argv[1]).model)], sys.argv[2])
print(__import__("ssdcore").device_summary())
"""


def test_every_cpu_kernel_path_gives_the_same_bits(tmp_path):
    """The AVX-512, AVX2 and portable kernels compute each output in the same order: same logits."""
    import os
    import subprocess
    import sys

    outputs = {}
    for path in ("default", "SSD_DISABLE_AVX512", "SSD_DISABLE_AVX2"):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(__file__)] + sys.path))
        if path != "default":
            env[path] = "1"
        args = [sys.executable, "-c", _PATH_SCRIPT, str(tmp_path / path), str(tmp_path / f"{path}.pt")]
        run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "CPU kernels: " in run.stdout
        if path == "SSD_DISABLE_AVX2":
            assert "CPU kernels: portable" in run.stdout
        if path == "SSD_DISABLE_AVX512":
            assert "CPU kernels: avx512" not in run.stdout
        outputs[path] = torch.load(tmp_path / f"{path}.pt")
    for path, logits in outputs.items():
        for a, b in zip(logits, outputs["default"]):
            assert torch.equal(a, b), f"{path} differs from the default path"
