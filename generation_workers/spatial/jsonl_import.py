"""Importing scene prompts written elsewhere (e.g. by an LLM) from JSON Lines.

One JSON object per line::

    {"text": "In a kitchen, a red cup is to the left of a bowl. ...",
     "objects": [{"id": "o1", "name": "cup", "count": 1, "attributes": {"color": "red"}}, ...],
     "relations": [{"subject": "o1", "relation": "left_of", "objects": ["o2"]}, ...],
     "scene": "kitchen",            # optional
     "group": "kitchen-0042"}       # optional group key (default: the sorted object names)

Every line is checked (JSON, keys, the structure's shape and meaning, contradictions, each
object named in the text, no repeated text) and every problem is reported as a ``LineError``
("line 7: relations[0].relation: unknown relation 'diagonal to'"), so the caller can reject
the whole file when any line is bad: ``parse_jsonl(...).raise_for_errors()``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import PromptSpecError
from .parsing import tokenize
from .splits import SplitPolicy, group_key_fit, group_key_for
from .structure import StructuredPrompt
from .templates import normalize_text
from .vocabulary import Vocabulary, object_entry

_DEFAULT_SPLITS = SplitPolicy()
_LINE_KEYS = frozenset({"text", "objects", "relations", "scene", "group"})


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    field: str
    message: str
    file: str = ""  # the file's name when an import reads several

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}" if self.file else f"line {self.line}"
        return f"{where}: {self.field}: {self.message}"


@dataclass(frozen=True)
class ImportItem:
    """One prompt as read from a source file, in a JSONL line's shape (``text``, ``objects``,
    ``relations``, ``scene``, ``group``), before it is checked. ``data`` is None when the
    reader could not make one (its ``errors`` say why). A ``text_only`` item stores its text
    with an empty structure (the source states no objects or relations we can hold); its
    ``tier`` is then the reader's, else the relation count gives it. ``template`` names how
    the text was written (a benchmark's format)."""

    line: int
    data: dict[str, Any] | None
    errors: tuple[PromptSpecError, ...] = ()
    file: str = ""
    template: str | None = None
    text_only: bool = False
    tier: str | None = None


class PromptImportError(PromptSpecError):
    """A file with bad lines; ``errors`` holds every one of them."""

    def __init__(self, errors: list[LineError]) -> None:
        listed = "; ".join(str(error) for error in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        super().__init__("lines", [str(e) for e in errors], f"{len(errors)} bad: {listed}{more}")
        self.errors = errors

    def __reduce__(self) -> tuple[type[PromptImportError], tuple[list[LineError]]]:  # type: ignore[override]
        return (type(self), (self.errors,))


@dataclass
class JsonlImport:
    """The records of the good lines and the errors of the bad ones."""

    records: list[dict[str, Any]] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    repeats_dropped: list[str] = field(default_factory=list)  # "<file> line <n>" (drop_repeats)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        if self.errors:
            raise PromptImportError(self.errors)


def tier_for(num_relations: int) -> str:
    """The difficulty tier by relation count: 1 ``single``, 2-3 ``multi``, 4+ ``scene``."""
    if num_relations > 3:
        return "scene"
    return "single" if num_relations == 1 else "multi"


def _mention_errors(
    prompt: StructuredPrompt, text: str, vocabulary: Vocabulary | None
) -> list[PromptSpecError]:
    spoken = f" {' '.join(tokenize(text))} "
    errors: list[PromptSpecError] = []
    for index, obj in enumerate(prompt.objects):
        entry = vocabulary.entry(obj.name) if vocabulary is not None else object_entry(obj.name)
        forms = {entry.name, entry.plural}
        if not any(f" {' '.join(tokenize(form))} " in spoken for form in forms):
            errors.append(
                PromptSpecError(
                    f"objects[{index}].name", obj.name, f"{obj.name!r} does not appear in the text"
                )
            )
    return errors


def _read_line(raw: str) -> tuple[dict[str, Any] | None, list[PromptSpecError]]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        return None, [PromptSpecError("json", raw, f"not valid JSON: {error.msg}")]
    except RecursionError:  # brackets nested past Python's recursion limit
        return None, [PromptSpecError("json", None, "not valid JSON: nested too deeply")]
    if not isinstance(data, dict):
        return None, [PromptSpecError("line", data, "must be a JSON object")]
    errors = [
        PromptSpecError(key, data[key], "unknown key") for key in data if key not in _LINE_KEYS
    ]
    return data, errors


def _check_item(
    item: ImportItem, vocabulary: Vocabulary | None, require_mentions: bool
) -> tuple[StructuredPrompt | None, list[PromptSpecError]]:
    if item.data is None:
        return None, list(item.errors)
    data = item.data
    errors = list(item.errors)
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        errors.append(PromptSpecError("text", text, "must be a non-empty string"))
    group = data.get("group")
    if group is not None and (not isinstance(group, str) or not group):
        errors.append(PromptSpecError("group", group, "must be a non-empty string"))
    if item.text_only:
        return StructuredPrompt((), ()), errors
    structure = {key: data[key] for key in ("objects", "relations", "scene") if key in data}
    try:
        prompt = StructuredPrompt.from_dict(structure)
    except PromptSpecError as error:
        return None, [*errors, error]
    errors.extend(prompt.validation_errors(vocabulary=vocabulary))
    if require_mentions and isinstance(text, str) and text.strip():
        errors.extend(_mention_errors(prompt, text, vocabulary))
    return prompt, errors


def parse_jsonl(
    lines: Iterable[str | bytes],
    *,
    vocabulary: Vocabulary | None = None,
    split_policy: SplitPolicy | None = _DEFAULT_SPLITS,
    require_mentions: bool = True,
) -> JsonlImport:
    """Check every line; records for the good ones, ``LineError``s (1-based lines) for the rest.

    ``vocabulary`` (optional) rejects unknown object names when strict and gives plurals for
    the mention check; ``split_policy`` fills each record's ``split`` (the default 0.8 / 0.1 /
    0.1 policy unless given; None leaves it None). Blank lines
    are skipped. Records have the builder's shape plus ``"line"``, with ``template`` None and
    no perturbations.
    """

    def items() -> Iterator[ImportItem]:
        for number, raw_line in enumerate(lines, start=1):
            raw = raw_line.decode("utf-8") if isinstance(raw_line, bytes) else raw_line
            if raw.strip():
                data, errors = _read_line(raw)
                yield ImportItem(number, data, tuple(errors))

    return items_check(
        items(), vocabulary=vocabulary, split_policy=split_policy,
        require_mentions=require_mentions,
    )  # fmt: skip


def items_check(
    items: Iterable[ImportItem],
    *,
    vocabulary: Vocabulary | None = None,
    split_policy: SplitPolicy | None = _DEFAULT_SPLITS,
    require_mentions: bool = True,
    drop_repeats: bool = False,
) -> JsonlImport:
    """Check every item as a JSONL line is checked (text, group, the structure's shape and
    meaning, each object named in the text, no text repeated across the whole import): records
    for the good ones, every problem of the bad ones as a ``LineError``. With ``drop_repeats``
    a repeated text is left out (and listed in ``repeats_dropped``) instead of being an error:
    a benchmark's file that lists one prompt twice."""
    result = JsonlImport()
    first_line_of: dict[str, str] = {}
    for item in items:
        data = item.data
        prompt, errors = _check_item(item, vocabulary, require_mentions)
        where = f"{item.file} line {item.line}" if item.file else f"line {item.line}"
        if data is not None and isinstance(data.get("text"), str):
            normalized = normalize_text(data["text"])
            if normalized in first_line_of and drop_repeats and not errors:
                result.repeats_dropped.append(where)
                continue
            if normalized in first_line_of:
                errors.append(
                    PromptSpecError("text", data["text"], f"repeats {first_line_of[normalized]}")
                )
            first_line_of.setdefault(normalized, where)
        if errors or data is None or prompt is None:
            result.errors.extend(
                LineError(item.line, e.field, e.message, item.file) for e in errors
            )
            continue
        names = [obj.name for obj in prompt.objects]
        group = group_key_fit(data["group"]) if data.get("group") else group_key_for(names)
        relations = {relation.relation for relation in prompt.relations}
        result.records.append(
            {
                "line": item.line,
                "file": item.file,
                "text": data["text"],
                "normalized_text": normalize_text(data["text"]),
                "structure": prompt.to_dict(),
                "tier": item.tier or tier_for(len(prompt.relations)),
                "template": item.template,
                "group_key": group,
                "split": (
                    split_policy.split_for(group, objects=names, relations=relations)
                    if split_policy is not None
                    else None
                ),
                "perturbations": [],
            }
        )
    return result
