"""EngineConfig: the engine's one configuration, mirroring the C++ ``ssdcore::EngineConfig``
(cpp/include/ssdcore/config.h) field for field.

A frozen dataclass; :meth:`to_core` builds the C++ struct, whose ``validate()`` is the single source of
the rules (errors name the field, the value given and what is allowed, raised as ValueError). A test
keeps the two field lists and defaults identical: a new setting is added to the C++ struct (and its
validate()) and here, nowhere else. Immutable, so any thread may read it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Tuple

from ._core_struct import UINT64, build


@dataclass(frozen=True)
class EngineConfig:
    mode: str = "ssd"               # "ssd" | "sd" | "ar"
    K: int = 4                      # draft length, 1..32
    fan_out_mode: str = "uniform"   # "uniform" | "list" | "geometric"
    fan_out_budget: int = 8         # F: outcomes pre-speculated per sequence per round, 1..256
    fan_out_list: Tuple[int, ...] = field(default_factory=tuple)  # list mode: K+1 entries
    backup: str = "auto"            # "auto" | "jit" | "ngram" | "none"
    auto_jit_max_batch: int = 8     # auto's prior: jit up to this batch size, ngram above
    saguaro_c: float = 1.0          # Saguaro down-weighting C in [0, 1]; 1 = plain sampling
    max_batch: int = 8              # sequences per round (KV lanes)
    max_context: int = 1024         # prompt + generated tokens per sequence
    ngram_n: int = 3                # longest match the ngram proposer tries, 1..8
    ngram_min_n: int = 1            # shortest match it accepts, 1..ngram_n
    seed: int = 0                   # engine default seed (requests without a seed derive theirs)
    stats_window: int = 256         # rounds of history for online estimates
    spin_wait_us: int = 0           # a worker polls this long for the other before parking, 0..1e6

    def to_core(self):
        """The validated C++ ``_core.EngineConfig`` (ValueError naming the field when invalid)."""
        from .. import _core

        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return build(_core.EngineConfig, "EngineConfig", values, {"seed": UINT64})

    def scratch_slots(self) -> int:
        """Draft KV scratch slots per lane needed for the SSD tree branches (the C++ rule)."""
        return int(self.to_core().scratch_slots())

    @staticmethod
    def field_names() -> Tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(EngineConfig))
