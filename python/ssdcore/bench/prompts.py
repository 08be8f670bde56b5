"""Benchmark and evaluation prompts: held-out CPython standard library code, cut at function or class
boundaries; chat questions rendered with a model's chat template; code-editing prompts (a held-out
function and a request to rewrite it, so most of the output copies the input: where prompt lookup
speculation shines); or a JSONL file of prompts.

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


# Requests for JSON (structured-output rows of an instruct model), with the schema their answers get.
JSON_REQUESTS = (
    "Describe the book '{}' as JSON: title, author, year and a one-sentence summary.",
    "Give the city '{}' as JSON: name, country, population and two landmarks.",
)
JSON_SUBJECTS = ("Moby-Dick", "Paris", "Pride and Prejudice", "Tokyo", "Dracula", "Cairo", "Emma", "Lima")
JSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "details": {"type": "array", "items": {"type": "string"},
                                                           "maxItems": 4}},
    "required": ["name", "details"],
}


def json_prompts(count: int, tokenizer) -> List[str]:
    """``count`` requests for JSON in ``tokenizer``'s chat template (the bench's structured-output
    prompts for instruct models; JSON_SCHEMA is the schema their rows use by default)."""
    return [tokenizer.apply_chat_template(
        [{"role": "user", "content": JSON_REQUESTS[i % len(JSON_REQUESTS)].format(JSON_SUBJECTS[i % len(JSON_SUBJECTS)])}],
        add_generation_prompt=True, tokenize=False) for i in range(count)]


_DEF = re.compile(r"^(\s*)def\s+(\w+)(.*)$")

# Edits for instruct models (chat template): each keeps most of the function, so the answer copies it.
CODE_EDITS = (
    "Rename the function `{name}` to `{name}_v2` and keep everything else exactly the same.",
    "Add type hints to the signature of this function; keep the body unchanged.",
    "Add a short comment above every return statement; keep the code itself unchanged.",
    "Rewrite this function with its docstring removed; keep the code unchanged.",
)


def held_out_functions(count: int, min_lines: int = 6, max_lines: int = 24) -> List[tuple]:
    """``count`` (name, source) pairs: whole functions of min_lines..max_lines lines from held-out
    stdlib files, dedented (deterministic; one per file)."""
    import textwrap

    out: List[tuple] = []
    for path in held_out_files():
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        for i, line in enumerate(lines):
            m = _DEF.match(line)
            if not m or m.group(2).startswith("__") or not line.rstrip().endswith(":"):
                continue
            indent, end = len(m.group(1)), i + 1
            while end < len(lines) and (not lines[end].strip() or
                                        len(lines[end]) - len(lines[end].lstrip()) > indent):
                end += 1
            while end > i + 1 and not lines[end - 1].strip():
                end -= 1
            if min_lines <= end - i <= max_lines:
                out.append((m.group(2), textwrap.dedent("".join(lines[i:end]))))
                break
        if len(out) >= count:
            break
    return out[:count]


def code_edit_prompts(count: int, tokenizer=None) -> List[str]:
    """``count`` code-editing prompts over held-out stdlib functions. With a chat ``tokenizer`` (an
    instruct model): an edit request (CODE_EDITS, cycled) and the function, in its chat template.
    Without (the bundled base code model): the function, then the header of its renamed copy, so the
    continuation is the body again."""
    prompts = []
    for j, (name, src) in enumerate(held_out_functions(count)):
        if tokenizer is None:
            header, _, _ = src.partition("\n")
            copy = header.replace(f"def {name}", f"def {name}_v2", 1)
            prompts.append(f"{src}\n\n# {name}_v2: the same function under a new name.\n{copy}\n")
            continue
        ask = CODE_EDITS[j % len(CODE_EDITS)].format(name=name)
        prompts.append(tokenizer.apply_chat_template(
            [{"role": "user", "content": f"{ask}\n\n```python\n{src}```"}],
            add_generation_prompt=True, tokenize=False))
    return prompts


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
