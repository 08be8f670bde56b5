"""Draft-free speculation (prompt lookup): ``Engine(target, draft="ngram", mode="sd")`` loads no draft
model and proposes, each round, the tokens that followed the latest earlier occurrence of the
sequence's last n tokens (the C++ ngram_proposer, tested in cpp/tests/runtime/test_ngram_proposer.cpp).

Greedy output equals ar token for token at batch 1 and 4, with prompts that repeat themselves so that
proposals are made and accepted (the stats must show it); bad configurations (ssd with ngram, a
backup other than ngram, K < 1, ngram_n < 1, ngram_min_n outside 1..ngram_n) raise a ValueError naming
the setting. The sampled distribution is tested in test_engine_sampling.py (case "sd-ngram").
"""
import pytest

import ssdcore
from _engine_util import GREEDY, save_tiny_pair

# Repeats within each prompt, so the n-gram lookup finds matches from the first round on.
PROMPTS = [[3, 4, 5, 6, 3, 4, 5, 6, 3, 4], [7, 8, 9, 7, 8, 9, 7], [12, 13, 12, 13, 12], [1, 2]]
KW = dict(max_batch=4, max_context=64)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return save_tiny_pair(tmp_path_factory.mktemp("ngram_pair"))[0]


@pytest.fixture(scope="module")
def reference(target):
    with ssdcore.Engine(target, mode="ar", **KW) as engine:
        return [o.token_ids for o in engine.generate(PROMPTS, GREEDY)]


def run(target, prompts, **kw):
    with ssdcore.Engine(target, draft="ngram", mode="sd", **{**KW, **kw}) as engine:
        assert engine.draft is None  # no draft model was loaded
        outs = [o.token_ids for o in engine.generate(prompts, GREEDY)]
        return outs, engine.stats()


@pytest.mark.parametrize("K", [1, 3, 6])
def test_greedy_equals_ar_batch1(target, reference, K):
    for prompt, ref in zip(PROMPTS, reference):
        outs, s = run(target, [prompt], K=K)
        assert outs == [ref], f"K={K}, prompt {prompt}"
        assert s["forward"] == {"target": s["forward"]["target"]}  # no draft forward at all


@pytest.mark.parametrize("min_n, max_n", [(1, 3), (2, 4), (1, 1)])
def test_greedy_equals_ar_batch4_and_accepts(target, reference, min_n, max_n):
    outs, s = run(target, PROMPTS, K=4, ngram_n=max_n, ngram_min_n=min_n)
    assert outs == reference
    assert s["backup_use"]["ngram"] > 0 and s["backup_use"]["jit"] == 0, s["backup_use"]
    assert sum(s["position_accepted"]) > 0, f"no proposal was accepted: {s}"
    assert s["mean_accept_length"] > 1.0


def test_ar_ignores_the_ngram_draft(target, reference):
    with ssdcore.Engine(target, draft="ngram", mode="ar", **KW) as engine:
        assert [o.token_ids for o in engine.generate(PROMPTS, GREEDY)] == reference


@pytest.mark.parametrize("kw, match", [
    (dict(mode="ssd"), "draft = 'ngram'.*mode = 'ssd'.*allowed: mode = 'sd'"),
    (dict(mode="sd", backup="jit"), "backup = 'jit' is invalid with draft = 'ngram'.*allowed: 'ngram'"),
    (dict(mode="sd", K=0), "EngineConfig.K = 0 is invalid: allowed 1..32"),
    (dict(mode="sd", ngram_n=0), "EngineConfig.ngram_n = 0 is invalid: allowed 1..8"),
    (dict(mode="sd", ngram_n=2, ngram_min_n=3), "EngineConfig.ngram_min_n = 3 is invalid: allowed 1..2"),
    (dict(mode="sd", ngram_min_n=0), "EngineConfig.ngram_min_n = 0 is invalid"),
])
def test_bad_config_is_a_clear_value_error(target, kw, match):
    with pytest.raises(ValueError, match=match):
        ssdcore.Engine(target, draft="ngram", **{**KW, **kw})


def test_core_refuses_a_missing_draft_without_ngram(target):
    """The C++ rule below the Python one: a null draft runner needs mode "sd" with backup "ngram"."""
    from ssdcore import _core
    from ssdcore.engine.engine_config import EngineConfig
    from ssdcore.engine.model_runner import ModelRunner
    from ssdcore.models import load_model

    runner = ModelRunner(load_model(target).model, side="target", num_lanes=1, context_slots=64)
    for config, ok in ((EngineConfig(mode="sd", backup="jit", max_batch=1, max_context=64), False),
                       (EngineConfig(mode="ssd", backup="ngram", max_batch=1, max_context=64), False),
                       (EngineConfig(mode="sd", backup="ngram", max_batch=1, max_context=64), True)):
        if ok:
            _core.Engine(config.to_core(), runner, None, [], []).close()
            continue
        with pytest.raises(ValueError, match="needs a draft model.*\"sd\" with backup \"ngram\""):
            _core.Engine(config.to_core(), runner, None, [], [])
