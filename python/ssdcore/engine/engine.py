"""Engine: the Python API of ssdcore (SSD, SD and AR decoding with one runtime).

``Engine(target, draft, mode="ssd", ...)`` loads both models (the bundled pair by default), checks
their tokenizers, builds a :class:`~ssdcore.engine.model_runner.ModelRunner` for each and starts the C++
runtime through the public C++ engine (``ssdcore::Engine``: target worker + draft worker threads and
a C++ router that files each request's output events). ``generate`` blocks until every request
finishes; ``stream`` yields text deltas as rounds commit. Each caller waits on its own requests'
events (``_core.Engine.next``, without the GIL), so any number of caller threads may generate
concurrently. ``draft="ngram"`` with ``mode="sd"`` is draft-free speculation: no draft model; each
round proposes up to K tokens by prompt lookup in the sequence's own context (``ngram_n`` down to
``ngram_min_n`` tokens matched), verified as one-hot proposals, so the output is exactly the target's.
``K``, ``fan_out`` and ``saguaro_c`` left as None take the draft checkpoint's recommendation
(``ssdcore_speculation`` in its config.json, e.g. the SmolLM2 draft's K=3, F=10, C=0.5), else 4, 8
and 1.0; K and fan_out are taken together, only when both are None. Call ``close()`` (or use
``with``); Ctrl-C inside ``generate`` cancels that call's requests and re-raises promptly (waits are
100 ms slices).

Lifecycle: ``close()`` fails every pending request, running or still queued, with
:class:`~ssdcore.engine.errors.EngineClosedError` and joins the runtime's threads (none of which takes the
GIL after its last forward). An engine nobody closed is closed the same way at interpreter exit (a
``weakref.finalize`` hook), before the interpreter finalizes. A failed request raises the class its
error kind names (``errors.request_error``).

Structured output: a request whose SamplingParams has a ``response_format`` is registered with the
engine's token masker and its key travels as the C++ ``SamplingParams.constraint``; the key is released
when the request ends (finished, failed, cancelled or discarded). The masker is the engine's own
:class:`~ssdcore.engine.token_masker.TokenMasker` (built from the target's tokenizer; none without
one), or ``token_masker`` (keyword): an object with ``fill_masks(side, rows, masks_ptr, words)``
(cpp/include/ssdcore/token_masker.h, cpp/bindings/py_token_masker.h), and ``register`` / ``release``
for response_format requests. With a caller's masker a request may give its key itself,
``SamplingParams(constraint=key)``; either way it is masked on both sides (target and draft), exactly
in every mode. Requests the engine cannot constrain are rejected with ValueError.
"""
from __future__ import annotations

import itertools
import logging
import weakref
from typing import Iterator, List, Optional, Sequence, Union

from .engine_config import EngineConfig
from .engine_setup import (build_runners, default_spin_wait_us, resolve_config, resolve_draft_free,
                           speculation_arguments)
from .errors import EngineClosedError, ModelRunnerError, NonFiniteLogitsError, request_error
from .request_output import RequestOutput, RequestTracker
from .sampling_params import SamplingParams, SamplingParamsLike, as_sampling_params
from .token_masker import masker_for

log = logging.getLogger(__name__)

PromptLike = Union[str, Sequence[int]]


class Engine:
    def __init__(self, target=None, draft=None, mode: str = "ssd", K: Optional[int] = None,
                 fan_out=None, backup: str = "auto", saguaro_c: Optional[float] = None, *,
                 config: Optional[EngineConfig] = None, dtype: str = "float32",
                 target_device: str = "cpu", draft_device: str = "cpu",
                 target_threads: int = 1, draft_threads: int = 1, target_cores=None, draft_cores=None,
                 token_masker=None, **config_fields):
        from .. import _core

        config_fields.setdefault("spin_wait_us", default_spin_wait_us(target_cores, draft_cores))
        given, unset = speculation_arguments(K, fan_out, saguaro_c, config_fields)
        unset = unset if config is None else ()
        self.config = config or resolve_config(mode=mode, backup=backup, **given, **config_fields)
        self.config = resolve_draft_free(self.config, draft)
        setup = build_runners(self.config, target, draft, dtype=dtype, target_device=target_device,
                              draft_device=draft_device, target_threads=target_threads,
                              draft_threads=draft_threads, target_cores=target_cores,
                              draft_cores=draft_cores, unset=unset)
        self.config, self.tokenizer, self.eos_token_ids = setup.config, setup.tokenizer, setup.eos_ids
        self.target, self.draft = setup.target, setup.draft
        self._vocab = int(setup.target_runner.vocab_size())
        self._own_masker = token_masker is None
        self._masker = token_masker if token_masker is not None else masker_for(
            self.tokenizer, self._vocab, self.eos_token_ids)
        self._constraints = {}  # request id -> its TokenMasker key, until the request ends
        # the event router shares the draft's cores when the caller pinned the models, so that waking
        # it never preempts the target worker (the draft has slack while the target verifies)
        router_cores = list(draft_cores or ()) if target_cores else []
        t_runner, d_runner = setup.target_runner, setup.draft_runner
        self._forward = {"target": t_runner.forward_kind}
        if d_runner is not None:
            self._forward["draft"] = d_runner.forward_kind
        try:  # each runner's native forward, when it has one, runs in place of its Python forward
            self._core = _core.Engine(self.config.to_core(), t_runner, d_runner, list(self.eos_token_ids),
                                      router_cores, target_native=t_runner.native_runner(),
                                      draft_native=None if d_runner is None else d_runner.native_runner(),
                                      token_masker=self._masker)
        except RuntimeError as e:  # a worker could not start: name the settings it was started with
            side = "draft" if "draft worker" in str(e) else "target"
            cores, threads = (draft_cores, draft_threads) if side == "draft" else (target_cores, target_threads)
            raise RuntimeError(f"{e} ({side}_cores = {cores!r}, {side}_threads = {threads})") from None
        self._closed = False
        self._request_index = itertools.count(1)  # derives the seeds of requests without one (atomic)
        # an engine nobody closed is closed at interpreter exit, before its worker threads are torn down
        self._finalizer = weakref.finalize(self, self._core.close)
        log.info("engine ready: %s", self.config)

    # ------------------------------------------------------------------ public API
    def generate(self, prompts: Union[PromptLike, List[PromptLike]],
                 sampling_params: Union[SamplingParamsLike, List[SamplingParamsLike]] = None
                 ) -> List[RequestOutput]:
        """Runs every prompt to completion; one RequestOutput per prompt, in order."""
        prompt_list = _as_prompt_list(prompts)
        params = _as_params_list(sampling_params, len(prompt_list))
        trackers = []
        try:  # a bad prompt, a runner error or Ctrl-C: cancel and forget every request of this call
            for p, sp in zip(prompt_list, params):
                trackers.append(self._submit(p, sp, lazy=True))
            for tracker, q in trackers:
                for _ in self._drain(tracker, q):
                    pass
        except BaseException:
            for tracker, _ in trackers:
                self._core.discard(tracker.out.request_id)
                self._release(tracker.out.request_id)
            raise
        return [t.out for t, _ in trackers]

    def stream(self, prompt: PromptLike, sampling_params: SamplingParamsLike = None) -> Iterator[str]:
        """Yields text deltas as rounds commit; ``self.last_output`` holds the finished request.

        The generator's return value (``StopIteration.value``) is the finished RequestOutput too: use
        it when several threads stream at once, since ``last_output`` is shared by all of them.
        """
        tracker, q = self._submit(prompt, as_sampling_params(sampling_params))
        try:
            for delta in self._drain(tracker, q):
                if delta:
                    yield delta
            return tracker.out
        finally:
            if tracker.out.finish_reason is None:
                self._core.discard(tracker.out.request_id)
                self._release(tracker.out.request_id)
            self.last_output = tracker.out

    def stats(self) -> dict:
        """Per-position acceptance and hit histograms, backup use, phase times, draft-hidden fraction,
        requests finished by reason (every field of the C++ ``StatsSnapshot``, by name),
        ``worker_bytes`` / ``worker_bytes_per_round``: what the target and draft workers passed each
        other (token ids, accept lengths, row handles; never logits rows, so it does not grow with V),
        ``draft_mask_failures``: draft forwards left unmasked because the token masker raised there
        (the target's masking still decides the output; a failure on the target side fails the
        constrained requests instead), and ``forward``: which forward each model runs, by side
        (``{"target": "native", "draft": "native"}``; no "draft" in ``ar`` mode without a draft), from
        each runner's ``forward_kind``."""
        s = self._core.stats()
        s["forward"] = dict(self._forward)
        s["backup_use"] = dict(zip(_core_names("BACKUPS"), s.pop("backup_counts")))
        s["requests_finished"] = {reason: n for reason, n in zip(_core_names("FINISH_REASONS"),
                                                                  s["requests_finished"]) if n}
        return s

    def pending_requests(self) -> int:
        """Requests submitted and not yet done: running or queued, including those whose caller has
        left (a cancelled request counts until its cancellation lands)."""
        return int(self._core.pending())

    def reset_stats(self) -> None:
        self._core.reset_stats()

    def close(self) -> None:
        """Fails every pending request with EngineClosedError and stops the engine (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()  # closes the runtime and joins its threads (without the GIL)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ internals
    def _submit(self, prompt: PromptLike, sp: SamplingParams, lazy: bool = False):
        """(tracker, request id). A lazy request (generate() without stop strings) gets one event at
        the finish instead of one per round."""
        if self._closed:
            raise EngineClosedError("the engine is closed; create a new Engine")
        text, ids = self._encode(prompt)
        index = next(self._request_index)
        seed = sp.seed if sp.seed is not None else _derive_seed(self.config.seed, index)
        key = self._register(sp)
        try:
            rid = self._core.submit(ids, sp.to_core(seed, key), every_round=not lazy or bool(sp.stop))
        except RuntimeError:  # the engine's only RuntimeError on submit: close() raced it
            self._masker_release(key)
            raise EngineClosedError("the engine is closed; create a new Engine") from None
        except BaseException:
            self._masker_release(key)
            raise
        if key:
            self._constraints[rid] = key
        out = RequestOutput(request_id=rid, prompt=text, prompt_token_ids=list(ids))
        return RequestTracker(out, self.tokenizer, sp.stop, lazy), rid

    def _drain(self, tracker: RequestTracker, rid: int) -> Iterator[str]:
        while True:
            ev = self._core.next(rid, 100)  # short waits keep Ctrl-C responsive
            if ev is None:
                continue
            if ev["tokens"]:
                delta = tracker.add_tokens(ev["tokens"])
                if tracker.stopped and not ev["finish"]:
                    self._core.cancel(rid)
                yield delta
            if ev["finish"]:
                self._release(rid)
                if ev["finish"] == "error":
                    raise request_error(ev["error_kind"], ev["error"])
                yield tracker.finish(ev["finish"], ev["metrics"])
                return

    def _register(self, sp: SamplingParams) -> Optional[int]:
        """The token-masker key of the request's response_format (None: send ``sp.constraint``)."""
        if sp.response_format is None:
            if sp.constraint and self._own_masker and self._masker is not None:
                raise ValueError(f"constraint = {sp.constraint} needs an engine built with a TokenMasker "
                                 "of the caller's (token_masker=...): this engine's own masker keys "
                                 "response_format requests only; allowed constraint = 0 here")
            return None
        register = getattr(self._masker, "register", None)
        if register is None:
            raise ValueError("response_format needs the target's tokenizer (structured output masks "
                             "tokens by their text), or a token_masker with register(response_format); "
                             f"this engine has {'no tokenizer' if self._masker is None else 'neither'}: "
                             "allowed response_format=None")
        if not self.eos_token_ids:
            raise ValueError("response_format needs an end-of-sequence token to end the output; this "
                             "engine has no EOS ids: allowed response_format=None")
        return register(sp.response_format)

    def _release(self, rid: int) -> None:
        """Forgets the request's constraint (any thread; a request without one is a no-op)."""
        self._masker_release(self._constraints.pop(rid, 0))

    def _masker_release(self, key: Optional[int]) -> None:
        if key:
            self._masker.release(key)

    def _encode(self, prompt: PromptLike):
        if isinstance(prompt, str):
            if not prompt:
                raise ValueError("prompt is empty: give at least one character or token")
            if self.tokenizer is None:
                raise ValueError("a text prompt needs a tokenizer; the target checkpoint has none, "
                                 "pass token ids instead")
            _check_encodable(prompt)
            return prompt, list(self.tokenizer.encode(prompt, add_special_tokens=False))
        ids = list(prompt)
        if not ids:
            raise ValueError("prompt is empty: give at least one token")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValueError(f"prompt token ids must be integers, got {ids[:8]!r}...")
        for i, t in enumerate(ids):  # here, before C++ (whose int32 could not even hold some of them)
            if not 0 <= t < self._vocab:
                raise ValueError(f"prompt token {i} = {t} is outside the vocabulary: allowed "
                                 f"0..{self._vocab - 1}")
        return None, ids


def _derive_seed(engine_seed: int, index: int) -> int:
    x = (engine_seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x ^= x >> 31
    return (x * 0x94D049BB133111EB) & (2**64 - 1)


def _as_prompt_list(prompts) -> list:
    if isinstance(prompts, str):
        return [prompts]
    if isinstance(prompts, (list, tuple)) and prompts and all(isinstance(i, int) for i in prompts):
        return [list(prompts)]
    if isinstance(prompts, (list, tuple)):
        if not prompts:
            raise ValueError("prompts is empty: give at least one prompt")
        for i, p in enumerate(prompts):
            if not isinstance(p, (str, list, tuple)):
                raise ValueError(f"prompts[{i}] = {p!r} is invalid: allowed a string or a list of token "
                                 "ids (a flat list of token ids must hold only ints)")
        return list(prompts)
    raise ValueError(f"prompts = {prompts!r} is invalid: allowed a string, a list of token ids, or a "
                     "list of those")


def _as_params_list(value, n: int) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"sampling_params has {len(value)} entries for {n} prompts: allowed one "
                             "SamplingParams, or one per prompt")
        return [as_sampling_params(v) for v in value]
    sp = as_sampling_params(value)
    return [sp] * n


__all__ = ["Engine", "EngineClosedError", "EngineConfig", "ModelRunnerError", "NonFiniteLogitsError",
           "RequestOutput", "SamplingParams"]


def _core_names(attr: str) -> tuple:
    from .. import _core

    return tuple(getattr(_core, attr))


def _check_encodable(text: str) -> None:
    """ValueError naming the position of a lone surrogate (text that is not valid Unicode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"prompt is not valid Unicode: character {e.start} is a lone surrogate "
                         f"({text[e.start]!r}); allowed: text that encodes as UTF-8") from None
