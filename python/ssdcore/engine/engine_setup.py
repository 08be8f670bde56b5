"""Engine set-up: turn user arguments into an EngineConfig and two ready ModelRunners.

Resolves ``fan_out`` (an int budget, an explicit per-position list, or "geometric"), loads the target
and draft (paths, hub ids, or already-loaded ``LoadedModel`` objects; the bundled pair by default;
``"ngram"``: no draft model, draft-free sd by prompt lookup),
checks that their tokenizers agree, reconciles their vocabularies and sizes the KV caches (context
lanes for both, plus tree-branch scratch for the draft in ssd mode). Called once per Engine.

Speculation settings the caller leaves unset (``None``) come from the draft checkpoint's
``ssdcore_speculation`` when it has one (:func:`apply_draft_speculation`), else from
:data:`DEFAULT_SPECULATION`.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Optional


from .engine_config import EngineConfig
from .memory_budget import check_kv_budget
from .model_runner import ModelRunner

DEFAULT_SPECULATION = {"K": 4, "fan_out": 8, "saguaro_c": 1.0}  # without a draft's recommendation


@dataclass
class EngineSetup:
    config: EngineConfig
    target: Any               # LoadedModel
    draft: Any                # LoadedModel or None
    target_runner: ModelRunner
    draft_runner: Optional[ModelRunner]
    tokenizer: Any
    eos_ids: tuple


# How long a worker polls for the other before parking when each has cores of its own: longer than the
# draft's idle time in a round (the rest of the verification) and the target's wait for a reply.
PINNED_SPIN_WAIT_US = 3000


def default_spin_wait_us(target_cores, draft_cores) -> int:
    """spin_wait_us when the caller does not set it: PINNED_SPIN_WAIT_US when the target and the draft
    are pinned to disjoint cores (polling then burns only a core that would idle), else 0 (park)."""
    if not target_cores or not draft_cores:
        return 0
    try:
        disjoint = not set(target_cores) & set(draft_cores)
    except TypeError:  # not iterables of core ids: the runners report that themselves
        return 0
    return PINNED_SPIN_WAIT_US if disjoint else 0


MAX_THREADS = 1024

# draft="ngram": no draft model; sd proposes by prompt lookup in the sequence's own context (the C++
# ngram_proposer.h), served by a draft worker without a model. The name is reserved: a checkpoint
# directory called "ngram" needs a path such as "./ngram".
DRAFT_FREE = "ngram"


def is_draft_free(draft) -> bool:
    return isinstance(draft, str) and draft == DRAFT_FREE


def resolve_draft_free(config: EngineConfig, draft) -> EngineConfig:
    """The config for ``draft``: unchanged for a draft model; for draft="ngram", mode "sd" with backup
    "ngram" (set where it was left at "auto"), or "ar" (which uses no draft). ValueError otherwise."""
    if not is_draft_free(draft) or config.mode == "ar":
        return config
    if config.mode != "sd":
        raise ValueError(f"draft = 'ngram' (draft-free prompt lookup) is invalid with mode = "
                         f"{config.mode!r}: ssd pre-speculates with a draft model; allowed: mode = 'sd' (or 'ar'), or a "
                         "draft model for 'ssd'")
    if config.backup == "auto":
        return dataclasses.replace(config, backup="ngram")
    if config.backup != "ngram":
        raise ValueError(f"backup = {config.backup!r} is invalid with draft = 'ngram': every proposal "
                         "comes from n-gram lookup; allowed: 'ngram' (or 'auto', which means it)")
    return config


def check_workers(side: str, threads, cores) -> None:
    """ValueError naming ``{side}_threads`` / ``{side}_cores`` when they are not usable here: the cores
    must be CPUs this process may run on (``os.sched_getaffinity``), so that a worker never fails
    to pin itself after the engine started."""
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"{side}_threads = {threads!r} is invalid: allowed an integer in 1..{MAX_THREADS}")
    if cores is None:
        return
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    try:
        values = list(cores)
    except TypeError:
        values = None
    if (not values or any(isinstance(c, bool) or not isinstance(c, int) for c in values)
            or len(set(values)) != len(values)
            or (allowed is not None and not set(values) <= set(allowed))):
        where = (f"distinct CPU ids among those this process may use: {allowed}" if allowed is not None
                 else "a non-empty list of distinct CPU ids")
        raise ValueError(f"{side}_cores = {cores!r} is invalid: allowed {where}")


def resolve_config(mode: str, K: int, fan_out, backup: str, saguaro_c: float, **fields) -> EngineConfig:
    unknown = set(fields) - set(EngineConfig.field_names())
    if unknown:
        raise ValueError(f"Engine got unknown argument(s) {sorted(unknown)}: allowed "
                         f"{sorted(EngineConfig.field_names())} and the device/thread options")
    kw = dict(mode=mode, K=K, backup=backup, saguaro_c=saguaro_c, **fields)
    if "fan_out_mode" in fields and isinstance(fan_out, int) and not isinstance(fan_out, bool):
        kw["fan_out_budget"] = fan_out  # a budget for the mode the caller named
    else:
        kw.update(_fan_out_fields(fan_out))
    config = EngineConfig(**kw)
    config.to_core()  # validates every field (ValueError naming it)
    return config


def _fan_out_fields(fan_out) -> dict:
    """EngineConfig fields for a ``fan_out`` argument (an int budget, a list, or a mode name)."""
    if isinstance(fan_out, str):
        if fan_out not in ("uniform", "geometric"):
            raise ValueError(f"fan_out = {fan_out!r} is invalid: allowed an int budget, a list of "
                             "K+1 ints, 'uniform' or 'geometric'")
        return {"fan_out_mode": fan_out}
    if isinstance(fan_out, (list, tuple)):
        return {"fan_out_mode": "list", "fan_out_list": tuple(fan_out)}
    if isinstance(fan_out, int) and not isinstance(fan_out, bool):
        return {"fan_out_mode": "uniform", "fan_out_budget": fan_out}
    raise ValueError(f"fan_out = {fan_out!r} is invalid: allowed an int budget, a list of K+1 ints, "
                     "'uniform' or 'geometric'")


def speculation_arguments(K, fan_out, saguaro_c, fields: dict) -> tuple:
    """``({K, fan_out, saguaro_c}, unset)``: the Engine's speculation arguments with
    :data:`DEFAULT_SPECULATION` for those left None, and the names of those (the draft may fill them
    in, :func:`apply_draft_speculation`). A ``fan_out_*`` config field counts as a given fan_out."""
    given = {"K": K, "fan_out": fan_out, "saguaro_c": saguaro_c}
    if fan_out is None and any(k.startswith("fan_out_") for k in fields):
        given["fan_out"] = DEFAULT_SPECULATION["fan_out"]
    unset = tuple(k for k, v in given.items() if v is None)
    return {k: DEFAULT_SPECULATION[k] if v is None else v for k, v in given.items()}, unset


def apply_draft_speculation(config: EngineConfig, recommended: Optional[dict], unset) -> EngineConfig:
    """``config`` with the draft's recommended settings (``ssdcore_speculation``) for the arguments
    named in ``unset``: K and fan_out only when both are unset (they are tuned together),
    saguaro_c on its own. Raises ValueError naming the checkpoint's key when a value is out of range."""
    if not recommended or not unset:
        return config
    kw = {}
    if "K" in unset and "fan_out" in unset:
        if "K" in recommended:
            kw["K"] = recommended["K"]
        if "fan_out" in recommended:
            kw.update(_fan_out_fields(recommended["fan_out"]))
    if "saguaro_c" in unset and "saguaro_c" in recommended:
        kw["saguaro_c"] = float(recommended["saguaro_c"])
    if not kw:
        return config
    out = dataclasses.replace(config, **kw)
    try:
        out.to_core()
    except ValueError as e:
        raise ValueError(f"the draft's ssdcore_speculation {recommended!r} does not fit: {e}") from None
    return out


def _load(spec, dtype: str, device: str):
    from ..models import LoadedModel, load_model

    if isinstance(spec, LoadedModel):
        return spec
    return load_model(spec, dtype=dtype, device=device)


def build_runners(config: EngineConfig, target, draft, *, dtype: str, target_device: str,
                  draft_device: str, target_threads: int, draft_threads: int,
                  target_cores=None, draft_cores=None, unset=()) -> EngineSetup:
    """Loads both models and builds their runners. ``unset``: the speculation arguments
    (``DEFAULT_SPECULATION``'s keys) the caller left to the draft's recommendation."""
    from ..models import reconcile_vocab

    check_workers("target", target_threads, target_cores)
    draft_free = is_draft_free(draft)
    if config.mode != "ar" and not draft_free:
        check_workers("draft", draft_threads, draft_cores)
    if target is None:
        from ..models.bundled import bundled_pair

        target, default_draft = bundled_pair()
        draft = default_draft if draft is None else draft
    needs_draft = config.mode != "ar" and not draft_free
    if needs_draft and draft is None:
        raise ValueError(f"mode = {config.mode!r} needs a draft model: pass draft=..., or use mode='ar'")
    t = _load(target, dtype, target_device)
    d = _load(draft, dtype, draft_device) if needs_draft else None
    if d is not None:
        reconcile_vocab(t, d)
        config = apply_draft_speculation(config, d.config.speculation, unset)
    limit = int(t.config.max_position_embeddings)
    if d is not None:
        limit = min(limit, int(d.config.max_position_embeddings))
    if config.max_context > limit:
        config = dataclasses.replace(config, max_context=limit)
    check_kv_budget(config, t.model, d.model if d is not None else None)  # before any KV is allocated
    t_runner = ModelRunner(t.model, side="target", num_lanes=config.max_batch,
                           context_slots=config.max_context, threads=target_threads, cores=target_cores,
                           cuda_graphs=t.cuda_graphs)
    d_runner = None
    if d is not None:
        d_runner = ModelRunner(d.model, side="draft", num_lanes=config.max_batch,
                               context_slots=config.max_context, scratch_slots=config.scratch_slots(),
                               threads=draft_threads, cores=draft_cores, cuda_graphs=d.cuda_graphs)
    return EngineSetup(config=config, target=t, draft=d, target_runner=t_runner, draft_runner=d_runner,
                       tokenizer=t.tokenizer, eos_ids=tuple(t.eos_token_ids))
