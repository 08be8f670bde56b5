"""Distil a draft for SmolLM2-135M-Instruct from the target's own answers (tools/smollm2_generate.py).

    python tools/smollm2_generate.py --split heldout --prompts 96 --max-new 128 --temperature-share 0
    python tools/smollm2_generate.py --split train --prompts 12000 --worker 0 --workers 2   # (and 1)
    python tools/smollm2_draft.py train --minutes 30 --threads 1
    python tools/smollm2_draft.py train --minutes 20 --threads 2 --resume     # more data, more steps
    python tools/smollm2_draft.py export                 # -> python/ssdcore/assets/smollm2_draft/
    python tools/smollm2_draft.py eval-engine            # engine K=4 acceptance on held-out prompts

The draft is the target cut down: the target's embedding (frozen, shared: not shipped), its first
``--layers`` decoder layers and its final norm as the starting point, and an untied output head of
``--head`` rows for token ids ``0 .. head-1`` (initialised from the embedding's rows). SmolLM2's
BPE ids are ordered by merge rank, so the first 8192 ids are the frequent ones; the draft's logits for
ids >= head are -inf (q = 0), which ssdcore's vocabulary policy does without computing those rows
(the draft folder's tokenizer is the target's cut to its first ``head`` ids; the loader that
assembles that folder from the exported asset is ``ssdcore.models.smollm2_pair()``, tested by
tests/test_smollm2_pair.py). Verification stays exact: the target checks every token. ``--frozen N``
puts the target's first N layers, frozen, under the trainable ones; they are not exported (the
asset's config says ``ssdcore_target_layers``) and the loader copies them from the target.

Loss, on every answer position of every training record: soft cross-entropy against the teacher's
top-16 distribution renormalised over the ids the head covers, plus the hard cross-entropy of the
teacher's argmax (when the head covers it). AdamW (0.9, 0.95), wd 0.01 on matrices, lr ``--lr``
with 30 warmup steps and a cosine to 10 %: over ``--steps`` steps when given (deterministic), else
over ``--minutes`` of wall time. Batches of about ``--batch-tokens`` padded tokens of whole
sequences of similar length.

Held-out agreement: the draft's argmax, teacher-forced on the target's greedy answers to the
held-out prompts (other templates and topics: tools/smollm2_prompts.py), equal to the target's
token. Printed with the teacher tokens seen and the wall time every ``--eval-every`` steps, and
appended to ``tools/_work/smollm2/curve.jsonl``.

Runs, their budgets and agreement curves: tools/smollm2_draft_runs.md (the shipped draft is its
third run).

Data: each epoch reads every ``train-*.pt`` shard present when it starts (sorted by name), so
training can run while tools/smollm2_generate.py is still writing shards; the epoch's batch order
comes from a generator seeded by (seed, epoch). With ``--steps`` and a finished data set the run is
deterministic for ``--seed`` and ``--threads``.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "tools" / "_work" / "smollm2"
DATA = WORK / "data"
ASSET = ROOT / "python" / "ssdcore" / "assets" / "smollm2_draft"
# The engine settings the exported config recommends (ssdcore_speculation): the best ssd row of
# `ssdcore bench --pair smollm2` at T=0.7 and T=0 for the shipped draft (tools/smollm2_draft_runs.md,
# "Speculation settings"). Re-measure them after a new draft.
SPECULATION = {"K": 3, "fan_out": 10, "saguaro_c": 0.5}


# ----------------------------------------------------------------------------- model
def rope_tables(n: int, head_dim: int, theta: float):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    f = torch.outer(torch.arange(n, dtype=torch.float32), inv)
    emb = torch.cat([f, f], dim=-1)
    return emb.cos(), emb.sin()


def rotate(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., h:], x[..., :h]], dim=-1) * sin


class Layer(nn.Module):
    def __init__(self, hidden, inter, heads, kv_heads, head_dim, eps):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim, self.eps = heads, kv_heads, head_dim, eps
        self.ln1 = nn.Parameter(torch.ones(hidden))
        self.ln2 = nn.Parameter(torch.ones(hidden))
        self.qkv = nn.Parameter(torch.zeros((heads + 2 * kv_heads) * head_dim, hidden))
        self.o = nn.Parameter(torch.zeros(hidden, heads * head_dim))
        self.gate_up = nn.Parameter(torch.zeros(2 * inter, hidden))
        self.down = nn.Parameter(torch.zeros(hidden, inter))

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        h, kvh, d = self.heads, self.kv_heads, self.head_dim
        qkv = F.linear(F.rms_norm(x, (x.shape[-1],), self.ln1, self.eps), self.qkv)
        q, k, v = qkv.split([h * d, kvh * d, kvh * d], dim=-1)
        q = rotate(q.view(b, t, h, d).transpose(1, 2), cos, sin)
        k = rotate(k.view(b, t, kvh, d).transpose(1, 2), cos, sin)
        v = v.view(b, t, kvh, d).transpose(1, 2)
        k = k.repeat_interleave(h // kvh, dim=1)
        v = v.repeat_interleave(h // kvh, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + F.linear(a.transpose(1, 2).reshape(b, t, h * d), self.o)
        g, u = F.linear(F.rms_norm(x, (x.shape[-1],), self.ln2, self.eps), self.gate_up).chunk(2, -1)
        return x + F.linear(F.silu(g) * u, self.down)


class Draft(nn.Module):
    """Frozen target embedding, ``frozen`` frozen target layers, then trainable layers, final norm and
    a head over ids [0, head)."""

    def __init__(self, cfg, layers: int, head: int, frozen: int = 0):
        super().__init__()
        self.cfg, self.n_head = cfg, head
        self.embed = nn.Parameter(torch.zeros(cfg.vocab_size, cfg.hidden_size), requires_grad=False)

        def make(n):
            return nn.ModuleList(Layer(cfg.hidden_size, cfg.intermediate_size, cfg.num_heads,
                                       cfg.num_kv_heads, cfg.head_dim, cfg.rms_norm_eps) for _ in range(n))
        self.frozen = make(frozen)
        self.frozen.requires_grad_(False)
        self.layers = make(layers)
        self.norm = nn.Parameter(torch.ones(cfg.hidden_size))
        self.head = nn.Parameter(torch.zeros(head, cfg.hidden_size))
        self.cos, self.sin = rope_tables(1024, cfg.head_dim, cfg.rope_theta)

    @classmethod
    def from_target(cls, target, layers: int, head: int, frozen: int = 0) -> "Draft":
        """Target layers 0 .. frozen-1 (frozen), then frozen .. frozen+layers-1 (trainable)."""
        cfg = target.config
        d = cls(cfg, layers, head, frozen)
        with torch.no_grad():
            d.embed.copy_(target.embed)
            for mine, theirs in zip(list(d.frozen) + list(d.layers), target.layers):
                mine.ln1.copy_(theirs.ln1), mine.ln2.copy_(theirs.ln2)
                mine.qkv.copy_(theirs.qkv_w), mine.o.copy_(theirs.o_w)
                mine.gate_up.copy_(theirs.gate_up_w), mine.down.copy_(theirs.down_w)
            d.norm.copy_(target.norm)
            d.head.copy_(target.lm_head[:head])
        return d

    def hidden(self, ids):
        t = ids.shape[1]
        x = F.embedding(ids, self.embed)
        cos, sin = self.cos[:t], self.sin[:t]
        with torch.no_grad():  # no activations kept for the frozen layers
            for layer in self.frozen:
                x = layer(x, cos, sin)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return F.rms_norm(x, (x.shape[-1],), self.norm, self.cfg.rms_norm_eps)

    def logits(self, h):
        return F.linear(h, self.head)


# ------------------------------------------------------------------------------ data
def load_records(pattern: str) -> list:
    recs = []
    for f in sorted(glob.glob(str(DATA / pattern))):
        recs.extend(torch.load(f))
    return recs


def make_batches(recs: list, batch_tokens: int, rng: random.Random) -> list:
    """Lists of record indices, ~batch_tokens padded tokens each, similar lengths together."""
    order = list(range(len(recs)))
    rng.shuffle(order)
    batches = []
    for c in range(0, len(order), 256):
        chunk = sorted(order[c:c + 256], key=lambda i: len(recs[i]["prompt"]) + len(recs[i]["tokens"]))
        cur, longest = [], 0
        for i in chunk:
            n = len(recs[i]["prompt"]) + len(recs[i]["tokens"])
            if cur and max(longest, n) * (len(cur) + 1) > batch_tokens:
                batches.append(cur)
                cur, longest = [], 0
            cur.append(i)
            longest = max(longest, n)
        if cur:
            batches.append(cur)
    rng.shuffle(batches)
    return batches


def collate(recs: list, idx: list, head: int):
    """ids [b, T] (prompt + answer[:-1], right-padded), loss positions, soft targets, hard targets."""
    seqs = [torch.cat([recs[i]["prompt"], recs[i]["tokens"][:-1]]).long() for i in idx]
    T = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    rows, cols, top_ids, top_logp = [], [], [], []
    for b, (i, s) in enumerate(zip(idx, seqs)):
        ids[b, :len(s)] = s
        p, n = len(recs[i]["prompt"]), len(recs[i]["tokens"])
        rows.append(torch.full((n,), b))
        cols.append(torch.arange(p - 1, p - 1 + n))
        top_ids.append(recs[i]["top_ids"].long())
        top_logp.append(recs[i]["top_logp"].float())
    top_ids, top_logp = torch.cat(top_ids), torch.cat(top_logp)
    keep = top_ids < head
    w = torch.where(keep, top_logp.exp(), torch.zeros(()))
    mass = w.sum(-1, keepdim=True)
    soft = w / mass.clamp_min(1e-9)
    hard = torch.where(keep[:, 0], top_ids[:, 0], torch.full_like(top_ids[:, 0], -100))
    return ids, torch.cat(rows), torch.cat(cols), top_ids.clamp(max=head - 1), soft, hard


def loss_fn(model, batch):
    ids, rows, cols, top_ids, soft, hard = batch
    h = model.hidden(ids)[rows, cols]
    logp = torch.log_softmax(model.logits(h).float(), -1)
    soft_ce = -(soft * logp.gather(1, top_ids)).sum(-1).mean()
    hard_ce = F.nll_loss(logp, hard, ignore_index=-100)
    agree = ((logp.argmax(-1) == hard) & (hard >= 0)).float().sum() / hard.numel()
    return soft_ce + hard_ce, agree


@torch.no_grad()
def heldout_agreement(model, recs: list, head: int) -> dict:
    """Draft argmax == target greedy token, teacher-forced on the target's greedy held-out answers."""
    hit = total = covered = 0
    for c in range(0, len(recs), 8):
        idx = list(range(c, min(c + 8, len(recs))))
        ids, rows, cols, top_ids, soft, hard = collate(recs, idx, head)
        tgt = torch.cat([recs[i]["tokens"].long() for i in idx])
        pred = model.logits(model.hidden(ids)[rows, cols]).argmax(-1)
        hit += int((pred == tgt).sum())
        covered += int((tgt < head).sum())
        total += tgt.numel()
    return dict(agreement=hit / total, positions=total, head_coverage=covered / total)


# ----------------------------------------------------------------------------- train
def train(args) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ckpt_path = WORK / f"draft_ckpt{args.tag}.pt"
    from ssdcore.models import load_model
    target = load_model("smollm2", with_tokenizer=False).model
    model = Draft.from_target(target, args.layers, args.head, args.frozen)
    del target
    if args.init_from is not None:  # warm start from another run's weights; a wider head keeps its new rows
        init = torch.load(WORK / f"draft_ckpt{args.init_from}.pt")["model"]
        with torch.no_grad():
            for name, p in model.state_dict().items():
                src = init[name]
                if src.shape == p.shape:
                    p.copy_(src)
                else:  # the head: its first rows
                    p[:src.shape[0]].copy_(src[:p.shape[0]])
        print(f"initialised from draft_ckpt{args.init_from}.pt", flush=True)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() == 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=0.01),
                             dict(params=no_decay, weight_decay=0.0)],
                            lr=args.lr, betas=(0.9, 0.95))
    step, epoch, trained_tokens, minutes_before = 0, 0, 0, 0.0
    if args.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, epoch = ck["step"], ck["epoch"]
        trained_tokens, minutes_before = ck["trained_tokens"], ck["minutes"]
        print(f"resumed at step {step}, epoch {epoch}, {minutes_before:.1f} min", flush=True)
    heldout = load_records("heldout-*.pt")
    print(f"held-out: {len(heldout)} prompts", flush=True)
    t0 = time.time()
    first_step = step
    recs, batches, bi = [], [], 0

    def lr_at(s):
        if s < first_step + 30 and first_step == 0:
            return args.lr * (s + 1) / 30
        if args.steps:
            frac = min(1.0, (s - first_step) / args.steps)
        else:  # wall-clock schedule: the cosine ends when --minutes are up
            frac = min(1.0, (time.time() - t0) / run_s)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    def evaluate(tag):
        model.eval()
        ev = heldout_agreement(model, heldout, args.head)
        model.train()
        row = dict(tag=tag, step=step, epoch=epoch, teacher_tokens=sum(len(r["tokens"]) for r in recs),
                   prompts=len(recs), trained_tokens=trained_tokens,
                   minutes=round(minutes_before + (time.time() - t0) / 60, 2), **ev)
        print(json.dumps(row), flush=True)
        row.update(layers=args.layers, frozen=args.frozen, head=args.head)
        with open(WORK / f"curve{args.tag}.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def save():
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, epoch=epoch,
                        trained_tokens=trained_tokens, layers=args.layers, head=args.head, frozen=args.frozen,
                        minutes=minutes_before + (time.time() - t0) / 60), ckpt_path)

    model.train()
    run_s = 60 * args.minutes
    loss_avg = agree_avg = None
    while True:
        if bi >= len(batches):
            recs = load_records("train-*.pt")
            batches = make_batches(recs, args.batch_tokens, random.Random(f"{args.seed}-{epoch}"))
            bi = 0
            epoch += 1
            print(f"epoch {epoch}: {len(recs)} prompts, "
                  f"{sum(len(r['tokens']) for r in recs)} teacher tokens, {len(batches)} batches",
                  flush=True)
            if step == first_step:
                evaluate("start")
        batch = collate(recs, batches[bi], args.head)
        bi += 1
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss, agree = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        trained_tokens += int(batch[1].numel())
        loss_avg = float(loss.detach()) if loss_avg is None else 0.95 * loss_avg + 0.05 * float(loss.detach())
        agree_avg = float(agree) if agree_avg is None else 0.95 * agree_avg + 0.05 * float(agree)
        el = time.time() - t0
        if step % 20 == 0:
            print(f"step {step} loss {loss_avg:.3f} train-agree {agree_avg:.3f} lr {lr_at(step):.2e} "
                  f"{el / 60:.1f} min {trained_tokens / max(el, 1e-9):.0f} tok/s", flush=True)
        if step % args.eval_every == 0:
            evaluate("periodic")
            save()
        if (args.steps and step - first_step >= args.steps) or (not args.steps and el > run_s):
            break
    evaluate("final")
    save()


# ---------------------------------------------------------------------------- export
def export(args) -> None:
    """Write the shipped part of the draft (bf16 safetensors: layers, norm, head) and its config."""
    from safetensors.torch import save_file
    ck = torch.load(WORK / f"draft_ckpt{args.tag}.pt")  # --tag: a parallel run's checkpoint
    sd = ck["model"]
    out = {}
    frozen = ck.get("frozen", 0)  # the target's own layers 0 .. frozen-1: not shipped
    for i in range(ck["layers"]):
        p = f"model.layers.{frozen + i}."
        qkv = sd[f"layers.{i}.qkv"]
        q, k, v = qkv.split([576, 192, 192])
        g, u = sd[f"layers.{i}.gate_up"].chunk(2)
        out.update({p + "input_layernorm.weight": sd[f"layers.{i}.ln1"],
                    p + "post_attention_layernorm.weight": sd[f"layers.{i}.ln2"],
                    p + "self_attn.q_proj.weight": q, p + "self_attn.k_proj.weight": k,
                    p + "self_attn.v_proj.weight": v, p + "self_attn.o_proj.weight": sd[f"layers.{i}.o"],
                    p + "mlp.gate_proj.weight": g, p + "mlp.up_proj.weight": u,
                    p + "mlp.down_proj.weight": sd[f"layers.{i}.down"]})
    out["model.norm.weight"] = sd["norm"]
    out["lm_head.weight"] = sd["head"]
    ASSET.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in out.items()},
              str(ASSET / "draft.safetensors"), metadata={"format": "pt"})
    from ssdcore.models import gguf_to_hf_folder, smollm2
    config = json.loads((gguf_to_hf_folder(smollm2()) / "config.json").read_text())
    config.update(num_hidden_layers=frozen + ck["layers"], tie_word_embeddings=False, torch_dtype="float32",
                  ssdcore_head_vocab=ck["head"], ssdcore_target_layers=frozen,
                  ssdcore_speculation=SPECULATION)
    (ASSET / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print("wrote", ASSET, dict(layers=ck["layers"], frozen=frozen, head=ck["head"], steps=ck["step"],
                               trained_tokens=ck["trained_tokens"], minutes=round(ck["minutes"], 1)))


# ------------------------------------------------------------------------------ engine
def eval_engine(args) -> None:
    """Per-step decode cost (draft vs target) and engine acceptance on held-out prompts."""
    import statistics

    import ssdcore
    from ssdcore.models import load_model, smollm2_pair

    torch.set_num_threads(1)
    target_path, draft_path = smollm2_pair()
    heldout = load_records("heldout-*.pt")[:args.prompts]
    prompts = [r["prompt"].tolist() for r in heldout]
    report = dict(prompts=len(prompts), max_tokens=args.max_tokens)
    for name, path in (("target", target_path), ("draft", draft_path)):
        m = load_model(path).model
        m.allocate_kv(1, 256)
        m.prefill(0, prompts[0][:64])
        times = []
        for i in range(args.cost_steps):
            t = time.perf_counter()
            m.decode([0], [100 + i], [64 + i])
            times.append(time.perf_counter() - t)
        report[f"{name}_step_ms"] = round(1000 * statistics.median(times), 3)
        del m
    greedy = ssdcore.SamplingParams(temperature=0.0, max_tokens=args.max_tokens, ignore_eos=True)
    for mode in ("ar", "sd", "ssd"):
        with ssdcore.Engine(target=target_path, draft=None if mode == "ar" else draft_path, mode=mode,
                            K=args.K, max_batch=1, max_context=512) as engine:
            t = time.perf_counter()
            outs = [engine.generate([p], greedy)[0] for p in prompts]
            el = time.perf_counter() - t
            st = engine.stats()
        row = dict(tok_s=round(sum(len(o.token_ids) for o in outs) / el, 1))
        if mode != "ar":
            row.update(position_acceptance=[round(x, 3) for x in st["position_acceptance"]],
                       mean_accept_length=round(st["mean_accept_length"], 3),
                       hit_rate=round(st.get("hit_rate", 0.0), 3))
        report[mode] = row
        print(mode, json.dumps(row), flush=True)
    print(json.dumps(report), flush=True)
    with open(WORK / "engine_eval.jsonl", "a") as f:
        f.write(json.dumps(report) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=("train", "export", "eval-engine"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--head", type=int, default=8192)
    ap.add_argument("--frozen", type=int, default=0,
                    help="the target's first N layers, frozen, below the --layers trainable ones")
    ap.add_argument("--tag", default="", help="checkpoint and curve name suffix (parallel runs)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init-from", default=None, metavar="TAG",
                    help="start from draft_ckpt<TAG>.pt's weights (a wider --head keeps the target's rows)")
    ap.add_argument("--bf16", action="store_true",
                    help="bfloat16 autocast for the forward and backward (AMX: ~1.9x the float32 step rate "
                         "on this machine); the weights and AdamW state stay float32")
    ap.add_argument("--prompts", type=int, default=24, help="eval-engine: held-out prompts")
    ap.add_argument("--max-tokens", type=int, default=96, help="eval-engine: tokens per prompt")
    ap.add_argument("--K", type=int, default=4, help="eval-engine: draft length")
    ap.add_argument("--cost-steps", type=int, default=64, help="eval-engine: decode steps timed")
    args = ap.parse_args()
    {"train": train, "export": export, "eval-engine": eval_engine}[args.command](args)


if __name__ == "__main__":
    main()
