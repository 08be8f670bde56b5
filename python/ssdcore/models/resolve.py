"""Turn a user's model argument into a local checkpoint directory.

Order: an existing local directory wins. Anything else that is a valid Hugging
Face repo id ("Qwen/Qwen3-0.6B") is looked up in the local HF cache first
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

from .errors import ModelLoadError, ModelNotFoundError

log = logging.getLogger(__name__)

HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja"]
_PROBE_TIMEOUT_S = 3.0
_ETAG_TIMEOUT_S = 5.0


def resolve_model_path(path_or_id) -> Path:
    """Local directory holding the checkpoint named by ``path_or_id``."""
    if not isinstance(path_or_id, (str, os.PathLike)) or not str(path_or_id).strip():
        raise ValueError(f"path_or_id={path_or_id!r}: expected a local directory or a hub id "
                         "such as 'Qwen/Qwen3-0.6B'")
    text = os.fspath(path_or_id)
    local = Path(text).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise ModelLoadError(f"model path {text!r} is a file; expected a directory with "
                             "config.json and *.safetensors")
    if not _looks_like_repo_id(text):
        raise ModelNotFoundError(f"model directory {text!r} does not exist. Pass the path of a local "
                                 "directory containing config.json and *.safetensors, or a Hugging "
                                 "Face hub id such as 'Qwen/Qwen3-0.6B'.")
    return Path(_from_hub(text))


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
