#!/usr/bin/env python3
"""Train the bundled target/draft model pair on the CPython standard library sources.

Stages (all run by default, in order):
  tokenizer  byte-level BPE on the training split, saved as HF tokenizer files
  data       tokenize the train/validation splits into uint16 token arrays (work dir)
  target     train the Llama-architecture target with cross-entropy
  draft      distil the draft from the finished (bf16-saved) target: KL + CE

Everything is seeded; batches are drawn from a generator seeded by (seed, step), so a run
resumed with --resume from a periodic checkpoint continues exactly where it stopped.

Documented command (see python/ssdcore/assets/bundled/README.md):
  python tools/train_pair.py --threads 2
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import sysconfig
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "python" / "ssdcore" / "assets" / "bundled"
DEFAULT_WORK = REPO / "tools" / "_work" / "train_pair"
EXCLUDED_DIRS = {"test", "tests", "idle_test", "idle_tests", "site-packages", "__pycache__"}
EOS = "<|endoftext|>"
SPECIALS = [EOS, "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
VAL_MODULUS = 20  # about 1 file in 20 goes to validation

MODEL_SHAPES = {
    "target": dict(num_hidden_layers=6, hidden_size=384, intermediate_size=1024,
                   num_attention_heads=6, num_key_value_heads=2),
    "draft": dict(num_hidden_layers=2, hidden_size=128, intermediate_size=384,
                  num_attention_heads=2, num_key_value_heads=1),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- corpus

def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def corpus_files(root: Path | None = None) -> dict[str, list[Path]]:
    """Stdlib .py files (no tests, no site-packages), split by file into train/validation."""
    root = root or stdlib_root()
    split: dict[str, list[Path]] = {"train": [], "validation": []}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if EXCLUDED_DIRS.intersection(rel.parts[:-1]) or not path.is_file():
            continue
        name = "validation" if zlib.crc32(rel.as_posix().encode()) % VAL_MODULUS == 0 else "train"
        split[name].append(path)
    return split


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


# ----------------------------------------------------------------------------- tokenizer

def train_tokenizer(files: list[Path], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator((read_text(p) for p in files), trainer=trainer)
    return tok


def save_tokenizer(tok, dirs: list[Path]) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=None, pad_token=EOS,
        model_max_length=1024, clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    for d in dirs:
        fast.save_pretrained(str(d))
        cfg_path = d / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text())
        # Portable across transformers 4.x/5.x: name the generic fast class, inline the template.
        cfg.update(tokenizer_class="PreTrainedTokenizerFast", chat_template=CHAT_TEMPLATE,
                   add_bos_token=False, add_eos_token=False)
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def tokenize_split(tok, files: list[Path], eos_id: int) -> np.ndarray:
    ids: list[int] = []
    for path in files:
        ids.extend(tok(read_text(path), add_special_tokens=False)["input_ids"])
        ids.append(eos_id)
    return np.asarray(ids, dtype=np.uint16)


# ----------------------------------------------------------------------------- models

def model_config(kind: str, vocab_size: int, eos_id: int):
    from transformers import LlamaConfig

    shape = MODEL_SHAPES[kind]
    return LlamaConfig(
        vocab_size=vocab_size, max_position_embeddings=1024, tie_word_embeddings=True,
        head_dim=shape["hidden_size"] // shape["num_attention_heads"], rope_theta=10000.0,
        rms_norm_eps=1e-5, bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id,
        attn_implementation="sdpa", **shape,
    )


def new_model(kind: str, vocab_size: int, eos_id: int, seed: int):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(model_config(kind, vocab_size, eos_id))


def save_model(model, out_dir: Path) -> None:
    from transformers import GenerationConfig

    out_dir.mkdir(parents=True, exist_ok=True)
    bf16 = model.to(torch.bfloat16)
    bf16.config.dtype = torch.bfloat16
    bf16.save_pretrained(str(out_dir), safe_serialization=True)
    cfg = bf16.config
    GenerationConfig(bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id,
                     pad_token_id=cfg.pad_token_id).save_pretrained(str(out_dir))
    model.to(torch.float32)


def load_fp32(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- training

def get_batch(data: np.ndarray, step: int, seed: int, batch: int, seq: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, len(data) - seq - 1, (batch,), generator=gen).tolist()
    return torch.stack([torch.from_numpy(data[s:s + seq + 1].astype(np.int64)) for s in starts])


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac))))


def make_optimizer(model, lr: float):
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    rest = [p for n, p in model.named_parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


def distil_loss(student_logits, teacher_logits, targets, alpha: float):
    logq = F.log_softmax(student_logits.float(), dim=-1)
    logp = F.log_softmax(teacher_logits.float(), dim=-1)
    kl = (logp.exp() * (logp - logq)).sum(-1).mean()
    ce = F.nll_loss(logq.flatten(0, 1), targets.flatten())
    return alpha * kl + (1 - alpha) * ce, ce


def train_step(model, teacher, opt, x: torch.Tensor, kl_weight: float):
    """One optimiser step on token rows x: cross-entropy, or distillation when a teacher is given."""
    logits = model(input_ids=x[:, :-1]).logits
    if teacher is None:
        loss = ce = F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())
    else:
        with torch.no_grad():
            t_logits = teacher(input_ids=x[:, :-1]).logits
        loss, ce = distil_loss(logits, t_logits, x[:, 1:], kl_weight)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss, ce


@torch.no_grad()
def eval_loss(model, data: np.ndarray, seq: int, max_tokens: int, batch: int = 8) -> float:
    model.eval()
    n_seq = min(max_tokens, len(data) - 1) // seq
    total, count = 0.0, 0
    for i in range(0, n_seq, batch):
        rows = [torch.from_numpy(data[j * seq:j * seq + seq + 1].astype(np.int64))
                for j in range(i, min(i + batch, n_seq))]
        x = torch.stack(rows)
        logits = model(input_ids=x[:, :-1]).logits
        total += F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten(), reduction="sum").item()
        count += x[:, 1:].numel()
    model.train()
    return total / max(1, count)


def train_stage(kind: str, args, data: dict[str, np.ndarray], vocab: int, eos_id: int, out_dir: Path):
    seed = args.seed + (0 if kind == "target" else 1)
    model = new_model(kind, vocab, eos_id, seed)
    teacher = load_fp32(out_dir / "target") if kind == "draft" else None
    tokens = args.target_tokens if kind == "target" else args.draft_tokens
    peak = args.target_lr if kind == "target" else args.draft_lr
    per_step = args.batch * args.seq
    total = max(1, tokens // per_step)
    opt = make_optimizer(model, peak)
    ckpt = Path(args.work) / f"{kind}_ckpt.pt"
    step = 0
    if args.resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = state["step"]
        log(f"{kind}: resumed from {ckpt} at step {step}")
    log(f"{kind}: {n_params(model) / 1e6:.2f}M params, {total} steps x {per_step} tokens")
    model.train()
    t0, done0, ema = time.time(), step, None
    while step < total:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, peak, args.warmup)
        x = get_batch(data["train"], step, seed, args.batch, args.seq)
        loss, ce = train_step(model, teacher, opt, x, args.kl_weight)
        step += 1
        ema = ce.item() if ema is None else 0.95 * ema + 0.05 * ce.item()
        if step % args.log_every == 0 or step == total:
            rate = (step - done0) * per_step / max(1e-9, time.time() - t0)
            eta = (total - step) * per_step / max(1e-9, rate)
            log(f"{kind} step {step}/{total} loss {loss.item():.4f} ce(ema) {ema:.4f} "
                f"lr {opt.param_groups[0]['lr']:.2e} {rate:.0f} tok/s ETA {eta / 60:.1f} min")
        if step % args.ckpt_every == 0 and step < total:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}, ckpt)
            log(f"{kind}: checkpoint at step {step}")
    save_model(model, out_dir / kind)
    saved = load_fp32(out_dir / kind)
    val = eval_loss(saved, data["validation"], args.seq, args.val_tokens)
    log(f"{kind}: final validation loss {val:.4f} (bf16 weights, fp32 compute, "
        f"{min(args.val_tokens, len(data['validation']))} tokens)")
    return val


# ----------------------------------------------------------------------------- driver

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(DEFAULT_OUT), help="writes <out>/target and <out>/draft")
    p.add_argument("--work", default=str(DEFAULT_WORK), help="token arrays and checkpoints")
    p.add_argument("--stages", default="tokenizer,data,target,draft")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vocab-size", type=int, default=6144)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--target-tokens", type=int, default=1_200_000)
    p.add_argument("--draft-tokens", type=int, default=600_000)
    p.add_argument("--target-lr", type=float, default=2e-3)
    p.add_argument("--draft-lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--kl-weight", type=float, default=0.8, help="draft loss = w*KL + (1-w)*CE")
    p.add_argument("--val-tokens", type=int, default=131_072)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--ckpt-every", type=int, default=50)
    p.add_argument("--resume", action="store_true", help="continue from the work-dir checkpoints")
    p.add_argument("--tiny", action="store_true", help="smoke test: tiny models, few steps")
    return p.parse_args(argv)


def apply_tiny(args) -> None:
    MODEL_SHAPES["target"].update(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                                  num_attention_heads=2, num_key_value_heads=1)
    MODEL_SHAPES["draft"].update(hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    args.vocab_size, args.target_tokens, args.draft_tokens = 1024, 20_000, 20_000
    args.log_every, args.ckpt_every, args.val_tokens = 5, 5, 8192


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.tiny:
        apply_tiny(args)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("RAYON_NUM_THREADS", str(args.threads))
    out, work = Path(args.out), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    stages = args.stages.split(",")
    files = corpus_files()
    log(f"corpus {stdlib_root()}: {len(files['train'])} train / {len(files['validation'])} validation files")
    start = time.time()
    if "tokenizer" in stages:
        tok = train_tokenizer(files["train"], args.vocab_size)
        save_tokenizer(tok, [out / "target", out / "draft"])
        log(f"tokenizer: {tok.get_vocab_size()} tokens ({time.time() - start:.0f}s)")
    tok = load_tokenizer(out / "target")
    eos_id, vocab = tok.convert_tokens_to_ids(EOS), len(tok)
    if "data" in stages:
        for name in ("train", "validation"):
            np.save(work / f"{name}.npy", tokenize_split(tok, files[name], eos_id))
    data = {name: np.load(work / f"{name}.npy") for name in ("train", "validation")}
    log(f"data: {len(data['train'])} train / {len(data['validation'])} validation tokens")
    results = {}
    for kind in ("target", "draft"):
        if kind in stages:
            t0 = time.time()
            results[kind] = {"val_loss": train_stage(kind, args, data, vocab, eos_id, out),
                             "seconds": round(time.time() - t0, 1)}
    log(f"done in {(time.time() - start) / 60:.1f} min: {json.dumps(results)}")
    (work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
