"""The bundled target/draft model pair (trained in-repo by ``tools/train_pair.py``).

Both directories are ordinary Hugging Face checkpoints (config.json, model.safetensors,
tokenizer files, generation_config.json) sharing one byte-level BPE tokenizer.
"""
from __future__ import annotations

from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "assets" / "bundled"
TRAIN_COMMAND = "python tools/train_pair.py --threads 2"
_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


class BundledModelMissingError(FileNotFoundError):
    """Raised when the bundled checkpoints are not present in the installed package."""


def _check(model_dir: Path) -> Path:
    missing = [name for name in _REQUIRED if not (model_dir / name).is_file()]
    if missing:
        raise BundledModelMissingError(
            f"bundled model checkpoint incomplete or missing at {model_dir} "
            f"(missing: {', '.join(missing)}); recreate it from the repository root with "
            f"`{TRAIN_COMMAND}`"
        )
    return model_dir


def bundled_pair() -> tuple[Path, Path]:
    """Return ``(target_dir, draft_dir)`` of the bundled pair as :class:`pathlib.Path` objects.

    Raises :class:`BundledModelMissingError` (a :class:`FileNotFoundError`) naming the path
    and the training command if the checkpoints are missing.
    """
    return _check(BUNDLED_DIR / "target"), _check(BUNDLED_DIR / "draft")
