"""A registered reward model's checkpoint: its files in the default storage, fetched once per
machine into a local cache folder.

A checkpoint is a storage prefix (the run's `training/runs/<id>/checkpoint`, or any prefix an
external trainer wrote) holding the trainer's `reward_model.json` and its weights (the
built-in model's `model.safetensors`; the CLIP-style model's `clip/` folder and
`head.safetensors`). Pickle-format weight files (.bin, .pt, .pth, .pkl, ...) are refused at
registration and at load: only safetensors are loaded. The cache folder is named by the model
id and a hash of its key; it is filled in a temporary sibling and renamed into place, so a
process never loads a half-copied folder and several processes fetching at once leave one
complete copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import Storage, storages

from config.errors import ValidationFailed
from training_bridge.training.trainer.config import BACKBONES  # the trainer's, no torch

log = logging.getLogger(__name__)

MANIFEST = "reward_model.json"  # the trainer's checkpoint manifest (trainer/models/__init__.py)
MAX_FILES = 10_000
# weights that torch/transformers would unpickle: never loaded (the trainer writes safetensors)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def cache_root() -> Path:
    default = Path(settings.VAR_DIR) / "cache" / "reward-models"
    return Path(getattr(settings, "REWARD_MODEL_CACHE_DIR", None) or default)


def _storage() -> Storage:
    return storages["default"]


def checkpoint_files(*, artifact_key: str, storage: Storage | None = None) -> Iterator[str]:
    """Every file key under the checkpoint's prefix (recursively)."""
    storage = storage or _storage()
    pending = [artifact_key.rstrip("/")]
    seen = 0
    while pending:
        prefix = pending.pop()
        try:
            dirs, files = storage.listdir(prefix)
        except FileNotFoundError:  # local storage: no such folder (S3 lists nothing)
            continue
        for name in sorted(files):
            seen += 1
            if seen > MAX_FILES:
                raise ValidationFailed(
                    f"{artifact_key} holds more than {MAX_FILES} files", field="artifact_key"
                )
            yield f"{prefix}/{name}"
        pending.extend(f"{prefix}/{name}" for name in sorted(dirs, reverse=True))


def checkpoint_manifest(*, artifact_key: str) -> dict[str, Any]:
    """The checkpoint's reward_model.json, checked: a clear error names `artifact_key`."""
    key = f"{artifact_key.rstrip('/')}/{MANIFEST}"
    storage = _storage()
    try:
        with storage.open(key, "rb") as handle:
            meta = json.loads(handle.read())
    except FileNotFoundError:
        raise ValidationFailed(
            f"no {MANIFEST} under {artifact_key!r}: not a checkpoint folder of the trainer",
            field="artifact_key",
        ) from None
    except (OSError, ValueError) as exc:
        raise ValidationFailed(
            f"{key} cannot be read as JSON: {exc}", field="artifact_key"
        ) from None
    if not isinstance(meta, dict) or meta.get("backbone") not in BACKBONES:
        raise ValidationFailed(
            f"{key}: unknown backbone {meta.get('backbone') if isinstance(meta, dict) else None!r}"
            f"; expected one of {', '.join(BACKBONES)}",
            field="artifact_key",
        )
    return meta


def checkpoint_pickles_refuse(keys: list[str], *, artifact_key: str) -> None:
    pickled = [key for key in keys if key.lower().endswith(PICKLE_SUFFIXES)]
    if pickled:
        raise ValidationFailed(
            f"{pickled[0]} is a pickle-format file; checkpoints are loaded from safetensors "
            "only (save_pretrained / safetensors.save_file)",
            field="artifact_key",
        )


def checkpoint_fetch(*, model_id: int, artifact_key: str) -> Path:
    """The checkpoint as a local folder (downloaded on first use, then reused)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(artifact_key.encode()).hexdigest()[:16]
    target = root / f"{model_id}-{digest}"
    if (target / MANIFEST).is_file():
        return target
    storage = _storage()
    prefix = artifact_key.rstrip("/")
    work = Path(tempfile.mkdtemp(prefix=f".{model_id}-", dir=root))
    try:
        keys = list(checkpoint_files(artifact_key=prefix, storage=storage))
        checkpoint_pickles_refuse(keys, artifact_key=prefix)
        count = 0
        for key in keys:
            path = work / key[len(prefix) + 1 :]
            path.parent.mkdir(parents=True, exist_ok=True)
            with storage.open(key, "rb") as source, path.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            count += 1
        if not (work / MANIFEST).is_file():
            raise ValidationFailed(
                f"no {MANIFEST} under {artifact_key!r}: the checkpoint is missing",
                field="artifact_key",
            )
        try:
            work.rename(target)
        except OSError:
            if not (target / MANIFEST).is_file():  # not another process's complete copy
                raise
        log.info("reward.checkpoint.fetched model=%s key=%s files=%d", model_id, prefix, count)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
