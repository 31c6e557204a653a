"""Reading the prompt files of public spatial benchmarks, each in its own format, into import
items (``jsonl_import.ImportItem``) that are checked like JSONL lines.

``geneval``: GenEval's ``prompts/evaluation_metadata.jsonl`` (djghosh13/geneval), one JSON
object a line::

    {"tag": "position", "include": [{"class": "teddy bear", "count": 1},
     {"class": "dog", "count": 1, "position": ["right of", 0]}],
     "prompt": "a photo of a dog right of a teddy bear"}

Only the lines tagged ``position`` are imported (the others are counted in the notes):
``include`` gives the objects (``class`` the name, ``count``, ``color`` an attribute); the
object with ``position: [rel, i]`` is the subject of ``rel`` ("left of", "right of", "above",
"below") to ``include[i]``. ``exclude`` (what must not be in the image) is kept as text only.

``t2i-compbench``: T2I-CompBench's ``examples/dataset/spatial*.txt`` and ``3d_spatial*.txt``
(Karine-Huang/T2I-CompBench): one prompt a line (CRLF line ends), "a balloon on the top of a
giraffe", read with the ``compbench`` template and vocabulary into two objects and their
relation through our synonyms ("on the top of" -> ``on_top_of``, "on the bottom of" ->
``under``, "on side of" -> ``next_to``, "hidden by" -> ``behind``). A line that reads but names
the same object twice ("a candle hidden by a candle", 13 lines of ``3d_spatial.txt``) cannot be
held as two objects of one description: it is kept as text only.

``dpg-bench``: DPG-Bench's ``dpg_bench/prompts/*.txt`` (TencentQQGYLab/ELLA): one file per
prompt, a dense paragraph; the file's stem is the item id (the prompt's group). The files carry
no structure: they are kept as text only (tier ``scene``). (DPG-Bench's ``dpg_bench.csv``,
whose question tuples name entities and spatial relations, is not read.)

Errors name the file, the line and the field (``include[1].position[0]``); a file that is not
in the format gives its first line's error. No Django.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from .errors import PromptSpecError
from .jsonl_import import ImportItem
from .parsing import parse_prompt
from .templates import normalize_text
from .vocabulary import Vocabulary, builtin_vocabulary

GENEVAL = "geneval"
COMPBENCH = "t2i-compbench"
DPG = "dpg-bench"
BENCHMARK_FORMATS: tuple[str, ...] = (GENEVAL, COMPBENCH, DPG)

GENEVAL_TAG = "position"
GENEVAL_RELATIONS = {"left of": "left_of", "right of": "right_of", "above": "above",
                     "below": "below"}  # fmt: skip
_GENEVAL_KEYS = frozenset({"tag", "include", "exclude", "prompt"})
_GENEVAL_OBJECT_KEYS = frozenset({"class", "count", "color", "position"})

SourceFile = tuple[str, str]
"""(file name, its text)."""


@dataclass
class BenchmarkRead:
    """The items of the files, and what the import keeps out of the structure."""

    items: list[ImportItem] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


def benchmark_vocabulary(fmt: str) -> Vocabulary | None:
    """The vocabulary a format's object names are checked against (GenEval: COCO's 80 classes
    in its spelling; T2I-CompBench: its 50 objects; DPG-Bench: none, text only)."""
    return {GENEVAL: builtin_vocabulary("coco"), COMPBENCH: builtin_vocabulary("compbench")}.get(
        fmt
    )


def benchmark_read(fmt: str, files: Sequence[SourceFile]) -> BenchmarkRead:
    """Read the files of one benchmark format (``BENCHMARK_FORMATS``)."""
    readers: dict[str, Callable[[Sequence[SourceFile]], BenchmarkRead]] = {
        GENEVAL: _geneval, COMPBENCH: _compbench, DPG: _dpg,
    }  # fmt: skip
    if fmt not in readers:
        raise PromptSpecError("format", fmt, f"one of {', '.join(BENCHMARK_FORMATS)}")
    return readers[fmt](files)


def _lines(text: str) -> list[tuple[int, str]]:
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]


# -- GenEval ----------------------------------------------------------------------------------


def _geneval(files: Sequence[SourceFile]) -> BenchmarkRead:
    read = BenchmarkRead()
    skipped: Counter[str] = Counter()
    excluded = 0
    for name, text in files:
        for number, line in _lines(text):
            if not line:
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                read.items.append(_bad(number, name, "json", f"not valid JSON: {error.msg}"))
                continue
            except RecursionError:
                read.items.append(_bad(number, name, "json", "not valid JSON: nested too deeply"))
                continue
            if not isinstance(entry, dict):
                read.items.append(_bad(number, name, "line", "must be a JSON object"))
                continue
            tag = entry.get("tag")
            if not isinstance(tag, str) or not tag:
                read.items.append(_bad(number, name, "tag", "must be a GenEval tag"))
                continue
            if tag != GENEVAL_TAG:
                skipped[tag] += 1
                continue
            excluded += 1 if entry.get("exclude") else 0
            read.items.append(_geneval_item(entry, number, name))
    read.notes = {
        "tags": {GENEVAL_TAG: len(read.items)},
        "skipped_tags": dict(sorted(skipped.items())),
        "exclude_kept_as_text": excluded,
    }
    return read


def _geneval_item(entry: dict[str, Any], number: int, name: str) -> ImportItem:
    errors = [PromptSpecError(key, entry[key], "unknown key") for key in entry
              if key not in _GENEVAL_KEYS]  # fmt: skip
    include = entry.get("include")
    if not isinstance(include, list) or len(include) != 2:
        errors.append(PromptSpecError("include", include, "must list the two objects"))
        return ImportItem(number, None, tuple(errors), name)
    objects: list[dict[str, Any]] = []
    relations: list[dict[str, Any]] = []
    for index, obj in enumerate(include):
        path = f"include[{index}]"
        if not isinstance(obj, dict):
            errors.append(PromptSpecError(path, obj, "must be an object"))
            continue
        errors.extend(PromptSpecError(f"{path}.{key}", obj[key], "unknown key") for key in obj
                      if key not in _GENEVAL_OBJECT_KEYS)  # fmt: skip
        cls, count = obj.get("class"), obj.get("count", 1)
        if not isinstance(cls, str) or not cls:
            errors.append(PromptSpecError(f"{path}.class", cls, "must be a class name"))
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            errors.append(PromptSpecError(f"{path}.count", count, "must be a positive integer"))
        color = obj.get("color")
        if color is not None and not isinstance(color, str):
            errors.append(PromptSpecError(f"{path}.color", color, "must be a colour word"))
        attributes = {"color": color} if isinstance(color, str) else {}
        objects.append({"id": f"o{index + 1}", "name": cls, "count": count,
                        "attributes": attributes})  # fmt: skip
        if "position" in obj:
            relation = _geneval_position(obj["position"], index, len(include), path, errors)
            if relation is not None:
                relations.append(relation)
    if not relations and not errors:
        errors.append(PromptSpecError("include", include, "no object has a position"))
    if errors:  # the line's own fields, not what a half-read structure would add
        return ImportItem(number, None, tuple(errors), name)
    data = {"text": entry.get("prompt"), "objects": objects, "relations": relations}
    return ImportItem(number, data, tuple(errors), name, template=GENEVAL)


def _geneval_position(
    position: Any, index: int, size: int, path: str, errors: list[PromptSpecError]
) -> dict[str, Any] | None:
    if not isinstance(position, list) or len(position) != 2:
        errors.append(PromptSpecError(f"{path}.position", position, "must be [relation, index]"))
        return None
    phrase, other = position
    relation = GENEVAL_RELATIONS.get(phrase) if isinstance(phrase, str) else None
    if relation is None:
        known = ", ".join(GENEVAL_RELATIONS)
        errors.append(PromptSpecError(f"{path}.position[0]", phrase, f"one of: {known}"))
    if isinstance(other, bool) or not isinstance(other, int) or not 0 <= other < size:
        errors.append(
            PromptSpecError(f"{path}.position[1]", other, f"an index into include (0-{size - 1})")
        )
        return None
    if other == index:
        errors.append(PromptSpecError(f"{path}.position[1]", other, "names the object itself"))
        return None
    if relation is None:
        return None
    return {"subject": f"o{index + 1}", "relation": relation, "objects": [f"o{other + 1}"]}


# -- T2I-CompBench ----------------------------------------------------------------------------


def _compbench(files: Sequence[SourceFile]) -> BenchmarkRead:
    read = BenchmarkRead()
    vocabulary = builtin_vocabulary("compbench")
    text_only = 0
    for name, text in files:
        for number, line in _lines(text):
            if not line:
                continue
            try:
                prompt = parse_prompt(line, vocabulary=vocabulary, template="compbench")
            except PromptSpecError as error:
                if error.field == "text":  # does not read as "{A} {rel} {B}"
                    read.items.append(_bad(number, name, "text", error.message))
                    continue
                # it reads, but as a structure we cannot hold (the same object twice)
                text_only += 1
                data = {"text": line, "group": f"{COMPBENCH}:{normalize_text(line)}"}
                read.items.append(ImportItem(number, data, (), name, template=COMPBENCH,
                                             text_only=True, tier="single"))  # fmt: skip
                continue
            data = {"text": line, **prompt.to_dict()}
            read.items.append(ImportItem(number, data, (), name, template=COMPBENCH))
    read.notes = {"text_only": text_only}
    return read


# -- DPG-Bench --------------------------------------------------------------------------------


def _dpg(files: Sequence[SourceFile]) -> BenchmarkRead:
    read = BenchmarkRead()
    for name, text in files:
        stem = PurePosixPath(name).stem
        if not name.endswith(".txt") or not stem:
            read.items.append(_bad(1, name, "file", "a DPG-Bench prompt file, <item id>.txt"))
            continue
        prompt = text.strip()
        read.items.append(ImportItem(1, {"text": prompt, "group": f"{DPG}:{stem}"}, (), name,
                                     template=DPG, text_only=True, tier="scene"))  # fmt: skip
    read.notes = {"text_only": len(read.items)}
    return read


def _bad(number: int, name: str, field_name: str, message: str) -> ImportItem:
    return ImportItem(number, None, (PromptSpecError(field_name, None, message),), name)
