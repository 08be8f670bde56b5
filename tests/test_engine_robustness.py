"""Engine robustness: runner exceptions, invalid configuration and requests, Ctrl-C, clean close.

* An exception inside a model forward (draft or target, in every phase: prefill, jit drafting, glue,
  tree decode, verification) surfaces from `generate` as `ModelRunnerError` naming the side; the
  same engine then serves the next request exactly as a fresh engine would (same tokens, same
  acceptance and cache statistics: the two workers did not fall out of step), and closes cleanly.
* Invalid configuration raises ValueError naming the field, the value and the allowed range,
  before anything is started; a draft whose tokenizer differs from the target's is refused.
* Invalid requests (bad SamplingParams, empty or out-of-vocabulary prompts, prompts longer than
  the context) raise ValueError and leave the engine usable; a batch with one bad prompt leaves
  none of its other requests running.
* Ctrl-C inside `generate` raises KeyboardInterrupt promptly and cancels the call's requests; the
  engine keeps working. `close()` joins every thread, also while another thread generates.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time

import pytest

import ssdcore
from ssdcore import SamplingParams
from ssdcore.engine.engine import ModelRunnerError
from ssdcore.engine.model_runner import ModelRunner
from ssdcore.models import TokenizerMismatchError

from _engine_util import ENGINE_KW, GREEDY, PROMPTS, V, os_threads, save_tiny_pair, wait_until

SAMPLED = SamplingParams(temperature=1.0, max_tokens=16, ignore_eos=True, seed=7)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return save_tiny_pair(tmp_path_factory.mktemp("robust_pair"))


class Faults:
    """Patches ModelRunner.forward: raise on the n-th call of one side, or sleep in every call."""

    def __init__(self):
        self.side, self.countdown, self.delay = None, 0, 0.0
        self.calls = {"target": 0, "draft": 0}
        self.hook = lambda runner: None  # called on every forward, after counting it

    def fail_at(self, side: str, n: int):
        self.side, self.countdown = side, n

    def __call__(self, original):
        def forward(runner, *args, **kwargs):
            self.calls[runner.side] += 1
            self.hook(runner)
            if self.delay:
                time.sleep(self.delay)
            if runner.side == self.side:
                self.countdown -= 1
                if self.countdown == 0:
                    self.side = None
                    raise RuntimeError(f"injected fault in the {runner.side} forward")
            return original(runner, *args, **kwargs)
        return forward


@pytest.fixture
def faults(monkeypatch):
    f = Faults()
    monkeypatch.setattr(ModelRunner, "forward", f(ModelRunner.forward))
    # the engine must call ModelRunner.forward, not the Python-free native runner (same numerics)
    monkeypatch.setattr(ModelRunner, "native_runner", lambda runner: None)
    return f


def summary(engine, outs):
    s = engine.stats()
    return ([o.token_ids for o in outs], s["accept_hist"], s["cache_hits"], s["cache_misses"],
            s["backup_use"])


@pytest.fixture(scope="module")
def fresh(pair):
    """What a fresh engine gives for PROMPTS (greedy, then sampled), per mode."""
    out = {}
    for mode in ("ssd", "sd", "ar"):
        with ssdcore.Engine(*pair, mode=mode, **ENGINE_KW) as e:
            greedy = summary(e, e.generate(PROMPTS, GREEDY))
            e.reset_stats()
            out[mode] = (greedy, summary(e, e.generate(PROMPTS, SAMPLED)))
    return out


def close_and_check(engine, workers: int):
    """close() returns, having joined the event router and the C++ workers; later use is refused."""
    before = os_threads() if os.path.isdir("/proc/self/task") else None
    engine.close()
    if before is not None:  # the router + the target worker (+ the draft worker) have exited; a joined
        # thread's OS thread ends just after the join returns
        wait_until(lambda: os_threads() <= before - (1 + workers), "the worker threads ended")
    with pytest.raises(RuntimeError, match="closed"):
        engine.generate([3], GREEDY)
    engine.close()  # idempotent


@pytest.fixture
def slow(faults, request):
    """Every forward 10 ms slower, so a cancelled request cannot reach its length before the
    cancellation lands; the module's engine (when the test uses it) starts with fresh stats."""
    if "engine" in request.fixturenames:
        request.getfixturevalue("engine").reset_stats()
    faults.delay = 0.01
    yield faults
    faults.delay = 0.0


def assert_idle(engine, slow=None, short: bool = False):
    """No request of a failed call is left registered: every one of them ends in the runtime and is
    then forgotten (a request still followed, or finished and not collected, would stay pending), and
    none ends by running to its length (the caller reset the stats before the call: its requests ask for
    more tokens than a cancellation lets through, unless `short`); then forwards run at full speed
    again."""
    wait_until(lambda: engine.pending_requests() == 0, "the failed call's requests ended")
    finished = engine.stats()["requests_finished"]
    assert short or ("length" not in finished and "stop" not in finished), finished
    if slow is not None:
        slow.delay = 0.0


# --------------------------------------------------------------------------- runner exceptions
# (mode, side, which forward call of that side raises, counted afresh for each injection).
# ssd draft calls of a request: the prompt's prefill (the warm-up, while the target prefills), K jit
# steps, then the glue forward and K tree steps of pre-speculation; later calls land in later rounds'
# glue/tree/jit.
FAULT_CASES = [
    ("ssd", "draft", [1, 2, 4, 5, 7, 13]),
    ("ssd", "target", [1, 2, 4]),
    ("sd", "draft", [1, 3, 6]),
    ("sd", "target", [1, 3]),
    ("ar", "target", [1, 3]),
]


@pytest.mark.parametrize("mode,side,points", FAULT_CASES, ids=[f"{m}-{s}" for m, s, _ in FAULT_CASES])
def test_runner_exception_surfaces_and_engine_recovers(pair, fresh, faults, mode, side, points):
    engine = ssdcore.Engine(*pair, mode=mode, **ENGINE_KW)
    try:
        for n in points:
            engine.reset_stats()
            faults.fail_at(side, n)
            with pytest.raises(ModelRunnerError, match=f"{side} model runner failed") as info:
                engine.generate(PROMPTS, GREEDY)
            assert "injected fault" in str(info.value)
            assert faults.side is None, "the fault was not reached"
            # Requests of the call that were still queued when it failed are cancelled; once the
            # engine is idle, the next requests behave exactly as on a fresh engine.
            assert_idle(engine)
            engine.reset_stats()
            assert summary(engine, engine.generate(PROMPTS, GREEDY)) == fresh[mode][0], f"after n={n}"
            # one exchange with the draft per round, plus at most two without a verification: the
            # trailing one that reports the last outcomes, and the one that tells the draft the failed
            # sequences left (it may land after the reset above). A failure leaves no unrequested
            # reply behind, which made every later round take two exchanges, one with a stale reply.
            s = engine.stats()
            exchanges = s["phases"]["wait_for_draft"][1]
            assert mode == "ar" or s["rounds"] <= exchanges <= s["rounds"] + 2, (n, s["rounds"], exchanges)
        engine.reset_stats()
        assert summary(engine, engine.generate(PROMPTS, SAMPLED)) == fresh[mode][1]
    finally:
        faults.side = None
        if not engine._closed:
            close_and_check(engine, workers=1 if mode == "ar" else 2)


# close() while other threads generate: tests/test_engine_lifecycle.py (running and queued requests).


# --------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("kwargs,field,value,allowed", [
    (dict(K=0), "K", "0", "1..32"),
    (dict(K=33), "K", "33", "1..32"),
    (dict(fan_out=0), "fan_out_budget", "0", "1..256"),
    (dict(fan_out=-2), "fan_out_budget", "-2", "1..256"),
    (dict(fan_out=[0, 0, 0, 0]), "fan_out_list", "[0, 0, 0, 0]", "sum 1..256"),
    (dict(fan_out=[1, 2]), "fan_out_list", "[1, 2]", "4 entries"),
    (dict(mode="fast"), "mode", '"fast"', '"ssd", "sd", "ar"'),
    (dict(backup="random"), "backup", '"random"', '"auto", "jit", "ngram", "none"'),
    (dict(saguaro_c=1.5), "saguaro_c", "1.5", "[0, 1]"),
    (dict(max_batch=0), "max_batch", "0", "1..4096"),
    (dict(max_batch=10**6), "max_batch", "1000000", "1..4096"),
    (dict(max_batch=2**40), "max_batch", str(2**40), "1..4096"),
    (dict(max_context=2**31), "max_context", str(2**31), "16..1048576"),
    (dict(K=-2**35), "K", str(-2**35), "1..32"),
    (dict(seed=-1), "seed", "-1", "0..18446744073709551615"),
    (dict(ngram_n=0), "ngram_n", "0", "1.."),
])
def test_invalid_config_raises_value_error(pair, kwargs, field, value, allowed):
    base = dict(mode="ssd", K=3)
    base.update(kwargs)
    before = threading.active_count()
    with pytest.raises(ValueError) as info:
        ssdcore.Engine(*pair, **base)
    msg = str(info.value)
    assert f"{field} = {value}" in msg and allowed in msg, msg
    assert threading.active_count() == before


def test_fan_out_string_and_unknown_argument(pair):
    with pytest.raises(ValueError, match="fan_out = 'wide'.*allowed"):
        ssdcore.Engine(*pair, fan_out="wide")
    with pytest.raises(ValueError, match="unknown argument.*'draft_len'"):
        ssdcore.Engine(*pair, draft_len=3)


def test_tokenizer_mismatch_is_a_value_error(pair, tmp_path):
    draft = tmp_path / "renamed_draft"
    shutil.copytree(pair[1], draft)
    tok = json.loads((draft / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab["x5"] = vocab.pop("w5")  # same id 5, a different piece
    (draft / "tokenizer.json").write_text(json.dumps(tok))
    assert issubclass(TokenizerMismatchError, ValueError)
    with pytest.raises(ValueError, match=r"id 5: target 'w5' vs draft 'x5'") as info:
        ssdcore.Engine(pair[0], str(draft), mode="ssd", **ENGINE_KW)
    assert isinstance(info.value, TokenizerMismatchError)


# --------------------------------------------------------------------------- bad requests
@pytest.fixture(scope="module")
def engine(pair):
    """Built with Python runners (no native runner), so that the `slow` fixture's patched
    ModelRunner.forward really runs in every forward of this engine."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ModelRunner, "native_runner", lambda runner: None)
        e = ssdcore.Engine(*pair, mode="ssd", **ENGINE_KW)
    with e:
        yield e


@pytest.mark.parametrize("field,value,allowed", [
    ("temperature", -0.5, ">= 0"),
    ("temperature", float("nan"), ">= 0"),
    ("top_p", 0.0, "(0, 1]"),
    ("top_p", 1.5, "(0, 1]"),
    ("top_k", -1, "[0, 2147483647]"),
    ("top_k", 2**31, "[0, 2147483647]"),
    ("max_tokens", 0, "[1, 2147483647]"),
    ("max_tokens", 2**31, "[1, 2147483647]"),
    ("seed", 2**64, "None or an integer"),
    ("seed", -1, "None or an integer"),
])
def test_bad_sampling_params_leave_engine_usable(engine, fresh, slow, field, value, allowed):
    with pytest.raises(ValueError) as info:
        SamplingParams(**{field: value})
    assert f"SamplingParams.{field} = {value!r}" in str(info.value) and allowed in str(info.value)
    with pytest.raises(ValueError, match=f"SamplingParams.{field}"):
        engine.generate(PROMPTS, dict(dict(max_tokens=8), **{field: value}))
    # One bad entry in a per-prompt list: the good requests before it must not keep running.
    good = SamplingParams(max_tokens=55, ignore_eos=True)
    with pytest.raises(ValueError, match=f"SamplingParams.{field}"):
        engine.generate(PROMPTS, [good, good, dict(dict(max_tokens=8), **{field: value})])
    assert_idle(engine, slow)
    assert [o.token_ids for o in engine.generate(PROMPTS, GREEDY)] == fresh["ssd"][0][0]


@pytest.mark.parametrize("field,value", [("temperature", -1.0), ("top_p", 0.0), ("top_p", 2.0),
                                         ("top_k", -3), ("max_tokens", 0)])
def test_runtime_validates_params_too(engine, fresh, slow, field, value):
    """Bypassing the Python checks (a frozen dataclass can still be forced) hits the C++ ones."""
    sp = SamplingParams(max_tokens=8)
    object.__setattr__(sp, field, value)
    with pytest.raises(ValueError, match=field):
        engine.generate(PROMPTS, sp)
    good = SamplingParams(max_tokens=55, ignore_eos=True)
    with pytest.raises(ValueError, match=field):
        engine.generate(PROMPTS, [good, good, sp])
    assert_idle(engine, slow)
    assert [o.token_ids for o in engine.generate(PROMPTS, GREEDY)] == fresh["ssd"][0][0]


@pytest.mark.parametrize("prompt,match", [
    ("", "empty"),
    ([], "empty"),
    ([3, V], f"token 1 = {V} is outside the vocabulary: allowed 0..{V - 1}"),
    ([-1], "token 0 = -1 is outside the vocabulary"),
    ([3, 2**31], f"token 1 = {2**31} is outside the vocabulary: allowed 0..{V - 1}"),
    ([2**64], f"token 0 = {2**64} is outside the vocabulary"),
    ("w3 \ud800 w4", "character 3 is a lone surrogate"),
    ([3] * 61, "61 tokens \\+ max_tokens 4 = 65 exceeds the context: allowed at most max_context = 64"),
    ([3] * 70, "70 tokens.*exceeds the context.*max_context = 64"),
], ids=["empty-text", "empty-ids", "id-too-large", "id-negative", "id-over-int32", "id-over-int64",
        "lone-surrogate", "over-context", "prompt-over-context"])
def test_bad_prompt_leaves_engine_usable(engine, fresh, slow, prompt, match):
    with pytest.raises(ValueError, match=match):
        engine.generate(prompt, SamplingParams(max_tokens=4))
    # The same bad prompt inside a batch: the good prompts before it (more than the engine has
    # lanes, so some are still queued) must not keep running.
    sp = SamplingParams(max_tokens=4 if len(prompt) > 40 else 55, ignore_eos=True)
    with pytest.raises(ValueError, match=match):
        engine.generate([[3, 4, 5], [6]] * 3 + [prompt, [7]], sp)
    assert_idle(engine, slow, short=sp.max_tokens == 4)
    assert [o.token_ids for o in engine.generate(PROMPTS, GREEDY)] == fresh["ssd"][0][0]


def test_text_prompt_without_known_words_is_usable(engine):
    out = engine.generate("w3 w4 w5", SamplingParams(temperature=0, max_tokens=4, ignore_eos=True))[0]
    assert out.prompt_token_ids == [3, 4, 5] and len(out.token_ids) == 4


def test_non_integer_token_ids_rejected(engine):
    with pytest.raises(ValueError, match="integers"):
        engine.generate([[3, 4.0]], GREEDY)
    with pytest.raises(ValueError, match=r"prompts\[0\] = 3 is invalid"):
        engine.generate([3, 4.0], GREEDY)  # a flat list that is not all ints


def test_abandoned_stream_is_cancelled(engine, fresh, slow):
    for delta in engine.stream([3, 4, 5], SamplingParams(max_tokens=55, ignore_eos=True)):
        break
    assert_idle(engine, slow)
    assert [o.token_ids for o in engine.generate(PROMPTS, GREEDY)] == fresh["ssd"][0][0]


# --------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_returns_promptly_and_cancels(pair, fresh, faults):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    engine = ssdcore.Engine(*pair, mode="ssd", **ENGINE_KW)
    try:
        faults.delay = 0.02  # every forward 20 ms slower: the call below would take many seconds
        main = threading.main_thread().ident
        original = faults.hook

        def interrupt_at_fifth_target_forward(runner):
            if runner.side == "target" and faults.calls["target"] == 5:
                signal.pthread_kill(main, signal.SIGINT)

        faults.hook = interrupt_at_fifth_target_forward
        with pytest.raises(KeyboardInterrupt):  # more prompts than lanes: some are still queued
            engine.generate(PROMPTS * 3, SamplingParams(max_tokens=55, ignore_eos=True))
        faults.hook = original
        # promptly: the call did not wait for its requests, which were cancelled, none ran to length
        assert_idle(engine, faults)
        engine.reset_stats()
        assert summary(engine, engine.generate(PROMPTS, GREEDY)) == fresh["ssd"][0]
    finally:
        signal.signal(signal.SIGINT, previous)
        faults.delay = 0.0
        close_and_check(engine, workers=2)
