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
from collections.abc import Iterable
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

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


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


def _read_line(
    raw: str, vocabulary: Vocabulary | None, require_mentions: bool
) -> tuple[dict[str, Any] | None, StructuredPrompt | None, list[PromptSpecError]]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        return None, None, [PromptSpecError("json", raw, f"not valid JSON: {error.msg}")]
    except RecursionError:  # brackets nested past Python's recursion limit
        return None, None, [PromptSpecError("json", None, "not valid JSON: nested too deeply")]
    if not isinstance(data, dict):
        return None, None, [PromptSpecError("line", data, "must be a JSON object")]
    errors = [
        PromptSpecError(key, data[key], "unknown key") for key in data if key not in _LINE_KEYS
    ]
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        errors.append(PromptSpecError("text", text, "must be a non-empty string"))
    group = data.get("group")
    if group is not None and (not isinstance(group, str) or not group):
        errors.append(PromptSpecError("group", group, "must be a non-empty string"))
    structure = {key: data[key] for key in ("objects", "relations", "scene") if key in data}
    try:
        prompt = StructuredPrompt.from_dict(structure)
    except PromptSpecError as error:
        return data, None, [*errors, error]
    errors.extend(prompt.validation_errors(vocabulary=vocabulary))
    if require_mentions and isinstance(text, str) and text.strip():
        errors.extend(_mention_errors(prompt, text, vocabulary))
    return data, prompt, errors


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
    result = JsonlImport()
    first_line_of: dict[str, int] = {}
    for number, raw_line in enumerate(lines, start=1):
        raw = raw_line.decode("utf-8") if isinstance(raw_line, bytes) else raw_line
        if not raw.strip():
            continue
        data, prompt, errors = _read_line(raw, vocabulary, require_mentions)
        if data is not None and isinstance(data.get("text"), str):
            normalized = normalize_text(data["text"])
            if normalized in first_line_of:
                errors.append(
                    PromptSpecError(
                        "text", data["text"], f"repeats line {first_line_of[normalized]}"
                    )
                )
            first_line_of.setdefault(normalized, number)
        if errors or data is None or prompt is None:
            result.errors.extend(LineError(number, e.field, e.message) for e in errors)
            continue
        names = [obj.name for obj in prompt.objects]
        group = group_key_fit(data["group"]) if data.get("group") else group_key_for(names)
        relations = {relation.relation for relation in prompt.relations}
        result.records.append(
            {
                "line": number,
                "text": data["text"],
                "normalized_text": normalize_text(data["text"]),
                "structure": prompt.to_dict(),
                "tier": tier_for(len(prompt.relations)),
                "template": None,
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
