"""PNG plot of a ``ssdcore bench`` result: tokens/s per contender (median with min..max), and the
cache hit rate and acceptance per position for the engine modes. Uses matplotlib's Agg backend, from
the ``bench`` extra: without it :func:`require_matplotlib` and :func:`plot` raise RuntimeError naming
the install command."""
from __future__ import annotations

from pathlib import Path


def require_matplotlib() -> None:
    """RuntimeError with the install command when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeError("the bench plot needs matplotlib (the bench extra): "
                           "pip install 'ssdcore[bench]'") from None


def plot(result: dict, path: Path) -> None:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["results"]
    names = list(rows)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    med = [rows[n]["tokens_per_s"] for n in names]
    lo = [m - rows[n]["min"] for m, n in zip(med, names)]
    hi = [rows[n]["max"] - m for m, n in zip(med, names)]
    colors = ["tab:red" if n.startswith("ssd") else "tab:blue" if n.startswith(("sd", "ar"))
              else "tab:gray" for n in names]
    ax1.bar(range(len(names)), med, yerr=[lo, hi], color=colors, capsize=3)
    ax1.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax1.set_ylabel("tokens/s (median, min..max)")
    s = result["settings"]
    ax1.set_title(f"temperature {s['temperature']}, batch {s['batch']}, {s['max_tokens']} tokens")
    for n in names:
        r = rows[n]
        if r.get("position_acceptance"):
            ax2.plot(range(1, len(r["position_acceptance"]) + 1), r["position_acceptance"],
                     marker="o", label=f"{n}: acceptance")
        hits, misses = r.get("cache_hits"), r.get("cache_misses")
        if hits and sum(hits) + sum(misses) > 0:
            rate = [h / (h + m) if h + m else 0.0 for h, m in zip(hits, misses)]
            ax2.plot(range(len(rate)), rate, marker="s", linestyle="--", label=f"{n}: hit rate at k")
    ax2.set_xlabel("position i (acceptance) / accepted k (hit rate)")
    ax2.set_ylim(0, 1.05)
    ax2.legend(fontsize=7)
    ax2.set_title("per-position acceptance and cache hit rate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
