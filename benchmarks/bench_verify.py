"""Micro-benchmark: CPU verification time vs the target forward's lm_head matmul at the same rows.

For each (B, K, V) it times ssdcore.ops.verify on CPU (the public API, argument checks included) for a sampled
target (temperature 1, no top-k/top-p) and a greedy one (temperature 0), with draft logits close to the
target's so that most proposals are accepted (the expensive case: every row's normaliser is needed). The
reference is the lm_head matmul of a target forward over the same B*(K+1) rows, float32 [B*(K+1), H] x [H, V]
with torch on the same CPU threads, for hidden sizes H = 1024 and 4096. The ratio verify / lm_head is what
verification adds to a target forward (lower bound: a real forward also runs the transformer layers).

    python benchmarks/bench_verify.py                 # the full grid
    python benchmarks/bench_verify.py --quick         # a few points
    python benchmarks/bench_verify.py --b 1 64 --k 4 --v 151936 --hidden 4096

With --forward-hidden H (default 1024) it also reports a lower bound of a whole target forward at that
width: ``--forward-layers`` (default 24) times the measured matmuls of one Llama-style decoder layer
(qkv 3H, o H, gate/up 2 x 2.75H, down; attention scores and norms left out) over the same rows, plus the
lm_head at that width. A Qwen2.5-0.5B-class model has H=896 and 24 layers.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ssdcore import ops


def timeit(fn, min_reps: int = 3, min_seconds: float = 0.3) -> float:
    """Median seconds per call (one warm-up call first)."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 50:
            break
    return statistics.median(times)


def make_inputs(b: int, k: int, v: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(b, k + 1, v, generator=g) * 3.0
    draft = (target[:, :k] + torch.randn(b, k, v, generator=g) * 0.3).contiguous()
    tokens = ops.sample_draft(draft.reshape(b * k, v), position=torch.arange(k).repeat(b),
                              seed=torch.arange(b).repeat_interleave(k)).reshape(b, k)
    return target, tokens, draft


def lm_head_seconds(rows: int, w: torch.Tensor) -> float:
    x = torch.randn(rows, w.shape[0])
    return timeit(lambda: torch.matmul(x, w), min_reps=2, min_seconds=0.2)


def layer_seconds(rows: int, weights: list) -> float:
    """The matmuls of one decoder layer over ``rows`` rows (a lower bound of the layer's time)."""
    x = torch.randn(rows, weights[0].shape[0])

    def run() -> None:
        qkv = x @ weights[0]
        h = qkv[:, :x.shape[1]] @ weights[1]
        up = h @ weights[2]
        up[:, :weights[3].shape[0]] @ weights[3]
    return timeit(run, min_reps=2, min_seconds=0.2)


def layer_weights(h: int) -> list:
    inter = int(2.75 * h)
    return [torch.randn(h, 3 * h) * 0.02, torch.randn(h, h) * 0.02, torch.randn(h, 2 * inter) * 0.02,
            torch.randn(inter, h) * 0.02]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--b", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--k", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--v", type=int, nargs="+", default=[4096, 32768, 151936])
    ap.add_argument("--hidden", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--threads", type=int, default=0, help="verification threads (0 = automatic)")
    ap.add_argument("--forward-hidden", type=int, nargs="*", default=[1024],
                    help="widths at which to report a whole-forward lower bound (none: skip)")
    ap.add_argument("--forward-layers", type=int, default=24)
    ap.add_argument("--quick", action="store_true", help="B in {1, 64}, K = 4, V in {4096, 151936}")
    args = ap.parse_args()
    if args.quick:
        args.b, args.k, args.v = [1, 64], [4], [4096, 151936]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads; verification threads: "
          f"{args.threads or 'auto'}; lm_head = float32 matmul [B*(K+1), H] x [H, V]")
    head = f"{'B':>3} {'K':>2} {'V':>7} | {'sampled ms':>10} {'greedy ms':>9}"
    for h in args.hidden:
        head += f" | {'lm_head H=' + str(h) + ' ms':>19} {'ratio':>6}"
    for h in args.forward_hidden:
        head += f" | {f'fwd H={h} L={args.forward_layers} ms':>19} {'ratio':>6}"
    print(head)
    print("-" * len(head))
    for v in args.v:
        points = [(b, k) for k in args.k for b in args.b]
        verify_ms = {}
        for b, k in points:
            target, tokens, draft = make_inputs(b, k, v)
            kw = dict(position=torch.arange(b) * 100, seed=torch.arange(b), num_threads=args.threads)
            verify_ms[(b, k)] = (timeit(lambda: ops.verify(target, tokens, draft, **kw)),
                                 timeit(lambda: ops.verify(target, tokens, draft, temperature=0.0, **kw)))
            del target, tokens, draft
        lm_ms = {}
        for h in args.hidden:
            w = torch.randn(h, v) * 0.02  # one weight matrix alive at a time (H=4096, V=152k: 2.5 GB)
            for b, k in points:
                lm_ms[(b, k, h)] = lm_head_seconds(b * (k + 1), w)
            del w
        fwd_ms = {}
        for h in args.forward_hidden:
            layer = layer_weights(h)
            for b, k in points:
                per_layer = layer_seconds(b * (k + 1), layer)
                lm = lm_ms.get((b, k, h))
                if lm is None:
                    w = torch.randn(h, v) * 0.02
                    lm = lm_head_seconds(b * (k + 1), w)
                    del w
                fwd_ms[(b, k, h)] = args.forward_layers * per_layer + lm
            del layer
        for b, k in points:
            sampled, greedy = verify_ms[(b, k)]
            line = f"{b:>3} {k:>2} {v:>7} | {sampled * 1e3:>10.3f} {greedy * 1e3:>9.3f}"
            for h in args.hidden:
                lm = lm_ms[(b, k, h)]
                line += f" | {lm * 1e3:>19.3f} {100 * sampled / lm:>5.1f}%"
            for h in args.forward_hidden:
                fwd = fwd_ms[(b, k, h)]
                line += f" | {fwd * 1e3:>19.1f} {100 * sampled / fwd:>5.1f}%"
            print(line, flush=True)


if __name__ == "__main__":
    main()
