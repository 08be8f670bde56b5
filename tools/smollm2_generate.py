"""Teacher data for the SmolLM2-135M-Instruct draft: the target's own answers with its top-k logits.

    python tools/smollm2_generate.py --split train --prompts 6000 --worker 0 --workers 2
    python tools/smollm2_generate.py --split heldout --prompts 96 --temperature-share 0

Prompts come from tools/smollm2_prompts.py (``--split`` picks the template family); worker ``w`` of
``W`` takes prompts ``w::W``, so workers write disjoint shards. Chat prompts get the target's chat
template (with its default system message); raw prompts are continued as they are. Prompt ``i`` is
decoded greedily, or at temperature ``--temperature`` when ``(i // 2) % 2 == 1`` and
``--temperature-share`` is 0.5 (the default); a sampled prompt draws from a generator seeded by
``(seed, i)``, so a prompt's answer does not depend on the worker split or the batch.

Decoding uses ssdcore's own model (``ssdcore.models.load_model("smollm2")``, float32, the native
CPU forward, one thread) batched over ``--batch`` lanes: a lane that finishes (EOS or
``--max-new`` tokens) is refilled with the next prompt at once. The KV of the shared chat prefix
(system message) is computed once and copied into each lane. Every decode step's logits are the
teacher's distribution at that position: the top ``--topk`` log-probabilities (full softmax) and
their ids are stored with the tokens.

Output: ``tools/_work/smollm2/data/<split>-s<seed>-w<worker>-<shard>.pt``, each a list of records
``{"index", "template", "kind", "temperature", "prompt": int32[P], "tokens": int32[T],
"top_ids": int32[T, k], "top_logp": float16[T, k]}`` where row t of ``top_*`` is the teacher's
distribution for ``tokens[t]`` (given the prompt and ``tokens[:t]``). Shards are written every
``--shard-size`` records, so an interrupted run keeps what it finished; ``--skip-done`` resumes. Creating
``tools/_work/smollm2/data/STOP`` makes every worker finish its open lanes and exit.

Budget (measured, 2 shared cores, one thread per process): 220 teacher tokens/s at 24 lanes on a
quiet core, 125-146 tok/s beside a running test suite (403 k tokens in 54 min). ``--dtype bfloat16``
runs the PyTorch forward on bf16-rounded weights, whose matrix products use the CPU's AMX units
where it has them (this VM: 1.28 TFLOP/s bf16 against 0.18 fp32 per core): 632 tok/s at 64 lanes on a
quiet core in a decode micro-benchmark, about 250 tok/s per process with two processes, real
prompts and prefills (375 k tokens in 12.8 min); attention, not the products, then bounds a step.
The bf16 teacher's argmax equals the float32 target's greedy token at 98.7 % of the held-out
positions (4,101 of 4,155, teacher-forced), so its answers are the target's up to rare near-ties.
``--dedupe-from S`` skips prompt texts already in the sets of seeds S .. seed-1 (a seed's set
repeats earlier seeds' texts more and more: 6000, 2733, 1965, 1519, ... new texts for seeds
2024, 2025, 2026, 2027, ...).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smollm2_prompts import make_prompts  # noqa: E402

WORK = Path(__file__).resolve().parent / "_work" / "smollm2" / "data"


def encode(tok, prompt: dict, max_prompt: int) -> list:
    if prompt["kind"] == "chat":
        ids = tok.apply_chat_template([{"role": "user", "content": prompt["text"]}],
                                      add_generation_prompt=True, tokenize=True)
        if not isinstance(ids, list):
            ids = ids["input_ids"]
    else:
        ids = tok(prompt["text"], add_special_tokens=False)["input_ids"]
    return list(ids)[-max_prompt:] if len(ids) > max_prompt else list(ids)


def common_prefix(a: list, b: list) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


class Lane:
    __slots__ = ("index", "prompt", "meta", "tokens", "top_ids", "top_logp", "temp", "gen")

    def __init__(self, index, prompt, meta, temp, seed):
        self.index, self.prompt, self.meta, self.temp = index, prompt, meta, temp
        self.tokens, self.top_ids, self.top_logp = [], [], []
        self.gen = torch.Generator().manual_seed(seed * 1_000_003 + index) if temp > 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="train", choices=("train", "heldout"))
    ap.add_argument("--prompts", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--worker", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--max-new", type=int, default=160)
    ap.add_argument("--max-prompt", type=int, default=320)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--temperature-share", type=float, default=0.5, choices=(0.0, 0.5, 1.0))
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                    help="bfloat16: the PyTorch forward on bf16-rounded weights (AMX), ~2.7x faster here")
    ap.add_argument("--dedupe-from", type=int, default=0,
                    help="skip prompts whose text is in the prompt sets of seeds dedupe-from .. seed-1")
    ap.add_argument("--topk", type=int, default=16)
    ap.add_argument("--shard-size", type=int, default=128)
    ap.add_argument("--skip-done", action="store_true", help="skip prompts already in shards")
    ap.add_argument("--limit-minutes", type=float, default=0, help="stop after this wall time")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from ssdcore.models import load_model

    WORK.mkdir(parents=True, exist_ok=True)
    stem = f"{args.split}-s{args.seed}-w{args.worker}"
    done = set()
    shard_no = len(list(WORK.glob(f"{stem}-*.pt")))
    if args.skip_done:  # any worker's shards of this split and seed (the worker count may change)
        for f in sorted(WORK.glob(f"{args.split}-s{args.seed}-w*-*.pt")):
            done |= {r["index"] for r in torch.load(f)}
    prompts = make_prompts(args.split, args.prompts, args.seed)
    if args.dedupe_from:
        for s in range(args.dedupe_from, args.seed):
            seen = {p["text"] for p in make_prompts(args.split, args.prompts, s)}
            done |= {i for i, p in enumerate(prompts) if p["text"] in seen}
    todo = [i for i in range(args.worker, len(prompts), args.workers) if i not in done]
    lm = load_model("smollm2", dtype=args.dtype)
    model, tok = lm.model, lm.tokenizer
    eos = set(lm.eos_token_ids)
    B = args.batch
    max_slots = args.max_prompt + args.max_new + 1
    model.allocate_kv(B + 1, max_slots)
    kv = model.kv_cache.buffer
    # Shared chat prefix: its KV lives in lane B and is copied into each chat lane.
    a = encode(tok, dict(kind="chat", text="a"), 10**6)
    b = encode(tok, dict(kind="chat", text="b c"), 10**6)
    prefix = a[:common_prefix(a, b)]
    model.prefill(B, prefix)
    print(f"{len(todo)} prompts for {stem}; shared chat prefix {len(prefix)} tokens", flush=True)

    lanes = [None] * B
    queue = iter(todo)
    out, t_start, n_tokens, n_records = [], time.time(), 0, 0

    def flush():
        nonlocal shard_no, out
        if out:
            torch.save(out, WORK / f"{stem}-{shard_no:04d}.pt")
            shard_no += 1
            out = []

    def take(logp_row, lane: Lane):
        top = torch.topk(logp_row, args.topk)
        lane.top_ids.append(top.indices.to(torch.int32))
        lane.top_logp.append(top.values.to(torch.float16))
        if lane.temp > 0:
            probs = torch.softmax(logp_row / lane.temp, dim=-1)
            nxt = int(torch.multinomial(probs, 1, generator=lane.gen))
        else:
            nxt = int(top.indices[0])
        lane.tokens.append(nxt)
        return nxt

    def start(slot: int) -> bool:
        for i in queue:
            p = prompts[i]
            ids = encode(tok, p, args.max_prompt)
            sampled = args.temperature_share == 1.0 or (args.temperature_share > 0 and (i // 2) % 2 == 1)
            temp = args.temperature if sampled else 0.0
            lane = Lane(i, ids, p, temp, args.seed)
            n = common_prefix(ids, prefix) if p["kind"] == "chat" else 0
            n = min(n, len(ids) - 1)
            if n:
                kv[:, :, slot, :, :n] = kv[:, :, B, :, :n]
            logits = model.prefill(slot, ids[n:], start=n)
            lanes[slot] = lane
            if take(torch.log_softmax(logits.float(), -1), lane) in eos:
                finish(slot)
                continue
            return True
        lanes[slot] = None
        return False

    def finish(slot: int):
        nonlocal n_tokens, n_records
        lane = lanes[slot]
        out.append(dict(index=lane.index, template=lane.meta["template"], kind=lane.meta["kind"],
                        temperature=lane.temp, prompt=torch.tensor(lane.prompt, dtype=torch.int32),
                        tokens=torch.tensor(lane.tokens, dtype=torch.int32),
                        top_ids=torch.stack(lane.top_ids), top_logp=torch.stack(lane.top_logp)))
        n_tokens += len(lane.tokens)
        n_records += 1
        if len(out) >= args.shard_size:
            flush()

    for s in range(B):
        start(s)
    last = time.time()
    while any(lanes):
        active = [s for s in range(B) if lanes[s] is not None]
        # A lane whose last token was EOS or that hit max_new has already been finished below.
        toks = [lanes[s].tokens[-1] for s in active]
        pos = [len(lanes[s].prompt) + len(lanes[s].tokens) - 1 for s in active]
        logits = model.decode(active, toks, pos)[:, 0]
        logp = torch.log_softmax(logits.float(), -1)
        for j, s in enumerate(active):
            take(logp[j], lanes[s])
        for s in active:
            lane = lanes[s]
            if lane.tokens[-1] in eos or len(lane.tokens) >= args.max_new:
                finish(s)
                if (args.limit_minutes and time.time() - t_start > 60 * args.limit_minutes) \
                        or (WORK / "STOP").exists():
                    lanes[s] = None
                else:
                    start(s)
        if time.time() - last > 60:
            last = time.time()
            el = last - t_start
            print(f"{el / 60:.1f} min: {n_records} prompts, {n_tokens} tokens, "
                  f"{n_tokens / el:.0f} tok/s (finished sequences)", flush=True)
    flush()
    el = time.time() - t_start
    print(f"done: {n_records} prompts, {n_tokens} tokens in {el / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
