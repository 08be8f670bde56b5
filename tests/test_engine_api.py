"""Engine API behaviour: config mirror, stop conditions, streaming, metrics and SSD statistics."""
import dataclasses

import pytest

import ssdcore
from ssdcore import SamplingParams, _core
from ssdcore.engine.engine_config import EngineConfig


def test_config_mirrors_cpp_struct():
    assert EngineConfig.field_names() == tuple(_core.EngineConfig.field_names())
    core = _core.EngineConfig()
    for f in dataclasses.fields(EngineConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        got = getattr(core, f.name)
        assert (list(got) if isinstance(got, list) else got) == (
            list(default) if isinstance(default, tuple) else default), f.name


def test_sampling_params_mirror_cpp_struct():
    """The C++ fields, plus the Python-only stop strings and response_format (which the engine turns
    into a constraint key); seed None (derived) is C++'s default 0."""
    py_fields = {f.name: f for f in dataclasses.fields(SamplingParams)}
    assert set(py_fields) - {"stop", "response_format"} == set(_core.SamplingParams.field_names())
    core = _core.SamplingParams()
    for name in _core.SamplingParams.field_names():
        f = py_fields[name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        got = getattr(core, name)
        assert (list(got) if isinstance(got, list) else got) == (
            list(default) if isinstance(default, tuple) else 0 if default is None else default), name


def test_request_metrics_mirror_cpp_struct():
    from ssdcore.engine.request_output import RequestMetrics

    names = tuple(f.name for f in dataclasses.fields(RequestMetrics))
    assert names == tuple(_core.RequestMetrics.field_names())
    core = _core.RequestMetrics()
    assert all(getattr(core, n) == getattr(RequestMetrics(), n) for n in names)


@pytest.fixture(scope="module")
def engine():
    with ssdcore.Engine(mode="ssd", K=4, max_batch=4, max_context=512) as e:
        yield e


def test_stream_equals_generate(engine):
    sp = SamplingParams(temperature=0, max_tokens=20, ignore_eos=True)
    deltas = list(engine.stream("def fibonacci(n):", sp))
    full = engine.generate("def fibonacci(n):", sp)[0]
    assert len(deltas) >= 2
    assert "".join(deltas) == full.text == engine.last_output.text
    assert engine.last_output.token_ids == full.token_ids


def test_stop_string_across_rounds(engine):
    base = engine.generate("class Point:\n", SamplingParams(temperature=0, max_tokens=40,
                                                              ignore_eos=True))[0]
    text = base.text
    assert len(text) > 12
    stop = text[8:12]  # a stop string somewhere inside the greedy continuation
    out = engine.generate("class Point:\n", SamplingParams(temperature=0, max_tokens=40, stop=[stop],
                                                             ignore_eos=True))[0]
    assert out.finish_reason == "stop"
    assert out.text == text[:text.find(stop)]
    streamed = "".join(engine.stream("class Point:\n", SamplingParams(
        temperature=0, max_tokens=40, stop=[stop], ignore_eos=True)))
    assert streamed == out.text


def test_max_tokens_and_stop_token(engine):
    out = engine.generate("import", SamplingParams(temperature=0, max_tokens=7, ignore_eos=True))[0]
    assert len(out.token_ids) == 7 and out.finish_reason == "length"
    third = out.token_ids[2]
    cut = engine.generate("import", SamplingParams(temperature=0, max_tokens=7, ignore_eos=True,
                                                   stop_token_ids=[third]))[0]
    assert cut.finish_reason == "stop"
    assert cut.token_ids == out.token_ids[:out.token_ids.index(third)]


def test_metrics_and_stats(engine):
    engine.reset_stats()
    out = engine.generate(["def parse(line):\n", "    def __repr__(self):\n"],
                          SamplingParams(temperature=0, max_tokens=48, ignore_eos=True))
    for o in out:
        m = o.metrics
        assert m.generated_tokens == 48 and m.rounds > 0
        assert 1.0 <= m.mean_accept_length <= 5.0
        assert 0.0 <= m.cache_hit_rate <= 1.0
        assert m.time_to_first_token > 0 and m.decode_tokens_per_s > 0
    s = engine.stats()
    assert s["K"] == 4 and s["rounds"] > 0
    assert sum(s["accept_hist"]) == s["sequence_rounds"]
    assert len(s["position_acceptance"]) == 4 and s["position_reached"][0] > 0
    assert sum(s["cache_hits"]) > 0 and len(s["cache_hits"]) == 5
    assert s["phases"]["draft_prespeculate"][1] > 0
    # each pre-speculation window is measured once against a verification (whether it overlapped
    # depends on the machine's scheduling, so only the bounds are checked); the last window is
    # reported by an exchange that may come just after generate() returned, and the window of the
    # engine's previous request (counted before the reset) by this call's first exchange
    windows = s["phases"]["draft_prespeculate"][1]
    assert windows - 1 <= s["draft_windows"] <= windows + 1
    assert s["draft_overlap_ns"] >= 0 and 0 <= s["draft_hidden_fraction"] <= 1.0
    by_source = s["by_source"]  # (sequence-rounds, mean accepted drafted tokens) per proposal source
    assert sum(n for n, _ in by_source.values()) == s["sequence_rounds"]
    assert all(0.0 <= mean <= 4.0 for _, mean in by_source.values())


def test_stats_name_the_forward_each_model_runs(engine, monkeypatch):
    """stats()["forward"] is each runner's forward_kind, by side; the engine is handed the native
    runner by the Python side (no call back into Python at construction), and a runner without one
    is driven through its Python forward."""
    assert engine.stats()["forward"] == {"target": "native", "draft": "native"}
    with ssdcore.Engine(mode="ar", max_batch=1, max_context=64) as ar:
        assert ar.stats()["forward"]["target"] == "native"
    from ssdcore.engine.model_runner import ModelRunner

    asked, forwards = [], []
    python_forward = ModelRunner.forward
    monkeypatch.setattr(ModelRunner, "native_runner", lambda runner: asked.append(runner.side))
    monkeypatch.setattr(ModelRunner, "forward",
                        lambda runner, *a: forwards.append(runner.side) or python_forward(runner, *a))
    with ssdcore.Engine(mode="sd", K=2, max_batch=1, max_context=64) as e:
        assert sorted(asked) == ["draft", "target"]  # asked once each, by the Python Engine
        e.generate([[3, 4, 5]], SamplingParams(temperature=0, max_tokens=4, ignore_eos=True))
        assert e.stats()["forward"] == {"target": "native", "draft": "native"}
    assert {"target", "draft"} <= set(forwards)


def test_engines_sharing_loaded_models_keep_their_own_caches():
    """A second engine over the same LoadedModel objects reallocates the models' KV caches; the first
    engine keeps the caches it was built with (its native runners point into them) and still works."""
    from ssdcore.models import load_model

    target_path, draft_path = ssdcore.bundled_pair()
    target, draft = load_model(target_path), load_model(draft_path)
    sp = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    with ssdcore.Engine(target, draft, mode="ssd", K=3, max_context=256) as first:
        before = first.generate(["def read(path):\n"], sp)[0].token_ids
        with ssdcore.Engine(target, draft, mode="ssd", K=3, max_context=128) as second:
            assert second.generate(["class Node:\n"], sp)[0].token_ids
            assert first.generate(["def read(path):\n"], sp)[0].token_ids == before


def test_spin_wait_defaults_to_polling_only_on_cores_of_their_own():
    from ssdcore.engine.engine_setup import PINNED_SPIN_WAIT_US, default_spin_wait_us

    assert default_spin_wait_us([0], [1]) == PINNED_SPIN_WAIT_US > 0
    assert default_spin_wait_us(None, [1]) == 0 and default_spin_wait_us([0], None) == 0
    assert default_spin_wait_us([0, 1], [1]) == 0  # shared core: park, never burn it
    with ssdcore.Engine(mode="sd", K=2, max_batch=1, max_context=128) as e:
        assert e.config.spin_wait_us == 0
    with ssdcore.Engine(mode="sd", K=2, max_batch=1, max_context=128, spin_wait_us=250) as e:
        assert e.config.spin_wait_us == 250
        out = e.generate([3, 4, 5], ssdcore.SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True))
        assert len(out[0].token_ids) == 8
    with pytest.raises(ValueError, match="spin_wait_us"):
        ssdcore.Engine(mode="sd", K=2, spin_wait_us=-1)


def _events(engine, prompt, sp, lazy):
    _, rid = engine._submit(prompt, sp, lazy=lazy)
    events = []
    while not events or not events[-1].get("finish"):
        ev = engine._core.next(rid, 100)
        if ev is not None:
            events.append(ev)
    return events


def test_generate_gets_one_event_unless_it_streams_or_matches_stop_strings(engine):
    sp = ssdcore.SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True)
    whole = _events(engine, "def main(argv=None):\n", sp, lazy=True)  # generate(): one event
    assert len(whole) == 1 and whole[0]["finish"] == "length" and len(whole[0]["tokens"]) == 24
    rounds = _events(engine, "def main(argv=None):\n", sp, lazy=False)  # stream(): one per round
    assert len(rounds) > 2
    assert [t for ev in rounds for t in ev.get("tokens", [])] == whole[0]["tokens"]
    stop = ssdcore.SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True, stop=["\x00never"])
    assert len(_events(engine, "def main(argv=None):\n", stop, lazy=True)) > 2  # stop strings: per round


def test_each_prespeculation_window_counts_once_across_requests():
    """Short requests one after another: the window the draft reports at a request's last round is not
    counted again at the next request's first round, so the hidden fraction stays a fraction."""
    with ssdcore.Engine(mode="ssd", K=4, fan_out=6, backup="ngram", max_context=512) as engine:
        for _ in range(12):
            engine.generate("def f(x):\n", SamplingParams(temperature=0, max_tokens=6, ignore_eos=True))
        s = engine.stats()
    # every window is reported and counted exactly once: a request's last window is not counted again
    # at the next request's first round (machine-independent: a count, not a duration)
    # (the last window is reported by an exchange that may come just after generate() returned)
    windows = s["phases"]["draft_prespeculate"][1]
    assert windows > 0 and windows - 1 <= s["draft_windows"] <= windows
    assert 0 <= s["draft_hidden_fraction"] <= 1.0


def test_apply_draft_speculation_fills_only_what_the_caller_left_unset():
    from ssdcore.engine.engine_setup import DEFAULT_SPECULATION, apply_draft_speculation, resolve_config

    rec = {"K": 3, "fan_out": 10, "saguaro_c": 0.5}
    base = resolve_config(mode="ssd", backup="auto", **DEFAULT_SPECULATION)
    got = apply_draft_speculation(base, rec, ("K", "fan_out", "saguaro_c"))
    assert (got.K, got.fan_out_mode, got.fan_out_budget, got.saguaro_c) == (3, "uniform", 10, 0.5)
    # K and fan_out travel together: with either one given, both stay the caller's (or the default)
    for unset in (("K", "saguaro_c"), ("fan_out", "saguaro_c")):
        got = apply_draft_speculation(base, rec, unset)
        assert (got.K, got.fan_out_budget, got.saguaro_c) == (4, 8, 0.5)
    assert apply_draft_speculation(base, rec, ()) == base
    assert apply_draft_speculation(base, None, ("K", "fan_out", "saguaro_c")) == base
    listed = apply_draft_speculation(base, {"K": 3, "fan_out": (4, 2, 1, 0)}, ("K", "fan_out"))
    assert (listed.K, listed.fan_out_mode, listed.fan_out_list) == (3, "list", (4, 2, 1, 0))
    with pytest.raises(ValueError, match="ssdcore_speculation .* does not fit: .*fan_out"):
        apply_draft_speculation(base, {"K": 3, "fan_out": (4, 2)}, ("K", "fan_out"))


def test_an_engine_takes_the_drafts_recommended_speculation(tmp_path):
    """A draft whose config.json recommends K, fan_out and C gets them when the caller leaves them
    unset; what the caller gives wins; the output is the target's either way."""
    import json
    import shutil

    target, draft = ssdcore.bundled_pair()
    tuned = tmp_path / "draft"
    shutil.copytree(draft, tuned)
    config = json.loads((tuned / "config.json").read_text())
    config["ssdcore_speculation"] = {"K": 3, "fan_out": [3, 2, 1, 1], "saguaro_c": 0.5}
    (tuned / "config.json").write_text(json.dumps(config))
    sp = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    with ssdcore.Engine(target, draft, mode="ar") as ar:
        want = ar.generate(["def read(path):\n"], sp)[0].token_ids
    with ssdcore.Engine(target, tuned, max_context=256) as e:
        c = e.config
        assert (c.K, c.fan_out_mode, c.fan_out_list, c.saguaro_c) == (3, "list", (3, 2, 1, 1), 0.5)
        assert e.generate(["def read(path):\n"], sp)[0].token_ids == want
    with ssdcore.Engine(target, tuned, K=5, saguaro_c=1.0, max_context=256) as e:
        c = e.config
        assert (c.K, c.fan_out_mode, c.fan_out_budget, c.saguaro_c) == (5, "uniform", 8, 1.0)
    with ssdcore.Engine(target, tuned, fan_out_mode="geometric", max_context=256) as e:
        assert (e.config.K, e.config.fan_out_mode, e.config.saguaro_c) == (4, "geometric", 0.5)
    with ssdcore.Engine(target, draft, max_context=256) as e:  # no recommendation: the defaults
        assert (e.config.K, e.config.fan_out_budget, e.config.saguaro_c) == (4, 8, 1.0)
