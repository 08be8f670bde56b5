"""``ssdcore bench``: SSD against SD, AR and the `transformers` baselines, side by side in one run.

Every contender (engine modes ar / sd / ssd with the same models, draft-free sd by prompt lookup
("sd ngram K=.."), `transformers` generate without and
with ``assistant_model``) decodes the same prompts with the same output length and sampling; the
contenders are interleaved (their order rotates every repetition) and each reports the median and
spread of its tokens/s over the repetitions (whole requests, prefill included). The engine modes also
report the median time to first token and decode tokens/s (after the first token) over all timed
requests, decode speed against the best sd's, accept length, cache hit rate and per-position
acceptance. Results go to a JSON file and a PNG plot (bench_plot.py).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch


@dataclass
class BenchSettings:
    target: Optional[str] = None
    draft: Optional[str] = None
    prompts: List[str] = field(default_factory=list)
    max_tokens: int = 64
    temperature: float = 0.0
    batch: int = 1
    repeats: int = 3
    sd_K: List[int] = field(default_factory=lambda: [4])
    ssd_K: List[int] = field(default_factory=lambda: [4])
    fan_out: List[object] = field(default_factory=lambda: [8])
    backups: List[str] = field(default_factory=lambda: ["auto"])
    ngram_K: List[int] = field(default_factory=list)  # draft-free sd (prompt lookup) rows
    response_format: Optional[dict] = None  # structured output: every engine row is constrained
    saguaro_c: Optional[float] = None  # None: the draft's recommendation (ssdcore_speculation), else 1
    hf: bool = True
    target_cores: Optional[List[int]] = None
    draft_cores: Optional[List[int]] = None
    target_device: str = "cpu"
    draft_device: str = "cpu"
    seed: int = 0


@dataclass
class Contender:
    name: str
    run: Callable[[List[str]], int]              # decodes the prompts, returns tokens generated
    stats: Callable[[], dict] = lambda: {}
    close: Callable[[], None] = lambda: None
    samples: List[float] = field(default_factory=list)
    ttft: List[float] = field(default_factory=list)          # per request, seconds (engine modes)
    decode_rates: List[float] = field(default_factory=list)  # per request, tokens/s after the first


def _engine_contender(name: str, s: BenchSettings, **kw) -> Contender:
    from .. import Engine, SamplingParams

    engine = Engine(s.target, s.draft, max_batch=max(1, s.batch), target_cores=s.target_cores,
                    draft_cores=s.draft_cores, target_device=s.target_device,
                    draft_device=s.draft_device, **kw)
    # constrained rows stop where the grammar ends (EOS), so they cannot ignore it
    constrained = s.response_format is not None
    sp = SamplingParams(temperature=s.temperature, max_tokens=s.max_tokens, ignore_eos=not constrained,
                        seed=s.seed, response_format=s.response_format)

    ttft: List[float] = []
    decode_rates: List[float] = []

    def run(prompts: List[str]) -> int:
        total = 0
        for i in range(0, len(prompts), s.batch):
            for out in engine.generate(prompts[i:i + s.batch], sp):
                total += len(out.token_ids)
                ttft.append(out.metrics.time_to_first_token)
                decode_rates.append(out.metrics.decode_tokens_per_s)
        return total

    return Contender(name, run, engine.stats, engine.close, ttft=ttft, decode_rates=decode_rates)


def _hf_contender(name: str, s: BenchSettings, assisted: bool) -> Contender:
    import transformers

    from ..models.bundled import bundled_pair

    transformers.utils.logging.set_verbosity_error()  # generate()'s deprecation notes, not results
    transformers.utils.logging.disable_progress_bar()
    from ..models.resolve import resolve_model_path

    # model names and .gguf files -> the HF folders ssdcore loads (a GGUF converted once, cached)
    target, draft = ((str(resolve_model_path(s.target)), str(resolve_model_path(s.draft)))
                     if s.target else tuple(str(p) for p in bundled_pair()))
    tok = transformers.AutoTokenizer.from_pretrained(target)
    load = lambda path, device: transformers.AutoModelForCausalLM.from_pretrained(  # noqa: E731
        path, dtype=torch.float32).eval().to(device)
    model = load(target, s.target_device)
    helper = load(draft, s.draft_device) if assisted else None
    sample = s.temperature > 0
    kw = dict(do_sample=sample, max_new_tokens=s.max_tokens, min_new_tokens=s.max_tokens,
              pad_token_id=tok.eos_token_id)
    if sample:
        kw.update(temperature=s.temperature, top_k=0, top_p=1.0)
    if helper is not None:
        kw["assistant_model"] = helper

    def run(prompts: List[str]) -> int:
        total = 0
        torch.manual_seed(s.seed)
        with torch.inference_mode():
            for p in prompts:  # assisted generation supports batch 1 only
                ids = torch.tensor([tok.encode(p, add_special_tokens=False)], device=s.target_device)
                total += model.generate(ids, **kw).shape[1] - ids.shape[1]
        return total

    return Contender(name, run)


def build_contenders(s: BenchSettings) -> List[Contender]:
    out = [_engine_contender("ar", s, mode="ar")]
    out += [_engine_contender(f"sd ngram K={k}", replace(s, draft="ngram"), mode="sd", K=k)
            for k in s.ngram_K]
    if s.draft == "ngram":  # no draft model: the prompt-lookup rows are the only speculative ones
        return out
    out += [_engine_contender(f"sd K={k}", s, mode="sd", K=k) for k in s.sd_K]
    for k in s.ssd_K:
        for f in s.fan_out:
            for b in s.backups:  # named by backup only when several are compared
                name = f"ssd K={k} F={f}" + (f" {b}" if len(s.backups) > 1 else "")
                out.append(_engine_contender(name, s, mode="ssd", K=k, fan_out=f, backup=b,
                                             saguaro_c=s.saguaro_c))
    if s.hf and s.batch == 1 and s.response_format is None:  # transformers has no grammar of its own
        out += [_hf_contender("hf generate", s, False), _hf_contender("hf assisted", s, True)]
    return out


def run_bench(s: BenchSettings, progress: Callable[[str], None] = lambda m: None) -> dict:
    torch.set_num_threads(1)
    contenders = build_contenders(s)
    try:
        for c in contenders:  # warm-up (not timed)
            c.run(s.prompts[:1])
            c.ttft.clear()
            c.decode_rates.clear()
        for rep in range(s.repeats):
            order = contenders[rep % len(contenders):] + contenders[:rep % len(contenders)]
            for c in order:
                progress(f"rep {rep + 1}/{s.repeats}: {c.name}")
                t0 = time.perf_counter()
                tokens = c.run(s.prompts)
                c.samples.append(tokens / (time.perf_counter() - t0))
        return summarize(s, contenders)
    finally:
        for c in contenders:
            c.close()


def summarize(s: BenchSettings, contenders: List[Contender]) -> dict:
    rows: Dict[str, dict] = {}
    for c in contenders:
        st = c.stats()
        rows[c.name] = dict(
            tokens_per_s=statistics.median(c.samples), min=min(c.samples), max=max(c.samples),
            samples=c.samples, mean_accept_length=st.get("mean_accept_length"),
            hit_rate=st.get("hit_rate"), position_acceptance=st.get("position_acceptance"),
            cache_hits=st.get("cache_hits"), cache_misses=st.get("cache_misses"),
            draft_hidden_fraction=st.get("draft_hidden_fraction"), backup_use=st.get("backup_use"),
            ttft_ms=1e3 * statistics.median(c.ttft) if c.ttft else None,
            decode_tokens_per_s=statistics.median(c.decode_rates) if c.decode_rates else None,
            **mask_cost(st))
    ar = rows["ar"]["tokens_per_s"]
    sd_best = max((r["tokens_per_s"] for n, r in rows.items() if n.startswith("sd K=")), default=None)
    sd_decode = max((r["decode_tokens_per_s"] or 0 for n, r in rows.items() if n.startswith("sd K=")), default=0)
    for r in rows.values():
        r["vs_ar"] = r["tokens_per_s"] / ar
        r["vs_sd"] = r["tokens_per_s"] / sd_best if sd_best else None
        r["decode_vs_sd"] = r["decode_tokens_per_s"] / sd_decode if sd_decode and r["decode_tokens_per_s"] else None
    settings = asdict(s)
    settings["prompts"] = len(s.prompts)
    return dict(settings=settings, machine=machine_info(), results=rows)


def mask_cost(stats: dict) -> dict:
    """Structured output's cost from an engine's phase times: the target's masking per verification
    round (ms) and as a share of the verification forward, and the draft's masking per round."""
    phases = stats.get("phases") or {}
    verify_s, rounds = (phases.get("target_verify") or (0.0, 0))[:2]
    target_s = (phases.get("target_mask") or (0.0, 0))[0]
    draft_s = (phases.get("draft_mask") or (0.0, 0))[0]
    if not target_s and not draft_s:
        return {}
    return dict(target_mask_ms_per_round=1e3 * target_s / rounds if rounds else None,
                mask_share_of_verify=target_s / verify_s if verify_s else None,
                draft_mask_ms_per_round=1e3 * draft_s / rounds if rounds else None)


def machine_info() -> dict:
    return dict(platform=platform.platform(), processor=platform.processor() or platform.machine(),
                cpus=os.cpu_count(), torch=torch.__version__, python=platform.python_version())


def format_table(result: dict) -> str:
    head = f"{'contender':<18} {'tok/s':>8} {'min..max':>15} {'vs ar':>6} {'vs sd':>6} " \
           f"{'ttft ms':>7} {'decode':>7} {'dec/sd':>6} " \
           f"{'accept':>6} {'hit':>5} {'hidden':>6}  per-position acceptance"
    lines = [head, "-" * len(head)]
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for name, r in result["results"].items():
        pos = " ".join(f"{a:.2f}" for a in (r["position_acceptance"] or []))
        lines.append(f"{name:<18} {r['tokens_per_s']:>8.1f} {r['min']:>7.1f}..{r['max']:<7.1f} "
                     f"{r['vs_ar']:>6.2f} {fmt(r['vs_sd'], '6.2f'):>6} "
                     f"{fmt(r['ttft_ms'], '7.1f'):>7} {fmt(r['decode_tokens_per_s'], '7.0f'):>7} "
                     f"{fmt(r['decode_vs_sd'], '6.2f'):>6} "
                     f"{fmt(r['mean_accept_length'], '6.2f'):>6} {fmt(r['hit_rate'], '5.2f'):>5} "
                     f"{fmt(r['draft_hidden_fraction'], '6.2f'):>6}  {pos}"
                     + (f"  mask {r['target_mask_ms_per_round']:.3f} ms/round = "
                        f"{100 * r['mask_share_of_verify']:.1f}% of verify"
                        if r.get("mask_share_of_verify") is not None else ""))
    return "\n".join(lines)


def write_outputs(result: dict, out_dir: str) -> tuple:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "bench.json"
    json_path.write_text(json.dumps(result, indent=2))
    from .bench_plot import plot

    png_path = out / "bench.png"
    plot(result, png_path)
    return json_path, png_path
