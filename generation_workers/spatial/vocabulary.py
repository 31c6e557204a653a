"""Object vocabularies: names with their article, plural and category, plus attribute words.

Two built-in vocabularies: ``coco`` (the 80 COCO categories as GenEval spells them, with the
COCO super-category as ``category``) and ``compbench`` (the 50 T2I-CompBench spatial objects).
Custom vocabularies come from a list of names or a dict (see ``vocabulary_from_spec``).
A vocabulary is *strict* when ``validate`` must reject object names outside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .builtin_objects import (
    COCO_BY_CATEGORY,
    COMPBENCH_OBJECTS,
    DEFAULT_COLORS,
    DEFAULT_SIZES,
    PAIR_NOUNS,
)
from .errors import PromptSpecError
from .inflection import NUMBER_WORDS, indefinite_article, pluralize


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    """One object name with how to inflect it."""

    name: str
    plural: str
    article: str
    category: str | None = None


def object_entry(
    name: str,
    *,
    plural: str | None = None,
    article: str | None = None,
    category: str | None = None,
) -> ObjectEntry:
    """An entry with the plural and article worked out by rule unless given."""
    if article is None:
        article = "a pair of" if name in PAIR_NOUNS else indefinite_article(name)
    return ObjectEntry(name, plural or pluralize(name), article, category)


@dataclass(frozen=True)
class Vocabulary:
    """Object names (with inflections), colour words and size words."""

    name: str
    objects: tuple[ObjectEntry, ...]
    colors: tuple[str, ...] = DEFAULT_COLORS
    sizes: tuple[str, ...] = DEFAULT_SIZES
    strict: bool = True
    _by_name: dict[str, ObjectEntry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {entry.name: entry for entry in self.objects})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(entry.name for entry in self.objects)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self.objects)

    def entry(self, name: str) -> ObjectEntry:
        """The entry for ``name``; a rule-inflected entry for a name outside the vocabulary."""
        found = self._by_name.get(name)
        return found if found is not None else object_entry(name)

    def categories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.category for e in self.objects if e.category is not None))

    def restricted(
        self,
        *,
        categories: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> Vocabulary:
        """A copy holding only objects of ``categories`` (all when None), minus ``exclude``."""
        wanted = None if categories is None else frozenset(categories)
        dropped = frozenset(exclude)
        kept = tuple(
            entry
            for entry in self.objects
            if entry.name not in dropped and (wanted is None or entry.category in wanted)
        )
        return Vocabulary(self.name, kept, self.colors, self.sizes, self.strict)

    def with_attributes(
        self, *, colors: Sequence[str] | None = None, sizes: Sequence[str] | None = None
    ) -> Vocabulary:
        return Vocabulary(
            self.name,
            self.objects,
            self.colors if colors is None else tuple(colors),
            self.sizes if sizes is None else tuple(sizes),
            self.strict,
        )

    def with_strict(self, strict: bool) -> Vocabulary:
        return Vocabulary(self.name, self.objects, self.colors, self.sizes, strict)


def _coco() -> Vocabulary:
    entries = tuple(
        object_entry(name, category=category)
        for category, names in COCO_BY_CATEGORY
        for name in names
    )
    return Vocabulary("coco", entries)


COCO = _coco()
COMPBENCH = Vocabulary("compbench", tuple(object_entry(name) for name in COMPBENCH_OBJECTS))
BUILTIN_VOCABULARIES: Mapping[str, Vocabulary] = {"coco": COCO, "compbench": COMPBENCH}


def builtin_vocabulary(name: str) -> Vocabulary:
    """``"coco"`` or ``"compbench"``; ``PromptSpecError(field="vocabulary")`` otherwise."""
    vocabulary = BUILTIN_VOCABULARIES.get(name)
    if vocabulary is None:
        known = ", ".join(sorted(BUILTIN_VOCABULARIES))
        raise PromptSpecError("vocabulary", name, f"unknown vocabulary {name!r} (known: {known})")
    return vocabulary


def _word_list(value: Any, field_name: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise PromptSpecError(field_name, value, "must be a list of strings")
    words: list[str] = []
    for index, item in enumerate(value):
        words.append(check_name(item, f"{field_name}[{index}]"))
    if len(set(words)) != len(words):
        raise PromptSpecError(field_name, value, "contains duplicates")
    return tuple(words)


def check_name(value: Any, field_name: str) -> str:
    """``value`` if it is lower-case words (letters, digits, '-', "'"), else PromptSpecError."""
    if not isinstance(value, str) or not value.strip():
        raise PromptSpecError(field_name, value, "must be a non-empty string")
    normalized = " ".join(value.split())
    if normalized != value or normalized != normalized.lower():
        raise PromptSpecError(
            field_name, value, "must be lower-case words separated by single spaces"
        )
    if any(not (char.isalnum() or char in " -'") for char in value):
        raise PromptSpecError(
            field_name, value, "may hold only letters, digits, ' ', '-' and \"'\""
        )
    return value


def _entry_from_spec(item: Any, field_name: str) -> ObjectEntry:
    if isinstance(item, str):
        return object_entry(check_name(item, field_name))
    if not isinstance(item, Mapping):
        raise PromptSpecError(field_name, item, "must be a name or an object with a 'name'")
    unknown = set(item) - {"name", "plural", "article", "category"}
    if unknown:
        key = sorted(unknown)[0]
        raise PromptSpecError(f"{field_name}.{key}", item[key], "unknown key")
    name = check_name(item.get("name"), f"{field_name}.name")
    options: dict[str, str | None] = {}
    for key in ("plural", "article", "category"):
        if item.get(key) is not None:
            options[key] = check_name(item[key], f"{field_name}.{key}")
    return object_entry(name, **options)


def vocabulary_from_spec(value: Any, *, field_name: str = "vocabulary") -> Vocabulary:
    """A vocabulary from a spec value.

    - ``"coco"`` / ``"compbench"``: a built-in vocabulary;
    - ``["cat", "dog", ...]``: custom names, inflected by rule;
    - ``{"name": "pets", "base": "coco", "objects": [...], "colors": [...], "sizes": [...],
      "strict": true}``: objects are names or ``{"name", "plural", "article", "category"}``;
      ``base`` (optional) starts from a built-in vocabulary and ``objects`` is then appended.
    """
    if isinstance(value, str):
        try:
            return builtin_vocabulary(value)
        except PromptSpecError as error:
            raise PromptSpecError(field_name, value, error.message) from None
    if isinstance(value, list | tuple):
        names = _word_list(value, field_name)
        if not names:
            raise PromptSpecError(field_name, value, "needs at least one object")
        return Vocabulary("custom", tuple(object_entry(name) for name in names))
    if not isinstance(value, Mapping):
        raise PromptSpecError(field_name, value, "must be a built-in name, a list or an object")
    unknown = set(value) - {"name", "base", "objects", "colors", "sizes", "strict"}
    if unknown:
        key = sorted(unknown)[0]
        raise PromptSpecError(f"{field_name}.{key}", value[key], "unknown key")
    base = (
        vocabulary_from_spec(value["base"], field_name=f"{field_name}.base")
        if "base" in value
        else None
    )
    raw_objects = value.get("objects", [])
    if not isinstance(raw_objects, list | tuple):
        raise PromptSpecError(f"{field_name}.objects", raw_objects, "must be a list")
    entries = list(base.objects if base else ())
    for index, item in enumerate(raw_objects):
        entries.append(_entry_from_spec(item, f"{field_name}.objects[{index}]"))
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if entry.name in seen:
            position = index - len(base.objects) if base else index
            raise PromptSpecError(
                f"{field_name}.objects[{position}]", entry.name, f"duplicate object {entry.name!r}"
            )
        seen.add(entry.name)
    if not entries:
        raise PromptSpecError(f"{field_name}.objects", raw_objects, "needs at least one object")
    strict = value.get("strict", True)
    if not isinstance(strict, bool):
        raise PromptSpecError(f"{field_name}.strict", strict, "must be true or false")
    name = value.get("name", base.name if base else "custom")
    if not isinstance(name, str) or not name:
        raise PromptSpecError(f"{field_name}.name", name, "must be a non-empty string")
    colors = (
        _word_list(value["colors"], f"{field_name}.colors")
        if "colors" in value
        else (base.colors if base else DEFAULT_COLORS)
    )
    sizes = (
        _word_list(value["sizes"], f"{field_name}.sizes")
        if "sizes" in value
        else (base.sizes if base else DEFAULT_SIZES)
    )
    check_attribute_words(colors=colors, sizes=sizes, field_name=field_name)
    return Vocabulary(name, tuple(entries), colors, sizes, strict)


def check_attribute_words(
    *, colors: Sequence[str], sizes: Sequence[str], field_name: str = "attributes"
) -> None:
    """Attribute words must be single words, distinct, and not read as a count or article."""
    reserved = frozenset(NUMBER_WORDS) | {"a", "an", "the", "and", "pair", "of"}
    seen: dict[str, str] = {}
    for kind, words in (("colors", colors), ("sizes", sizes)):
        for index, word in enumerate(words):
            path = f"{field_name}.{kind}[{index}]"
            check_name(word, path)
            if " " in word or word in reserved or word.isdigit():
                raise PromptSpecError(path, word, "must be a single word that is not a count")
            if word in seen:
                raise PromptSpecError(path, word, f"{word!r} is already one of the {seen[word]}")
            seen[word] = kind
