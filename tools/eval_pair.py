#!/usr/bin/env python3
"""Evaluate the bundled target/draft pair on held-out (validation-split) stdlib files.

Runs real speculative decoding (SD) with the `transformers` models and a KV cache:
the draft proposes K tokens, the target verifies them in one forward pass.
  temperature 0: accept while draft token == target argmax; then the target's token.
  temperature 1: accept d with prob min(1, p(d)/q(d)); on rejection sample from
                 norm(max(0, p - q)); if all K are accepted, sample a bonus token from p.
Reports greedy draft/target agreement on the positions the target generates itself,
mean accept length (tokens per round incl. bonus/recovery) at temperature 0 and 1,
teacher-forced agreement on real validation text, and the per-step decode cost of each
model (1 thread, batch 1, KV cache) with `transformers` and with a lean reference decoder.

  python tools/eval_pair.py --threads 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_pair import DEFAULT_OUT, corpus_files, load_fp32, load_tokenizer, read_text  # noqa: E402

CODE_PROMPTS = [
    "def binary_search(items, target):\n",
    "class LRUCache:\n    \"\"\"A least-recently-used cache.\"\"\"\n\n    def __init__(self, capacity):\n",
    "import os\nimport sys\n\n\ndef main(argv=None):\n",
]


# ----------------------------------------------------------------------------- SD core

class Runner:
    """A model plus a DynamicCache that always covers ctx[:-1] of the caller's sequence."""

    def __init__(self, model):
        from transformers.cache_utils import DynamicCache

        self.model = model
        self.cache = DynamicCache(config=model.config)

    def logits_for(self, ctx: list[int], upto: int) -> torch.Tensor:
        """Feed ctx[cached:upto] and return logits of the fed positions (fp32, [n, V])."""
        have = self.cache.get_seq_length()
        ids = torch.tensor([ctx[have:upto]])
        out = self.model(input_ids=ids, past_key_values=self.cache, use_cache=True)
        return out.logits[0].float()

    def crop(self, length: int) -> None:
        extra = self.cache.get_seq_length() - length
        if extra > 0:
            self.cache.crop(-extra)


def pick(logits: torch.Tensor, temperature: float, gen: torch.Generator) -> tuple[int, torch.Tensor]:
    if temperature == 0:
        return int(logits.argmax()), None
    probs = F.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen)), probs


def verify(drafts, q_probs, p_logits, temperature, gen) -> tuple[int, int]:
    """Standard SD acceptance. Returns (number accepted, next token)."""
    for i, d in enumerate(drafts):
        if temperature == 0:
            best = int(p_logits[i].argmax())
            if best != d:
                return i, best
            continue
        p = F.softmax(p_logits[i] / temperature, dim=-1)
        q = q_probs[i]
        if torch.rand((), generator=gen).item() < min(1.0, (p[d] / q[d]).item()):
            continue
        residual = torch.clamp(p - q, min=0)
        residual = residual / residual.sum() if residual.sum() > 0 else p
        return i, int(torch.multinomial(residual, 1, generator=gen))
    return len(drafts), pick(p_logits[len(drafts)], temperature, gen)[0]


@torch.no_grad()
def speculative_decode(target, draft, prompt, n_new, K, temperature, seed):
    gen = torch.Generator().manual_seed(seed)
    ctx, tr, dr, accepts = list(prompt), Runner(target), Runner(draft), []
    tr.logits_for(ctx, len(ctx) - 1)
    while len(ctx) - len(prompt) < n_new:
        proposal, q_probs = [], []
        for _ in range(K):
            seq = ctx + proposal
            tok, q = pick(dr.logits_for(seq, len(seq))[-1], temperature, gen)
            proposal.append(tok)
            q_probs.append(q)
        p_logits = tr.logits_for(ctx + proposal, len(ctx) + K)
        n, nxt = verify(proposal, q_probs, p_logits, temperature, gen)
        base = len(ctx)
        ctx += proposal[:n] + [nxt]
        accepts.append(n + 1)
        tr.crop(base + n)
        dr.crop(base + n)
    return ctx[len(prompt):len(prompt) + n_new], accepts


@torch.no_grad()
def greedy_decode(model, prompt, n_new):
    ctx, run = list(prompt), Runner(model)
    for _ in range(n_new):
        ctx.append(int(run.logits_for(ctx, len(ctx))[-1].argmax()))
    return ctx[len(prompt):]


@torch.no_grad()
def argmax_agreement(target, draft, ids: list[int], start: int) -> tuple[int, int]:
    """Positions >= start where the draft's argmax equals the target's, given the same prefix."""
    x = torch.tensor([ids[:-1]])
    t = target(input_ids=x).logits[0, start - 1:].argmax(-1)
    d = draft(input_ids=x).logits[0, start - 1:].argmax(-1)
    return int((t == d).sum()), len(t)


# ----------------------------------------------------------------------------- data

def heldout_prompts(tok, n: int, length: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    docs = [tok(read_text(p), add_special_tokens=False)["input_ids"] for p in corpus_files()["validation"]]
    docs = [d for d in docs if len(d) > length + 8]
    prompts = []
    for i in range(n):
        doc = docs[i % len(docs)]
        s = int(rng.integers(0, len(doc) - length))
        prompts.append(doc[s:s + length])
    return prompts


def teacher_forced(target, draft, tok, seq: int, max_tokens: int) -> float:
    hits = total = 0
    for path in corpus_files()["validation"]:
        ids = tok(read_text(path), add_special_tokens=False)["input_ids"]
        for s in range(0, len(ids) - 1, seq):
            chunk = ids[s:s + seq + 1]
            if len(chunk) > 2:
                h, t = argmax_agreement(target, draft, chunk, 1)
                hits, total = hits + h, total + t
            if total >= max_tokens:
                return hits / total
    return hits / max(1, total)


# ----------------------------------------------------------------------------- decode cost

def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class LeanDecoder:
    """Minimal Llama decode step over a preallocated KV cache (cost reference only)."""

    def __init__(self, model, max_len: int):
        c, sd = model.config, {k: v.float() for k, v in model.state_dict().items()}
        self.c, self.sd, self.hd = c, sd, c.head_dim
        self.k = torch.zeros(c.num_hidden_layers, c.num_key_value_heads, max_len, self.hd)
        self.v = torch.zeros_like(self.k)
        inv = 1.0 / (c.rope_parameters["rope_theta"] ** (torch.arange(0, self.hd, 2).float() / self.hd))
        ang = torch.outer(torch.arange(max_len).float(), inv)
        self.cos, self.sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)

    def rope(self, x, pos):
        h = self.hd // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], -1)
        return x * self.cos[pos] + rot * self.sin[pos]

    def step(self, token: int, pos: int) -> torch.Tensor:
        c, sd = self.c, self.sd
        x = sd["model.embed_tokens.weight"][token][None]
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            h = rms(x, sd[p + "input_layernorm.weight"], c.rms_norm_eps)
            q = (h @ sd[p + "self_attn.q_proj.weight"].T).view(-1, self.hd)
            k = (h @ sd[p + "self_attn.k_proj.weight"].T).view(-1, self.hd)
            self.k[i, :, pos] = self.rope(k, pos)
            self.v[i, :, pos] = (h @ sd[p + "self_attn.v_proj.weight"].T).view(-1, self.hd)
            att = F.scaled_dot_product_attention(
                self.rope(q, pos)[:, None], self.k[i, :, :pos + 1], self.v[i, :, :pos + 1],
                enable_gqa=True)
            x = x + att.reshape(1, -1) @ sd[p + "self_attn.o_proj.weight"].T
            h = rms(x, sd[p + "post_attention_layernorm.weight"], c.rms_norm_eps)
            g = F.silu(h @ sd[p + "mlp.gate_proj.weight"].T) * (h @ sd[p + "mlp.up_proj.weight"].T)
            x = x + g @ sd[p + "mlp.down_proj.weight"].T
        return rms(x, sd["model.norm.weight"], c.rms_norm_eps) @ sd["model.embed_tokens.weight"].T


@torch.no_grad()
def decode_cost_ms(model, prompt: list[int], steps: int, repeats: int) -> dict:
    """Median seconds per single-token decode step, best of `repeats` runs, in ms."""
    hf, lean = [], []
    for _ in range(repeats):
        run, ctx, times = Runner(model), list(prompt), []
        run.logits_for(ctx, len(ctx) - 1)
        for _ in range(steps):
            t0 = time.perf_counter()
            ctx.append(int(run.logits_for(ctx, len(ctx))[-1].argmax()))
            times.append(time.perf_counter() - t0)
        hf.append(statistics.median(times))
        dec, times = LeanDecoder(model, len(prompt) + steps + 1), []
        for pos, tok in enumerate(ctx[:-1]):
            t0 = time.perf_counter()
            logits = dec.step(tok, pos)
            times.append(time.perf_counter() - t0)
        lean.append(statistics.median(times[len(prompt):]))
        assert int(logits.argmax()) == ctx[-1], "lean decoder disagrees with transformers"
    return {"transformers_ms": min(hf) * 1e3, "lean_ms": min(lean) * 1e3}


# ----------------------------------------------------------------------------- driver

def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=str(DEFAULT_OUT), help="holds target/ and draft/")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompts", type=int, default=24)
    p.add_argument("--prompt-len", type=int, default=96)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--K", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tf-tokens", type=int, default=32768, help="teacher-forced agreement budget")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = Path(args.dir)
    tok, target, draft = load_tokenizer(root / "target"), load_fp32(root / "target"), load_fp32(root / "draft")
    res: dict = {"K": args.K, "prompts": args.prompts, "prompt_len": args.prompt_len,
                 "new_tokens": args.new_tokens}
    hits = total = 0
    acc = {0.0: [], 1.0: []}
    for i, prompt in enumerate(heldout_prompts(tok, args.prompts, args.prompt_len, args.seed)):
        ref = greedy_decode(target, prompt, args.new_tokens)
        h, t = argmax_agreement(target, draft, prompt + ref, len(prompt))
        hits, total = hits + h, total + t
        for temp in acc:
            out, accepts = speculative_decode(target, draft, prompt, args.new_tokens, args.K, temp, args.seed + i)
            if temp == 0:
                assert out == ref, f"greedy SD differs from target greedy on prompt {i}"
            acc[temp].extend(accepts)
        print(f"prompt {i}: agreement so far {hits / total:.3f}", flush=True)
    res["greedy_agreement_on_target_generations"] = hits / total
    for temp, a in acc.items():
        res[f"mean_accept_len_T{temp:g}"] = sum(a) / len(a)
        res[f"rounds_T{temp:g}"] = len(a)
    res["teacher_forced_agreement"] = teacher_forced(target, draft, tok, 256, args.tf_tokens)
    torch.set_num_threads(1)
    bench_prompt = heldout_prompts(tok, 1, 64, args.seed + 7)[0]
    for name, model in (("target", target), ("draft", draft)):
        res[f"{name}_decode"] = decode_cost_ms(model, bench_prompt, 128, 3)
    for key in ("transformers_ms", "lean_ms"):
        res[f"cost_ratio_{key[:-3]}"] = res["target_decode"][key] / res["draft_decode"][key]
    res["continuations"] = {}
    for prompt in CODE_PROMPTS:
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        res["continuations"][prompt] = tok.decode(greedy_decode(target, ids, 96))
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
