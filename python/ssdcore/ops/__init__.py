"""Lossless speculative verification and the matching draft-side sampler (SSD_SPEC sections 1, 4, 5).

Both functions run the C++ reference on CPU tensors and the CUDA kernels on CUDA tensors; the two give
identical token ids and accept lengths for identical inputs. Randomness is a counter-based generator keyed by
``(seed, position, purpose)``, so a sequence's result does not depend on what else is in the batch.

The SSD contract: if a proposal was drawn with :func:`sample_draft` from draft logits ``l`` with parameters
``P`` (temperature, top-k, top-p, Saguaro C and fan-out F), passing the same ``l`` and ``P`` to :func:`verify`
tests it against exactly that distribution, so the committed tokens follow the target distribution exactly.

Both functions check every argument and raise ``ValueError`` naming the argument, the value given and what is
allowed. On CUDA, checking the proposed token ids synchronises with the device once.
"""
from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple, Union

import torch
from torch.utils.dlpack import to_dlpack

from ..engine import _params as P

__all__ = ["verify", "sample_draft"]


def _core():
    from .. import _core as core

    return core


def _cuda_launch(device: torch.device, nbytes: int) -> Tuple[torch.Tensor, int]:
    """Workspace (from torch's caching allocator) and the current stream for a CUDA launch."""
    core = _core()
    if not core.cuda_kernels_built():
        raise RuntimeError("ssdcore was built without its CUDA kernels (no nvcc at build time): pass CPU tensors, "
                           "or rebuild ssdcore on a machine with the CUDA toolkit")
    if core.cuda_device_count() == 0:
        raise RuntimeError(f"ssdcore's CUDA kernels see no usable GPU ({core.device_summary()})")
    workspace = torch.empty(max(int(nbytes), 1), dtype=torch.uint8, device=device)
    return workspace, int(torch.cuda.current_stream(device).cuda_stream)


def _fanout(value: Any, b: int, k: int) -> Optional[torch.Tensor]:
    """saguaro_fanout: None, an integer for every proposal, or a [B, K] integer array (F_j per proposal)."""
    allowed = "None, an integer >= 0, or a [B, K] array of integers >= 0 (0 = no down-weighting)"
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if not 0 <= int(value) <= P.INT32_MAX:
            raise ValueError(f"saguaro_fanout: got {value!r}; allowed: {allowed}")
        return torch.full((b, k), int(value), dtype=torch.int32)
    try:
        t = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"saguaro_fanout: got {value!r}; allowed: {allowed}") from exc
    if tuple(t.shape) != (b, k) or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"saguaro_fanout: got {P._describe(value)}; allowed: {allowed}, here [B, K] = [{b}, {k}]")
    t = t.to("cpu", torch.int64)
    bad = (t < 0) | (t > P.INT32_MAX)
    if bool(bad.any()):
        i, j = bad.nonzero()[0].tolist()
        raise ValueError(f"saguaro_fanout[{i}, {j}]: got {t[i, j].item()}; allowed: {allowed}")
    return t.to(torch.int32).contiguous()


def _check_tokens(tokens: torch.Tensor, lengths: torch.Tensor, vocab: int) -> None:
    k = tokens.shape[1]
    if k == 0:
        return
    live = torch.arange(k, device=tokens.device)[None, :] < lengths.to(tokens.device, torch.int64)[:, None]
    bad = live & ((tokens < 0) | (tokens >= vocab))
    if bool(bad.any()):
        b, i = bad.nonzero()[0].tolist()
        raise ValueError(f"draft_tokens[{b}, {i}]: got {int(tokens[b, i])}; allowed: a token id in [0, {vocab - 1}] "
                         f"(V = {vocab}) for each of the first draft_len[{b}] proposals")


def _sequence_params(b, lengths, flags, temperature, top_k, top_p, draft_temperature, draft_top_k, draft_top_p,
                     saguaro_c, seed, position) -> dict:
    """verify's per-sequence parameters, checked, as CPU tensors named like the C++ fields."""
    temp = P.temperature_like("temperature", temperature, b)
    tk = P.top_k_like("top_k", top_k, b)
    tp = P.top_p_like("top_p", top_p, b)
    return dict(
        draft_len=lengths, onehot=flags, temperature=temp, top_k=tk, top_p=tp,
        draft_temperature=temp if draft_temperature is None else P.temperature_like("draft_temperature",
                                                                                    draft_temperature, b),
        draft_top_k=tk if draft_top_k is None else P.top_k_like("draft_top_k", draft_top_k, b),
        draft_top_p=tp if draft_top_p is None else P.top_p_like("draft_top_p", draft_top_p, b),
        saguaro_c=P.saguaro_c_like("saguaro_c", saguaro_c, b),
        seed=P.seed_like("seed", seed, b),
        position=P.position_like("position", position, b),
    )


def verify(
    target_logits: torch.Tensor,
    draft_tokens: torch.Tensor,
    draft_logits: Optional[torch.Tensor] = None,
    *,
    position: Any,
    draft_len: Any = None,
    onehot: Any = None,
    temperature: Any = 1.0,
    top_k: Any = 0,
    top_p: Any = 1.0,
    draft_temperature: Any = None,
    draft_top_k: Any = None,
    draft_top_p: Any = None,
    saguaro_c: Any = 1.0,
    saguaro_fanout: Any = None,
    seed: Any = 0,
    num_threads: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Verify a batch of speculations; returns ``(accept_len [B] int64, next_token [B] int64)``.

    Args:
        target_logits: float32 ``[B, K+1, V]``, contiguous, CPU or CUDA. Row ``i`` of sequence ``b`` is the
            target's distribution for absolute position ``position[b] + i`` (row 0 follows the pending token).
        draft_tokens: int64 or int32 ``[B, K]``, the proposals ``s_1..s_K`` (only the first ``draft_len[b]``
            are read; they must lie in ``[0, V)``).
        draft_logits: float32 ``[B, K, V]``: the draft logits each proposal was sampled from (see
            :func:`sample_draft`), transformed here with the draft parameters into ``q'``. ``None``: every
            proposal is deterministic (one-hot ``q``).
        position: absolute position of the token decided by target row 0, per sequence (``int`` or ``[B]``).
        draft_len: proposals to verify per sequence, ``0..K`` (default ``K``). Sequence ``b`` draws its bonus
            token from row ``draft_len[b]``; a batch may mix sequences with 0..K proposals.
        onehot: per sequence, True when its proposals are deterministic (n-gram, cached or forced tokens):
            ``q`` is one-hot at the proposal whatever ``draft_logits`` holds. Default: False, or True for all
            when ``draft_logits`` is None.
        temperature, top_k, top_p: the target's sampling transforms (scalar or one per sequence). Temperature
            0 is exact argmax matching (draft inputs unused); top_k 0 and top_p 1 are off.
        draft_temperature, draft_top_k, draft_top_p: the transforms the proposals were sampled with (default:
            the target's). Draft temperature 0 means ``q`` is one-hot at the draft argmax.
        saguaro_c: Saguaro factor ``C`` in ``[0, 1]`` per sequence (1 = plain sampling).
        saguaro_fanout: ``F_j`` per proposal (``[B, K]`` or one integer): the proposal at ``j`` was sampled
            from ``q'`` with the top ``F_j`` tokens of ``q`` scaled by ``C``. None/0 = no down-weighting.
        seed: 64-bit seed per sequence (``int`` or ``[B]``).
        num_threads: CPU threads (None/0 = automatic); ignored on CUDA.

    Semantics (SSD_SPEC sections 1, 4, 5): for ``i < draft_len`` accept ``s_i`` iff ``u * q'(s_i) < p(s_i)``
    with ``u`` keyed by ``(seed, position + i, ACCEPT)``; at the first rejection the next token is sampled from
    ``norm(max(0, p_i - q'_i))`` (key ``RESIDUAL``), else the bonus from ``p_{draft_len}`` (key ``BONUS``).
    ``p`` and ``q`` go through ``logits / T -> top-k -> top-p -> softmax``; ``accept_len`` is in
    ``0..draft_len`` and ``next_token`` is the recovery or bonus token.
    """
    tl = P.check_tensor("target_logits", target_logits, dtypes=(torch.float32,), ndim=3,
                        allowed="a float32 tensor [B, K+1, V]")
    b, k1, vocab = tl.shape
    if k1 < 1 or vocab < 1 or vocab > P.INT32_MAX:
        raise ValueError(f"target_logits: got shape {tuple(tl.shape)}; allowed: [B, K+1, V] with K+1 >= 1 and "
                         f"1 <= V <= {P.INT32_MAX}")
    k, device = k1 - 1, tl.device
    dt = P.check_tensor("draft_tokens", draft_tokens, dtypes=(torch.int64, torch.int32), ndim=2,
                        allowed="an int64/int32 tensor [B, K]")
    P.check_shape("draft_tokens", dt, (b, k), "[B, K] matching target_logits [B, K+1, V]")
    P.check_device("draft_tokens", dt, device, "target_logits")
    if draft_logits is not None:
        P.check_tensor("draft_logits", draft_logits, dtypes=(torch.float32,), ndim=3,
                       allowed="None or a float32 tensor [B, K, V]")
        P.check_shape("draft_logits", draft_logits, (b, k, vocab), "[B, K, V] matching target_logits [B, K+1, V]")
        P.check_device("draft_logits", draft_logits, device, "target_logits")
    lengths = P.per_sequence("draft_len", k if draft_len is None else draft_len, b, integral=True,
                             valid=lambda t: (t >= 0) & (t <= k), out_dtype=torch.int32,
                             allowed=f"an integer in [0, K={k}], or one per sequence")
    if onehot is None:
        onehot = draft_logits is None
    flags = P.bool_like("onehot", onehot, b)
    if draft_logits is None and not bool(flags.all()):
        i = int((flags == 0).nonzero()[0, 0])
        raise ValueError(f"onehot[{i}]: got False; allowed: True when draft_logits is None (no proposal "
                         "distribution was given)")
    seq_params = _sequence_params(b, lengths, flags, temperature, top_k, top_p, draft_temperature, draft_top_k,
                                  draft_top_p, saguaro_c, seed, position)
    fan = _fanout(saguaro_fanout, b, k)
    threads = P.num_threads_like(num_threads)
    tokens = dt if dt.dtype == torch.int64 else dt.to(torch.int64)
    _check_tokens(tokens, lengths, vocab)

    accept_len = torch.empty(b, dtype=torch.int64, device=device)
    next_token = torch.empty(b, dtype=torch.int64, device=device)
    workspace, stream = None, 0
    if device.type == "cuda":
        workspace, stream = _cuda_launch(device, _core().verify_workspace_bytes(b, k))
    _core().verify(
        to_dlpack(tl), to_dlpack(tokens), None if draft_logits is None else to_dlpack(draft_logits),
        {name: to_dlpack(t) for name, t in seq_params.items()}, None if fan is None else to_dlpack(fan),
        to_dlpack(accept_len), to_dlpack(next_token), None if workspace is None else to_dlpack(workspace), stream,
        threads)
    return accept_len, next_token


def sample_draft(
    logits: torch.Tensor,
    *,
    position: Any,
    temperature: Any = 1.0,
    top_k: Any = 0,
    top_p: Any = 1.0,
    saguaro_c: Any = 1.0,
    saguaro_fanout: Any = 0,
    seed: Any = 0,
    return_probs: bool = False,
    num_threads: Optional[int] = None,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Sample one draft token per row from ``q'``; returns ``tokens [N] int64`` (and ``q' [N, V]`` float32).

    Args:
        logits: float32 ``[N, V]``, contiguous, CPU or CUDA: the draft's logits, one row per token to sample.
        position: absolute position of the token being sampled, per row (``int`` or ``[N]``); the random key
            is ``(seed, position, DRAFT)``, independent of the keys verification uses.
        temperature, top_k, top_p: the draft's transforms (scalar or one per row); temperature 0 = argmax.
        saguaro_c, saguaro_fanout: Saguaro sampling (SSD_SPEC section 4): the top ``F`` tokens of ``q`` are
            scaled by ``C`` before renormalising (``C`` = 1 or ``F`` = 0: plain ``q``).
        seed: 64-bit seed per row.
        return_probs: also return ``q'`` itself (float32; verification recomputes it from the logits).
        num_threads: CPU threads (None/0 = automatic); ignored on CUDA.

    Pass the same logits and parameters to :func:`verify` (``draft_logits``, ``draft_temperature``,
    ``draft_top_k``, ``draft_top_p``, ``saguaro_c``, ``saguaro_fanout``) and verification is lossless.
    """
    lg = P.check_tensor("logits", logits, dtypes=(torch.float32,), ndim=2, allowed="a float32 tensor [N, V]")
    n, vocab = lg.shape
    if vocab < 1 or vocab > P.INT32_MAX:
        raise ValueError(f"logits: got shape {tuple(lg.shape)}; allowed: [N, V] with 1 <= V <= {P.INT32_MAX}")
    if not isinstance(return_probs, bool):
        raise ValueError(f"return_probs: got {return_probs!r}; allowed: True or False")
    temp = P.temperature_like("temperature", temperature, n)
    tk = P.top_k_like("top_k", top_k, n)
    tp = P.top_p_like("top_p", top_p, n)
    c = P.saguaro_c_like("saguaro_c", saguaro_c, n)
    fan = P.per_sequence("saguaro_fanout", saguaro_fanout, n, integral=True, out_dtype=torch.int32,
                         valid=lambda t: (t >= 0) & (t <= P.INT32_MAX),
                         allowed="an integer >= 0 (0 = no down-weighting), or one per row")
    seeds = P.seed_like("seed", seed, n)
    pos = P.position_like("position", position, n)
    threads = P.num_threads_like(num_threads)

    device = lg.device
    tokens = torch.empty(n, dtype=torch.int64, device=device)
    probs = torch.empty(n, vocab, dtype=torch.float32, device=device) if return_probs else None
    workspace, stream = None, 0
    if device.type == "cuda":
        workspace, stream = _cuda_launch(device, _core().draft_workspace_bytes(n))
    row_params = dict(temperature=temp, top_k=tk, top_p=tp, saguaro_c=c, saguaro_fanout=fan, seed=seeds, position=pos)
    _core().sample_draft(
        to_dlpack(lg), {name: to_dlpack(t) for name, t in row_params.items()}, to_dlpack(tokens),
        None if probs is None else to_dlpack(probs), None if workspace is None else to_dlpack(workspace), stream,
        threads)
    return (tokens, probs) if return_probs else tokens
