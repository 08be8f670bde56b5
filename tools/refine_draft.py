#!/usr/bin/env python3
"""On-policy refinement of the bundled draft: distil it further on text the target writes.

Speculative decoding checks the draft on the target's own continuations, not on the corpus the
pair was trained on. This stage runs after `train_pair.py` and
  1. samples a pool of continuations from the saved target: prompts are windows of the train
     split, half of the continuations greedy and half at temperature 1;
  2. continues distilling the saved draft (the same loss as train_pair: w*KL(p_target||q_draft)
     + (1-w)*CE) on batches that mix pool sequences with corpus windows;
  3. reports, before and after, the draft's top-1 agreement with the target on the target's
     greedy continuations of validation-split prompts (the quantity that sets acceptance at
     temperature 0) and the validation loss, then saves the draft (bf16) over <out>/draft.

Deterministic for a given --seed and --threads: the pool, the batches and the initial weights
(the saved draft) are all fixed by them.

  python tools/refine_draft.py --threads 2          # from the repository root
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_pair import (DEFAULT_OUT, DEFAULT_WORK, eval_loss, get_batch, load_fp32, log,  # noqa: E402
                        lr_at, make_optimizer, save_model, train_step)


@torch.no_grad()
def sample_pool(target, data: np.ndarray, n: int, prompt_len: int, gen_len: int,
                temperature: float, seed: int, batch: int = 32) -> torch.Tensor:
    """[n, prompt_len + gen_len] token ids: corpus prompts continued by the target."""
    from transformers.cache_utils import DynamicCache

    rows = []
    for b in range(0, n, batch):
        size = min(batch, n - b)
        gen = torch.Generator().manual_seed(seed * 7919 + b)
        starts = torch.randint(0, len(data) - prompt_len, (size,), generator=gen).tolist()
        ids = torch.stack([torch.from_numpy(data[s:s + prompt_len].astype(np.int64)) for s in starts])
        cache = DynamicCache(config=target.config)
        logits = target(input_ids=ids, past_key_values=cache, use_cache=True).logits[:, -1]
        for _ in range(gen_len):
            if temperature == 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                probs = torch.softmax(logits.float() / temperature, -1)
                nxt = torch.multinomial(probs, 1, generator=gen)
            ids = torch.cat([ids, nxt], 1)
            logits = target(input_ids=nxt, past_key_values=cache, use_cache=True).logits[:, -1]
        rows.append(ids)
    return torch.cat(rows)


@torch.no_grad()
def agreement(target, draft, seqs: torch.Tensor, start: int) -> float:
    """Top-1 agreement of draft and target on the positions from `start` on (teacher forced)."""
    hit = total = 0
    for i in range(0, len(seqs), 16):
        x = seqs[i:i + 16, :-1]
        t = target(input_ids=x).logits[:, start - 1:].argmax(-1)
        d = draft(input_ids=x).logits[:, start - 1:].argmax(-1)
        hit += (t == d).sum().item()
        total += t.numel()
    return hit / max(1, total)


def mixed_batch(pool: torch.Tensor, data: np.ndarray, step: int, args) -> torch.Tensor:
    n_pool = round(args.batch * args.pool_frac)
    gen = torch.Generator().manual_seed(args.seed * 1_000_033 + step)
    picks = torch.randint(0, len(pool), (n_pool,), generator=gen)
    corpus = get_batch(data, step, args.seed + 17, args.batch - n_pool, pool.shape[1] - 1)
    return torch.cat([pool[picks], corpus]) if n_pool else corpus


def refine(draft, target, pool: torch.Tensor, data: np.ndarray, args) -> None:
    opt = make_optimizer(draft, args.lr)
    draft.train()
    t0, ema = time.time(), None
    per_step = args.batch * (pool.shape[1] - 1)
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        loss, _ = train_step(draft, target, opt, mixed_batch(pool, data, step, args), args.kl_weight)
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            rate = (step + 1) * per_step / max(1e-9, time.time() - t0)
            eta = (args.steps - step - 1) * per_step / max(1e-9, rate)
            log(f"refine step {step + 1}/{args.steps} loss(ema) {ema:.4f} "
                f"lr {opt.param_groups[0]['lr']:.2e} {rate:.0f} tok/s ETA {eta / 60:.1f} min")
    draft.eval()


def measure(target, draft, heldout: torch.Tensor, data: np.ndarray, args) -> dict:
    return {"agreement_on_target_greedy": round(agreement(target, draft, heldout, args.prompt_len), 4),
            "val_loss": round(eval_loss(draft, data, 256, args.val_tokens), 4)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(DEFAULT_OUT), help="reads <out>/target, refines <out>/draft")
    p.add_argument("--work", default=str(DEFAULT_WORK), help="token arrays from train_pair.py")
    p.add_argument("--seed", type=int, default=4321)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pool", type=int, default=1024, help="target continuations to sample")
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--gen-len", type=int, default=193, help="prompt + gen = batch sequence + 1")
    p.add_argument("--pool-frac", type=float, default=0.5, help="share of each batch from the pool")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--kl-weight", type=float, default=0.8)
    p.add_argument("--heldout", type=int, default=64, help="validation prompts for the agreement")
    p.add_argument("--val-tokens", type=int, default=131_072)
    p.add_argument("--log-every", type=int, default=20)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out, work = Path(args.out), Path(args.work)
    data = {name: np.load(work / f"{name}.npy") for name in ("train", "validation")}
    target, draft = load_fp32(out / "target"), load_fp32(out / "draft")
    start = time.time()
    heldout = sample_pool(target, data["validation"], args.heldout, args.prompt_len,
                          args.gen_len, 0.0, args.seed + 1)
    before = measure(target, draft, heldout, data["validation"], args)
    log(f"draft before: {before}")
    half = args.pool // 2
    pool = torch.cat([sample_pool(target, data["train"], half, args.prompt_len, args.gen_len, 0.0, args.seed),
                      sample_pool(target, data["train"], args.pool - half, args.prompt_len, args.gen_len,
                                  1.0, args.seed + 2)])
    log(f"pool: {len(pool)} target continuations of {args.gen_len} tokens "
        f"({(time.time() - start) / 60:.1f} min so far)")
    refine(draft, target, pool, data["train"], args)
    save_model(draft, out / "draft")
    after = measure(target, load_fp32(out / "draft"), heldout, data["validation"], args)
    log(f"draft after: {after}; done in {(time.time() - start) / 60:.1f} min")
    (work / "refine_results.json").write_text(json.dumps({"before": before, "after": after}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
