"""Turn a user's model argument into a local checkpoint directory.

Order: an existing local path wins: a directory with config.json is an HF
checkpoint; a ``.gguf`` file, or a directory without config.json holding exactly
one ``.gguf`` file, is converted once into a cached HF folder (gguf_checkpoint.py)
whose path is returned. Next, a name from :data:`~ssdcore.models.catalog.NAMED_MODELS`
("smollm2", case-insensitive) resolves to the file it names. Anything else that
is a valid Hugging Face repo id ("Qwen/Qwen3-0.6B") is looked up in the local HF cache first
(``local_files_only``), then, unless ``HF_HUB_OFFLINE`` is set, downloaded with
``snapshot_download`` (safetensors, json and tokenizer files only) after a
quick TCP probe of the hub endpoint, so an unreachable hub fails within
seconds instead of hanging. Every failure is one :class:`ModelNotFoundError`
(a ``FileNotFoundError``) that says the model was not found locally and how to
pass a local path.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from .catalog import NAMED_MODELS
from .errors import ModelLoadError, ModelNotFoundError
from .gguf_checkpoint import gguf_to_hf_folder

log = logging.getLogger(__name__)

HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja"]
_PROBE_TIMEOUT_S = 3.0
_ETAG_TIMEOUT_S = 5.0


def resolve_model_path(path_or_id) -> Path:
    """Local HF checkpoint directory for ``path_or_id`` (see the module docstring for the order)."""
    if not isinstance(path_or_id, (str, os.PathLike)) or not str(path_or_id).strip():
        raise ValueError(f"path_or_id={path_or_id!r}: expected a local directory, a .gguf file, "
                         f"a model name ({', '.join(NAMED_MODELS)}) or a hub id such as "
                         "'Qwen/Qwen3-0.6B'")
    text = os.fspath(path_or_id)
    local = Path(text).expanduser()
    if local.is_dir():
        gguf = _only_gguf(local)
        return gguf_to_hf_folder(gguf) if gguf is not None else local
    if local.exists():
        if local.suffix.lower() == ".gguf":
            return gguf_to_hf_folder(local)
        raise ModelLoadError(f"model path {text!r} is a file but not a .gguf; expected a .gguf file "
                             "or a directory with config.json and *.safetensors")
    if text.strip().lower() in NAMED_MODELS:
        return resolve_model_path(NAMED_MODELS[text.strip().lower()]())
    if text.lower().endswith(".gguf") or not _looks_like_repo_id(text):
        raise ModelNotFoundError(f"model path {text!r} does not exist. Pass the path of a local "
                                 "directory containing config.json and *.safetensors, a .gguf file, "
                                 f"a model name ({', '.join(NAMED_MODELS)}) or a Hugging Face hub id "
                                 "such as 'Qwen/Qwen3-0.6B'.")
    return Path(_from_hub(text))


def _only_gguf(folder: Path):
    """The one .gguf file of a folder without config.json; None for an HF folder or no .gguf."""
    if (folder / "config.json").is_file():
        return None
    found = sorted(p for p in folder.glob("*.gguf") if p.is_file())
    if len(found) > 1:
        raise ModelLoadError(f"{folder} holds {len(found)} .gguf files "
                             f"({', '.join(p.name for p in found)}); pass the path of one of them")
    return found[0] if found else None


def _looks_like_repo_id(text: str) -> bool:
    if text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1:
        return False
    try:
        from huggingface_hub.utils import validate_repo_id
        validate_repo_id(text)
    except Exception:
        return False
    return True


def _not_found(repo_id: str, reason: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"model {repo_id!r} was not found locally (no such directory, not in the Hugging Face "
        f"cache) and could not be fetched from the hub: {reason}. Pass the path of a local "
        f"checkpoint directory instead, e.g. load_model('/path/to/{repo_id.split('/')[-1]}'), "
        f"after downloading it where the hub is reachable "
        f"(huggingface-cli download {repo_id} --local-dir DIR).")


def _from_hub(repo_id: str) -> str:
    from huggingface_hub import constants, snapshot_download
    try:
        return snapshot_download(repo_id, local_files_only=True, allow_patterns=HUB_PATTERNS)
    except Exception:
        pass  # not cached: try the network below
    if constants.HF_HUB_OFFLINE:
        raise _not_found(repo_id, "offline mode is on (HF_HUB_OFFLINE is set)")
    problem = _probe(constants.ENDPOINT)
    if problem:
        raise _not_found(repo_id, f"the hub at {constants.ENDPOINT} is unreachable ({problem})")
    try:
        log.info("downloading %s from the Hugging Face Hub", repo_id)
        return snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, etag_timeout=_ETAG_TIMEOUT_S)
    except Exception as e:
        raise _not_found(repo_id, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def _probe(endpoint: str) -> str:
    """'' if a TCP connection to the endpoint opens quickly, else a short reason.

    Skipped (returns '') when a proxy is configured: the proxy decides reachability.
    """
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return ""
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=_PROBE_TIMEOUT_S):
            return ""
    except OSError as e:
        return f"{type(e).__name__}: {e}"
