"""Engine lifecycle and faults off the happy path, each checked without timing assumptions.

* An engine nobody closed is closed at interpreter exit: status 0, no "terminate called" abort
  (a Python event pump used to re-take the GIL while the interpreter finalized; the router is C++ now).
* ``close()`` fails every pending request, running or still queued, with ``EngineClosedError``.
* A worker that cannot start fails the constructor and leaves no thread behind; cores outside the
  process's CPU set, and KV caches that do not fit the memory, are refused before anything starts.
* NaN / +inf logits from either model fail the request with ``NonFiniteLogitsError`` naming the side
  and the position; the engine then serves the next request exactly as a fresh one.
* Integers the runtime keeps as int32 are range-checked in Python (ValueError, not a TypeError from
  the binding).

Every wait here is for something that must happen (an event, a state change), bounded only by a
generous safety timeout; nothing asserts that something happened within a given time.
"""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest

import ssdcore
from ssdcore import SamplingParams
from ssdcore.engine import memory_budget
from ssdcore.engine.errors import EngineClosedError, ModelRunnerError, NonFiniteLogitsError
from ssdcore.engine.model_runner import ModelRunner

from _engine_util import ENGINE_KW, GREEDY, PROMPTS, SAFETY_S, os_threads, save_tiny_pair, wait_until


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return save_tiny_pair(tmp_path_factory.mktemp("lifecycle_pair"))


@pytest.fixture
def python_forward(monkeypatch):
    """Make the engine call ModelRunner.forward (not the native runner), so tests can wrap it."""
    monkeypatch.setattr(ModelRunner, "native_runner", lambda runner: None)
    return monkeypatch


# --------------------------------------------------------------------------- exit without close
UNCLOSED = {
    "never-used": "e = ssdcore.Engine(t, d, **kw)",
    "after-generate": "e = ssdcore.Engine(t, d, **kw); e.generate([[3, 4, 5]], sp)",
    "open-stream": "e = ssdcore.Engine(t, d, **kw); s = e.stream([3, 4], sp); next(s)",
    "ar": "e = ssdcore.Engine(t, None, mode='ar', max_context=64); e.generate([[3]], sp)",
}


@pytest.mark.parametrize("case", sorted(UNCLOSED))
def test_unclosed_engine_exits_cleanly(pair, case):
    """An engine nobody closed is closed at interpreter exit: exit status 0, no abort. Each case runs
    three times, since the old failure (the pump re-taking the GIL during finalization) was a race."""
    code = ("import sys, ssdcore; t, d = sys.argv[1:3]; kw = dict(mode='ssd', K=3, max_batch=4, "
            "max_context=64); sp = ssdcore.SamplingParams(temperature=0, max_tokens=40, "
            "ignore_eos=True); " + UNCLOSED[case])
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", code, *pair], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0 and "terminate" not in done.stderr, done.stderr[-2000:]


# --------------------------------------------------------------------------- close()
class Gate:
    """Holds every target forward until opened; `entered` is set once a forward is waiting."""

    def __init__(self):
        self.open, self.entered = threading.Event(), threading.Event()

    def __call__(self, original):
        def forward(runner, *args, **kwargs):
            if runner.side == "target" and not self.open.is_set():
                self.entered.set()
                assert self.open.wait(SAFETY_S), "gate never opened"
            return original(runner, *args, **kwargs)
        return forward


def test_close_fails_running_and_queued_requests(pair, python_forward):
    """20 callers, 4 lanes: close() fails the running and the still-queued requests alike with
    EngineClosedError, and every caller returns."""
    gate = Gate()
    python_forward.setattr(ModelRunner, "forward", gate(ModelRunner.forward))
    engine = ssdcore.Engine(*pair, mode="ssd", **ENGINE_KW)
    outcomes = []

    def caller(i):
        try:
            engine.generate([[3 + i % 20]], SamplingParams(max_tokens=50, ignore_eos=True))
            outcomes.append("finished")
        except BaseException as e:  # noqa: BLE001
            outcomes.append(e)

    callers = [threading.Thread(target=caller, args=(i,)) for i in range(20)]
    for t in callers:
        t.start()
    wait_until(lambda: engine.pending_requests() == 20, "all 20 requests submitted")
    assert gate.entered.wait(SAFETY_S)  # the target is inside a forward: 4 running, 16 queued
    threads_before = os_threads()  # the 20 callers, the event router and the two C++ workers among them
    closer = threading.Thread(target=engine.close)
    closer.start()
    wait_until(lambda: _refuses_submits(engine), "the runtime stopped taking requests")
    gate.open.set()
    for t in callers + [closer]:
        t.join(SAFETY_S)
        assert not t.is_alive(), "a caller is still blocked after close()"
    assert len(outcomes) == 20
    assert all(isinstance(o, EngineClosedError) for o in outcomes), outcomes
    assert not any(isinstance(o, ModelRunnerError) for o in outcomes)
    with pytest.raises(EngineClosedError):
        engine.generate([[3]], GREEDY)
    # the callers, the event router and both C++ workers have ended (a joined thread's OS thread ends just
    # after the join returns)
    wait_until(lambda: os_threads() <= threads_before - 23, "the engine's threads ended")



def _refuses_submits(engine) -> bool:
    try:
        rid = engine._core.submit([3], SamplingParams(max_tokens=1).to_core(0), every_round=False)
    except RuntimeError:
        return True
    engine._core.discard(rid)
    return False


# --------------------------------------------------------------------------- workers that cannot start
@pytest.mark.parametrize("side", ["target", "draft"])
def test_worker_that_cannot_start_fails_the_constructor(pair, python_forward, side):
    def on_worker_start(runner):
        if runner.side == side:
            raise OSError(f"injected: {runner.side} cannot be pinned")

    python_forward.setattr(ModelRunner, "on_worker_start", on_worker_start)
    before = threading.active_count()
    with pytest.raises(RuntimeError, match=f"the {side} worker could not start.*injected.*"
                                           f"{side}_cores = None, {side}_threads = 1"):
        ssdcore.Engine(*pair, mode="ssd", **ENGINE_KW)
    assert threading.active_count() == before


@pytest.mark.parametrize("kwargs,field", [
    (dict(target_cores=[999]), "target_cores = [999]"),
    (dict(target_cores=[0], draft_cores=[998]), "draft_cores = [998]"),
    (dict(target_cores=[]), "target_cores = []"),
    (dict(target_cores=[0, 0]), "target_cores = [0, 0]"),
    (dict(target_threads=0), "target_threads = 0"),
])
def test_unusable_cores_are_refused_before_anything_starts(pair, kwargs, field):
    before = threading.active_count()
    with pytest.raises(ValueError, match="allowed") as info:
        ssdcore.Engine(*pair, mode="ssd", **ENGINE_KW, **kwargs)
    assert field in str(info.value)
    assert threading.active_count() == before


def test_kv_caches_beyond_memory_are_refused(pair, monkeypatch):
    """The budget is the machine's available memory; a small fake one makes this machine-independent."""
    monkeypatch.setattr(memory_budget, "available_bytes", lambda device: 2**17)  # 128 KiB
    with pytest.raises(ValueError, match=r"max_batch = 64 x max_context = 64 needs \d+ bytes .*"
                                         r"budget of \d+ bytes") as info:
        ssdcore.Engine(*pair, mode="ssd", K=3, max_batch=64, max_context=64)
    assert "target" in str(info.value) and "draft" in str(info.value)
    with ssdcore.Engine(*pair, mode="ssd", K=3, max_batch=2, max_context=64) as e:  # fits: usable
        assert len(e.generate([[3]], GREEDY)[0].token_ids) == 16


def test_kv_allocation_failure_names_the_settings(pair, monkeypatch):
    from ssdcore.models import CausalLM

    def allocate_kv(model, lanes, slots, scratch=0, spare_slot=False):
        raise RuntimeError("DefaultCPUAllocator: not enough memory (injected)")

    monkeypatch.setattr(CausalLM, "allocate_kv", allocate_kv)
    before = threading.active_count()
    with pytest.raises(MemoryError, match="target KV cache for max_batch = 4 lanes x 64 slots "
                                          r"\(max_context = 64\) could not be allocated.*injected"):
        ssdcore.Engine(*pair, mode="ssd", **ENGINE_KW)
    assert threading.active_count() == before


def test_kv_cache_estimate_matches_the_allocation(pair):
    from ssdcore.models import load_model

    model = load_model(pair[0]).model
    model.allocate_kv(3, 40, 8)
    assert memory_budget.kv_cache_bytes(model, 3, 40) == model.kv_cache.nbytes()


# --------------------------------------------------------------------------- non-finite logits
def poison(side: str, at_call: int, value: float):
    """A forward wrapper that puts `value` into one logits row of the `at_call`-th call of `side`."""
    calls = {"n": 0}

    def wrap(original):
        def forward(runner, *args, **kwargs):
            out = original(runner, *args, **kwargs)
            if runner.side == side:
                calls["n"] += 1
                if calls["n"] == at_call:
                    out = out.clone()
                    out[0, 5] = value
            return out
        return forward
    return wrap


@pytest.mark.parametrize("side,at_call,value", [
    ("target", 1, float("nan")), ("target", 3, float("inf")), ("draft", 2, float("nan")),
    ("draft", 6, float("nan")),
])
def test_non_finite_logits_fail_the_request(pair, python_forward, side, at_call, value):
    with ssdcore.Engine(*pair, mode="ssd", **ENGINE_KW) as clean:
        expected = [o.token_ids for o in clean.generate(PROMPTS, GREEDY)]
    python_forward.setattr(ModelRunner, "forward", poison(side, at_call, value)(ModelRunner.forward))
    with ssdcore.Engine(*pair, mode="ssd", **ENGINE_KW) as engine:
        with pytest.raises(NonFiniteLogitsError, match=f"{side} logits are not finite at position "
                                                       r"\d+ \((NaN|\+inf) at token 5\)"):
            engine.generate(PROMPTS, GREEDY)
        wait_until(lambda: engine.pending_requests() == 0, "the failed call's requests are gone")
        assert [o.token_ids for o in engine.generate(PROMPTS, GREEDY)] == expected


def test_out_of_range_integers_are_value_errors(pair):
    with ssdcore.Engine(*pair, mode="sd", **ENGINE_KW) as engine:
        for bad in (dict(stop_token_ids=[2**31]), dict(stop_token_ids=[-1]), dict(top_k=2**63),
                    dict(max_tokens=2**40)):
            with pytest.raises(ValueError, match="SamplingParams"):
                engine.generate([[3]], bad)
        assert len(engine.generate([[3]], GREEDY)[0].token_ids) == 16
