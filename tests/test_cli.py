"""The ``ssdcore`` command line: generate on the bundled pair, a tiny benchmark run, and bad input.

Each case runs the CLI in a subprocess (``python -m ssdcore.cli``), as a user would, with the network
unused (the bundled pair is local). Bad input must give one ``ssdcore: error: ...`` line (or argparse's
usage error), a non-zero exit and no traceback.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

TIMEOUT = 300


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([sys.executable, "-m", "ssdcore.cli", *args], text=True, capture_output=True,
                          timeout=TIMEOUT, env=env, **feed)


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    error_lines = [ln for ln in lines if "error:" in ln]
    assert len(error_lines) == 1, proc.stderr
    for needle in needles:
        assert needle in error_lines[0], proc.stderr


def test_generate_streams_a_continuation_with_stats():
    proc = run_cli("generate", "def fibonacci(n):", "--max-tokens", "12", "--stats")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("def fibonacci(n):")
    assert len(proc.stdout) > len("def fibonacci(n):\n")
    assert "tok/s" in proc.stderr and "mean accept length" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_generate_reads_the_prompt_from_stdin_and_file(tmp_path: Path):
    greedy = ("--mode", "ar", "--max-tokens", "6", "--temperature", "0")
    from_arg = run_cli("generate", "class Stack:", *greedy)
    from_stdin = run_cli("generate", *greedy, stdin="class Stack:")
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("class Stack:", encoding="utf-8")
    from_file = run_cli("generate", "--file", str(prompt_file), *greedy)
    for proc in (from_arg, from_stdin, from_file):
        assert proc.returncode == 0, proc.stderr
    assert from_arg.stdout == from_stdin.stdout == from_file.stdout


def test_bench_writes_json_and_png(tmp_path: Path):
    out = tmp_path / "bench"
    proc = run_cli("bench", "--no-hf", "--num-prompts", "1", "--max-tokens", "6", "--repeats", "1",
                   "--temperature", "0", "--sd-K", "2", "--ssd-K", "2", "--ssd-fan-out", "2",
                   "--ngram-K", "3", "--code-edit", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "bench.json").read_text())
    names = list(result["results"])
    assert names[0] == "ar" and any(n.startswith("sd") for n in names) and any(n.startswith("ssd") for n in names)
    assert "sd ngram K=3" in names and result["results"]["sd ngram K=3"]["backup_use"]["ngram"] > 0
    for row in result["results"].values():  # per-request metrics of the timed runs
        assert row["ttft_ms"] > 0 and row["decode_tokens_per_s"] > 0 and row["decode_vs_sd"] > 0
    assert (out / "bench.png").stat().st_size > 1000
    assert "vs ar" in proc.stdout and "ttft ms" in proc.stdout


def test_bench_json_rows_are_constrained_and_report_the_masking_cost(tmp_path: Path):
    out = tmp_path / "bench"
    proc = run_cli("bench", "--no-hf", "--num-prompts", "1", "--max-tokens", "12", "--repeats", "1",
                   "--temperature", "0", "--sd-K", "2", "--ssd-K", "2", "--ssd-fan-out", "2",
                   "--ngram-K", "2", "--json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "bench.json").read_text())
    assert result["settings"]["response_format"]["type"] == "json_schema"
    for name, row in result["results"].items():  # every engine row masked its target rows
        assert row["target_mask_ms_per_round"] > 0 and 0 < row["mask_share_of_verify"], name
    assert "% of verify" in proc.stdout


def test_generate_draft_free_ngram_is_sd_and_refuses_ssd():
    greedy = ("--max-tokens", "8", "--temperature", "0")
    ar = run_cli("generate", "def f(x):\n    return x\n\n\ndef g(x):\n", "--mode", "ar", *greedy)
    lookup = run_cli("generate", "def f(x):\n    return x\n\n\ndef g(x):\n", "--draft", "ngram", "--stats",
                     *greedy)
    assert lookup.returncode == 0 and ar.returncode == 0, lookup.stderr + ar.stderr
    assert lookup.stdout == ar.stdout and "[sd]" in lookup.stderr
    assert_clean_error(run_cli("generate", "x", "--draft", "ngram", "--mode", "ssd"), "ngram", "allowed")
    strict = run_cli("generate", "def f(x):\n    return x\n\n\ndef g(x):\n", "--draft", "ngram",
                     "--ngram-n", "4", "--ngram-min-n", "2", *greedy)
    assert strict.returncode == 0 and strict.stdout == ar.stdout, strict.stderr
    assert_clean_error(run_cli("generate", "x", "--draft", "ngram", "--ngram-n", "2", "--ngram-min-n", "3"),
                       "ngram_min_n", "3")


def test_missing_prompt_file():
    assert_clean_error(run_cli("generate", "--file", "/nonexistent/prompt.txt"), "/nonexistent/prompt.txt")


def test_malformed_jsonl_names_the_line(tmp_path: Path):
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "def f():"}\n{"prompt": \n', encoding="utf-8")
    assert_clean_error(run_cli("bench", "--prompts", str(bad), "--no-hf"), f"{bad}:2")


def test_unknown_model_path():
    assert_clean_error(run_cli("generate", "x", "--mode", "ar", "--target", "/nonexistent/model"),
                       "/nonexistent/model")
    assert_clean_error(run_cli("generate", "x", "--draft", "/nonexistent/draft"), "/nonexistent/draft")


@pytest.mark.parametrize("args, needle", [
    (("generate", "x", "--K", "0"), "--K"),
    (("generate", "x", "--temperature", "-1"), "temperature"),
    (("generate", "x", "--max-tokens", "abc"), "--max-tokens"),
    (("generate", "x", "--top-p", "1.5"), "top_p"),
    (("bench", "--repeats", "0"), "--repeats"),
])
def test_invalid_numbers(args, needle):
    assert_clean_error(run_cli(*args), needle)


@pytest.mark.parametrize("args, needles", [
    (("generate", "x", "--regex", "a(b"), ("--regex:", "unclosed group")),
    (("generate", "x", "--json-schema", '{"type": "foo"}'), ("--json-schema:", "Invalid type: foo")),
    (("generate", "x", "--json-schema", "/nonexistent/schema.json"), ("/nonexistent/schema.json",)),
    (("generate", "x", "--grammar", "/nonexistent/g.lark"), ("--grammar", "/nonexistent/g.lark")),
    (("generate", "x", "--regex", "a", "--json-object"), ("not allowed with",)),
])
def test_invalid_constraints(args, needles):
    pytest.importorskip("llguidance")
    assert_clean_error(run_cli(*args), *needles)


@pytest.mark.parametrize("args,needle", [
    (["serve", "--target-cores", "999", "--draft-cores", "998"], "target_cores = [999]"),
    (["generate", "x", "--target-cores", "0", "--draft-cores", "998"], "draft_cores = [998]"),
    (["serve", "--max-batch", "1000000"], "max_batch = 1000000 is invalid: allowed 1..4096"),
])
def test_unusable_engine_settings_fail_before_serving(args, needle):
    """Cores the process may not use, or an absurd batch, end the command at start-up with one error
    line: no server that answers /health and hangs every completion."""
    if args[0] == "serve":
        with socket.socket() as s:  # a port free now (serve binds it before loading the models)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        args = [*args, "--port", str(port)]
    assert_clean_error(run_cli(*args), needle, "allowed")


@pytest.mark.parametrize("command", ["generate", "bench", "serve"])
def test_pair_names_both_models_and_target_or_draft_override_it(command):
    from ssdcore.cli import apply_pair, build_parser

    def parsed(*extra):
        args = build_parser().parse_args([command, *extra])
        apply_pair(args)
        return args.target, args.draft

    assert parsed() == (None, None)                       # the bundled pair
    assert parsed("--pair", "bundled") == (None, None)
    assert parsed("--pair", "smollm2") == ("smollm2", "smollm2-draft")
    assert parsed("--pair", "smollm2", "--draft", "/d") == ("smollm2", "/d")
    assert parsed("--pair", "smollm2", "--draft", "ngram") == ("smollm2", "ngram")  # draft-free
    with pytest.raises(SystemExit):
        parsed("--pair", "llama")


@pytest.mark.parametrize("command", ["generate", "serve"])
def test_mode_defaults_to_sd_with_draft_ngram(command):
    from ssdcore.cli import apply_pair, build_parser

    def mode(*extra):
        args = build_parser().parse_args([command, *extra])
        apply_pair(args)
        return args.mode

    assert mode() == "ssd" and mode("--draft", "ngram") == "sd"
    assert mode("--draft", "ngram", "--mode", "ar") == "ar" and mode("--mode", "sd") == "sd"


@pytest.mark.parametrize("command", ["generate", "bench", "serve"])
def test_speculation_flags_left_out_are_the_drafts_to_choose(command):
    """--K, --fan-out and --saguaro-c default to None: the Engine then takes the draft's recommended
    settings (ssdcore_speculation) or its own defaults."""
    from ssdcore.cli import build_parser

    extra = ["x"] if command == "generate" else []
    args = build_parser().parse_args([command, *extra])
    assert (args.K, args.fan_out, args.saguaro_c) == (None, None, None)
    args = build_parser().parse_args([command, *extra, "--K", "3", "--fan-out", "4,2,1,1",
                                      "--saguaro-c", "0.5"])
    assert (args.K, args.fan_out, args.saguaro_c) == (3, [4, 2, 1, 1], 0.5)
