"""Decode and verification latency: ssdcore.models.CausalLM vs transformers, same checkpoint.

Usage:
    python benchmarks/bench_models.py [CHECKPOINT_DIR] [--threads 1,2] [--dtypes float32,bfloat16]
                                      [--prompt 128] [--steps 32] [--verify 5,8] [--repeats 3]
                                      [--clock wall|cpu]

Without CHECKPOINT_DIR a random-initialised Llama (6 layers x 384 wide, GQA 6:2, vocab
6144) is saved to a temporary directory and used. For each dtype and thread count it
reports the median latency of: one-token decode at context ``--prompt``, and one
verification forward of K+1 tokens (``--verify``) at the same context. transformers
runs with its default (sdpa) attention and a DynamicCache, under inference_mode; its
cache is cropped back after each verification (crop time excluded). Our model and
transformers are timed alternately so background load affects both alike.

ssdcore runs what the engine runs: the installed package's native forward for float32 and
bfloat16 CPU models, split over a ThreadTeam of ``threads`` threads (cpp/cpu_model/thread_team.h), else the torch
path with ``threads`` torch threads; the ``path`` column says which. Run it against the
installed package (not a source tree without the built extension).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from ssdcore.models import load_model  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"  # the random-checkpoint maker lives there


def make_fallback_checkpoint(path: Path) -> Path:
    sys.path.insert(0, str(TESTS_DIR))
    from _model_util import save_random_checkpoint
    save_random_checkpoint(path, "llama", seed=0, tokenizer=False, vocab_size=6144,
                           hidden_size=384, intermediate_size=1024, num_hidden_layers=6,
                           num_attention_heads=6, num_key_value_heads=2,
                           max_position_embeddings=4096, initializer_range=0.02)
    return path


class Ours:
    name = "ssdcore"

    def __init__(self, path, dtype, prompt, max_k, threads):
        from ssdcore import _core

        from ssdcore.engine.model_runner import choose_forward, float32_twin

        self.model = load_model(path, dtype=dtype, with_tokenizer=False).model
        # the engine's choice (engine/model_runner.py): a bfloat16 CPU model runs natively too, as
        # the float32 twin of its weights
        self.native = choose_forward(self.model) == "native"
        if self.native:
            self.model = float32_twin(self.model)
        self.threads = 1 if self.native else threads  # torch threads while it runs
        if self.native and threads > 1:
            self.model.native_team = _core.ThreadTeam(threads)
        self.path = f"native x{threads}" if self.native else f"torch x{threads}"
        torch.set_num_threads(self.threads)
        self.model.allocate_kv(1, prompt + max_k + 8)
        self.prompt = prompt
        self.model.prefill(0, prompt_ids(prompt, self.model.config.vocab_size))

    def decode(self, token):
        return self.model.decode([0], [[token]], [self.prompt])

    def verify(self, tokens):
        return self.model.decode([0], [tokens], [self.prompt])


class HF:
    name = "transformers"
    path = "torch"

    def __init__(self, path, dtype, prompt, max_k):
        from transformers import AutoModelForCausalLM, DynamicCache
        self.model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).eval()
        self.prompt = prompt
        ids = torch.tensor([prompt_ids(prompt, self.model.config.vocab_size)])
        self.cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            self.model(ids, past_key_values=self.cache, use_cache=True)

    def _step(self, tokens):
        ids = torch.tensor([tokens])
        pos = torch.arange(self.prompt, self.prompt + len(tokens))
        out = self.model(ids, past_key_values=self.cache, use_cache=True, cache_position=pos,
                         position_ids=pos[None])
        return out.logits

    def decode(self, token):
        return self._step([token])

    def verify(self, tokens):
        return self._step(tokens)

    def reset(self):
        extra = self.cache.get_seq_length() - self.prompt
        if extra > 0:
            self.cache.crop(-extra)  # transformers 5: negative = number of tokens to drop


def prompt_ids(n, vocab):
    return torch.randint(3, vocab, (n,), generator=torch.Generator().manual_seed(0)).tolist()


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_calls(impl, fn, arg, steps, clock):
    """Median seconds of ``steps`` calls of ``fn(arg)`` (HF cache cropped between calls)."""
    times, now = [], CLOCKS[clock]
    torch.set_num_threads(impl.threads)
    with torch.inference_mode():
        for _ in range(steps):
            t0 = now()
            fn(arg)
            times.append(now() - t0)
            if isinstance(impl, HF):
                impl.reset()
    return statistics.median(times)


def bench_config(path, dtype, threads, args):
    torch.set_num_threads(threads)
    max_k = max(args.verify)
    impls = [Ours(path, dtype, args.prompt, max_k, threads), HF(path, dtype, args.prompt, max_k)]
    impls[1].threads = threads
    results = {impl.name: {} for impl in impls}
    for _ in range(args.repeats):
        for impl in impls:  # alternate implementations round by round
            r = results[impl.name]
            r.setdefault("decode", []).append(time_calls(impl, impl.decode, 7, args.steps, args.clock))
            for k1 in args.verify:
                toks = list(range(5, 5 + k1))
                r.setdefault(f"verify{k1}", []).append(
                    time_calls(impl, impl.verify, toks, max(4, args.steps // 2), args.clock))
    out = {name: {k: min(v) * 1e3 for k, v in r.items()} for name, r in results.items()}
    for impl in impls:
        out[impl.name]["path"] = impl.path
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?", help="HF checkpoint dir (default: random 6x384 Llama)")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--prompt", type=int, default=128, help="context length before timing")
    p.add_argument("--steps", type=int, default=32, help="timed calls per measurement")
    p.add_argument("--verify", default="5,8", help="K+1 widths of verification forwards")
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds (best kept)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall-clock latency, or process CPU time (steadier on a loaded machine)")
    args = p.parse_args(argv)
    args.verify = [int(v) for v in args.verify.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.checkpoint) if args.checkpoint else make_fallback_checkpoint(Path(tmp))
        print(f"checkpoint: {args.checkpoint or 'random Llama 6 layers x 384, vocab 6144'}; "
              f"context {args.prompt}; {args.clock} times in ms (best of {args.repeats} medians)")
        cols = ["decode"] + [f"verify{k}" for k in args.verify]
        print(f"{'dtype':9} {'thr':>3} {'impl':13} {'path':10} " + " ".join(f"{c:>9}" for c in cols))
        for dtype in args.dtypes.split(","):
            for threads in (int(t) for t in args.threads.split(",")):
                res = bench_config(path, dtype, threads, args)
                for name, r in res.items():
                    print(f"{dtype:9} {threads:>3} {name:13} {r['path']:10} " +
                          " ".join(f"{r[c]:9.3f}" for c in cols))
                ratio = " ".join(f"{res['transformers'][c] / res['ssdcore'][c]:8.2f}x" for c in cols)
                print(f"{'':9} {'':>3} {'speedup':13} {'':10} {ratio}", flush=True)


if __name__ == "__main__":
    main()
