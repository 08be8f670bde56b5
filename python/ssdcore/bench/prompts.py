"""Benchmark and evaluation prompts: held-out CPython standard library code, cut at function or class
boundaries; chat questions rendered with a model's chat template; or a JSONL file of prompts.

The held-out split is the bundled pair's validation split (tools/train_pair.py uses the same rule): a
stdlib ``.py`` file (no tests, no site-packages) is held out when crc32 of its path relative to the
stdlib root is 0 modulo 20. A prompt is up to ``context_lines`` lines ending with a ``def``/``class``
header line, so the model continues a real body. Pure functions; any thread.
"""
from __future__ import annotations

import json
import re
import sysconfig
import zlib
from pathlib import Path
from typing import List

EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})
VAL_MODULUS = 20
_HEADER = re.compile(r"^\s*(async\s+def|def|class)\s+\w+.*:\s*$")


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def held_out_files(root: Path | None = None) -> List[Path]:
    root = root or stdlib_root()
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if EXCLUDED_DIRS.intersection(rel.parts[:-1]) or not path.is_file():
            continue
        if zlib.crc32(rel.as_posix().encode()) % VAL_MODULUS == 0:
            out.append(path)
    return out


def stdlib_prompts(count: int, context_lines: int = 12, per_file: int = 2) -> List[str]:
    """``count`` prompts from held-out stdlib files (deterministic)."""
    prompts: List[str] = []
    for path in held_out_files():
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        taken = 0
        for i, line in enumerate(lines):
            if i >= 4 and _HEADER.match(line) and taken < per_file:
                prompts.append("".join(lines[max(0, i + 1 - context_lines):i + 1]))
                taken += 1
        if len(prompts) >= count:
            break
    return prompts[:count]


# Chat questions for instruct models (ssdcore bench --pair smollm2). Written for the benchmark; the
# SmolLM2 draft's training prompts come from other templates (tools/smollm2_prompts.py).
CHAT_QUESTIONS = (
    "What is speculative decoding? Explain it in a short paragraph.",
    "Give three tips for staying focused while studying.",
    "Explain the difference between a list and a tuple in Python.",
    "Why is the sky blue? Answer for a ten-year-old.",
    "Write a short poem about autumn leaves.",
    "How does a refrigerator keep food cold?",
    "Summarize the plot of Romeo and Juliet in three sentences.",
    "What are the benefits of regular exercise?",
    "Write a Python function that checks whether a string is a palindrome.",
    "Describe how a bill becomes a law in simple terms.",
    "What should I pack for a weekend hiking trip?",
    "Explain what a hash table is and when to use one.",
)


def chat_prompts(count: int, tokenizer) -> List[str]:
    """``count`` chat questions (cycled), each rendered as prompt text by ``tokenizer``'s chat template
    with the generation prompt appended: the text to continue, as `ssdcore generate --chat` sends it."""
    return [tokenizer.apply_chat_template([{"role": "user", "content": CHAT_QUESTIONS[i % len(CHAT_QUESTIONS)]}],
                                          add_generation_prompt=True, tokenize=False)
            for i in range(count)]


def jsonl_prompts(path: str) -> List[str]:
    """Prompts from a JSONL file: one JSON object per line with a "prompt" string (or a bare string)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"prompt file {path!r} does not exist")
    prompts = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: malformed JSON ({e.msg})") from None
        text = obj.get("prompt") if isinstance(obj, dict) else obj
        if not isinstance(text, str) or not text:
            raise ValueError(f"{path}:{n}: expected a non-empty string or an object with a \"prompt\" string")
        prompts.append(text)
    if not prompts:
        raise ValueError(f"prompt file {path!r} has no prompts")
    return prompts
