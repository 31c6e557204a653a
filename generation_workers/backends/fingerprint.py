"""Model folders: the checks a config gets when it is saved, and the folder's revision hash.

No torch here: the web process runs these when a lead saves a config, and a worker runs the
revision again before it renders so that an image is never labelled with a model it did not
come from. Loading the model is the worker's job (the config "check").
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

MODEL_INDEX = "model_index.json"
# Small text files (configs, tokenizers) are hashed whole; weights by size, head and tail, which
# tells apart any two real checkpoints without reading gigabytes on every save.
WHOLE_FILE_SUFFIXES = frozenset({".json", ".txt", ".model", ".yaml", ".yml", ".py"})
WHOLE_FILE_MAX_BYTES = 16 * 1024 * 1024
SAMPLE_BYTES = 1024 * 1024
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PROCEDURAL_PACKAGE = Path(__file__).resolve().parent / "procedural"


def model_folder_problem(path: str) -> str | None:
    """Why `path` is not a loadable diffusers folder here, or None when it looks like one."""
    if not path:
        return "a diffusers config needs the path of a local model folder"
    folder = Path(path)
    if not folder.is_absolute():
        return f"{path!r} is not an absolute path; workers resolve the same absolute path"
    if not folder.exists():
        return f"{path} does not exist on this machine"
    if not folder.is_dir():
        return f"{path} is not a folder"
    index = folder / MODEL_INDEX
    if not index.is_file():
        return (
            f"{path} has no {MODEL_INDEX}: it is not a diffusers pipeline folder "
            "(write one with pipeline.save_pretrained(folder))"
        )
    try:
        data = json.loads(index.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{path}/{MODEL_INDEX} cannot be read as JSON: {exc}"
    if not isinstance(data, dict) or not isinstance(data.get("_class_name"), str):
        return f"{path}/{MODEL_INDEX} names no pipeline class (_class_name)"
    return None


def model_folder_class(path: str) -> str:
    """The pipeline class a folder was saved from (model_index.json's _class_name)."""
    return json.loads((Path(path) / MODEL_INDEX).read_text())["_class_name"]


def _file_digest(digest: hashlib._Hash, file: Path, size: int) -> None:
    with file.open("rb") as handle:
        if file.suffix in WHOLE_FILE_SUFFIXES and size <= WHOLE_FILE_MAX_BYTES:
            digest.update(handle.read())
            return
        digest.update(handle.read(SAMPLE_BYTES))
        if size > SAMPLE_BYTES:
            handle.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
            digest.update(handle.read(SAMPLE_BYTES))


def model_folder_revision(path: str) -> str:
    """A hash of the folder's files (relative names, sizes, contents or samples of them).

    The same on every machine that holds a copy of the folder (no times, no absolute paths);
    it changes when a file is added, removed, resized or rewritten.
    """
    folder = Path(path)
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(folder).as_posix()}\0{size}\0".encode())
        _file_digest(digest, file, size)
    return digest.hexdigest()


def procedural_revision() -> str:
    """A hash of the procedural renderer's source: its images change only when this does."""
    digest = hashlib.sha256()
    for file in sorted(PROCEDURAL_PACKAGE.glob("*.py")):
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def class_name_problem(value: str, *, field: str, suffix: str = "") -> str | None:
    """Why `value` cannot name a diffusers class, or None (empty means the default)."""
    if not value:
        return None
    if not IDENTIFIER.match(value):
        return f"{field} must be a class name such as {suffix or 'StableDiffusionPipeline'}"
    if suffix and not value.endswith(suffix):
        return f"{field} {value!r} is not a diffusers scheduler class (its name ends in {suffix})"
    return None
