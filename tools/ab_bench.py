"""A/B benchmark of two source trees: `ssdcore bench` from each in turn, the order alternating every
round, medians per contender (and the paired per-round ratios). Both trees must hold a built
`ssdcore/_core*.so` in their python/ folder (e.g. a worktree of the older commit, built with the same
CMake flags). Keep the machine quiet while it runs: single bench runs on a small VM spread by +-10 %.

    python tools/ab_bench.py OUT_DIR NAME=PYTHONPATH NAME=PYTHONPATH [--rounds N] [bench args...]
    python tools/ab_bench.py /tmp/ab base=/work/old/python main=$PWD/python --rounds 12 \\
        --num-prompts 6 --max-tokens 96 --sd-K 4 --ssd-K 4 --ssd-fan-out 5 --ssd-backup auto --no-hf \\
        --temperature 0 1 --target-cores 0 --draft-cores 1

Writes OUT_DIR/NAME-ROUND/ (each run's bench.json) and OUT_DIR/summary.txt.
"""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    trees = [a.split("=", 1) for a in sys.argv[2:4]]
    rest = sys.argv[4:]
    rounds = 3
    if rest[:1] == ["--rounds"]:
        rounds, rest = int(rest[1]), rest[2:]
    results = {name: [] for name, _ in trees}
    for r in range(rounds):
        for name, path in (trees if r % 2 == 0 else trees[::-1]):
            d = out / f"{name}-{r}"
            subprocess.run([sys.executable, "-m", "ssdcore", "bench", "--out", str(d)] + rest,
                           env=dict(os.environ, PYTHONPATH=path), check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            results[name].append([json.loads(p.read_text()) for p in sorted(d.rglob("bench.json"))])
            print(f"round {r} {name} done", flush=True)
    (a, _), (b, _) = trees
    lines = []
    for run_i, first in enumerate(results[a][0]):
        s = first["settings"]
        for contender in first["results"]:
            va = [rep[run_i]["results"][contender]["tokens_per_s"] for rep in results[a]]
            if contender not in results[b][0][run_i]["results"]:
                continue
            vb = [rep[run_i]["results"][contender]["tokens_per_s"] for rep in results[b]]
            paired = statistics.median(y / x for x, y in zip(va, vb))
            lines.append(f"T={s['temperature']} B={s['batch']} {contender:24s} {a} {statistics.median(va):8.1f}  "
                         f"{b} {statistics.median(vb):8.1f}  ratio {statistics.median(vb) / statistics.median(va):.3f}"
                         f"  paired {paired:.3f}")
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
