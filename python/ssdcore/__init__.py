"""ssdcore: speculative speculative decoding (SSD) inference engine.

The C++ runtime lives in the extension module ``ssdcore._core``; models, weight loading and the
Python API live here. Heavy submodules are imported lazily so ``import ssdcore`` stays fast.
"""
from __future__ import annotations

import importlib
import logging

from ._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "ops": ("ssdcore.ops", None),
    "models": ("ssdcore.models", None),
    "bundled_pair": ("ssdcore.models.bundled", "bundled_pair"),
    "Engine": ("ssdcore.engine.engine", "Engine"),
    "ModelRunnerError": ("ssdcore.engine.errors", "ModelRunnerError"),
    "NonFiniteLogitsError": ("ssdcore.engine.errors", "NonFiniteLogitsError"),
    "EngineClosedError": ("ssdcore.engine.errors", "EngineClosedError"),
    "EngineConfig": ("ssdcore.engine.engine_config", "EngineConfig"),
    "SamplingParams": ("ssdcore.engine.sampling_params", "SamplingParams"),
    "RequestOutput": ("ssdcore.engine.request_output", "RequestOutput"),
}

__all__ = ["__version__", "cuda_kernels_built", "cuda_available", "device_summary", *_LAZY]


def cuda_kernels_built() -> bool:
    """True when the installed build contains the CUDA verification kernels."""
    from . import _core

    return bool(_core.cuda_kernels_built())


def cuda_available() -> bool:
    """True when the CUDA kernels were built and at least one GPU is usable."""
    from . import _core

    return bool(_core.cuda_kernels_built()) and _core.cuda_device_count() > 0


def device_summary() -> str:
    """One line describing the CUDA kernels in this build, the GPUs seen and the CPU kernel path."""
    from . import _core

    return str(_core.device_summary())


def __getattr__(name: str):
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ssdcore' has no attribute {name!r}")
