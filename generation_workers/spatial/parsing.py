"""Reading rendered prompt text back into a ``StructuredPrompt``.

The reader matches the template's literal words and tries every split of the rest into the
placeholders, keeping the split where each part reads: ``{A}``/``{B}``/``{C}`` as noun phrases
(article, "a pair of", a count word or "the"; size and colour words; the longest object name of
the vocabulary at the end, singular or plural), ``{rel}`` as any relation synonym and ``{be}``
as "is"/"are". Objects get ids o1, o2, ... in order of first mention (subject before
references), like ``StructuredPrompt.normalize_ids``; "the cup" names an object already
introduced. For every built-in style and builder output, ``parse_prompt(render_prompt(p))``
gives ``p.normalize_ids()`` back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .errors import PromptSpecError
from .inflection import parse_number
from .relations import RELATIONS, SYNONYMS
from .structure import Relation, SpatialObject, StructuredPrompt
from .templates import STYLES, Template, get_template
from .vocabulary import Vocabulary

_TOKEN = re.compile(r"[^\W_]+(?:['-][^\W_]+)*|[^\w\s]|_")
_TERMINALS = frozenset({".", "!", "?"})


def tokenize(text: str) -> list[str]:
    """Lower-case word and punctuation tokens ("A cat, left." -> a, cat, ",", left, ".")."""
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True, slots=True)
class NounPhrase:
    name: str
    count: int | None  # None for "the ..." (the count comes from the first mention)
    size: str | None
    color: str | None

    @property
    def definite(self) -> bool:
        return self.count is None

    @property
    def attributes(self) -> tuple[tuple[str, str], ...]:
        pairs = (("color", self.color), ("size", self.size))
        return tuple((key, word) for key, word in pairs if word is not None)


class NounPhraseReader:
    """Reads noun phrases made of a vocabulary's names, colours, sizes and articles."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self._names: dict[tuple[str, ...], list[tuple[str, bool]]] = {}
        articles: set[tuple[str, ...]] = {("a",), ("an",)}
        for entry in vocabulary.objects:
            self._names.setdefault(tuple(tokenize(entry.name)), []).append((entry.name, False))
            self._names.setdefault(tuple(tokenize(entry.plural)), []).append((entry.name, True))
            articles.add(tuple(tokenize(entry.article)))
        self._articles = sorted(articles, key=len, reverse=True)
        self._max_name = max((len(key) for key in self._names), default=0)
        self._colors = frozenset(vocabulary.colors)
        self._sizes = frozenset(vocabulary.sizes)

    def read(self, tokens: Sequence[str]) -> NounPhrase | None:
        if not tokens:
            return None
        count: int | None
        if tokens[0] == "the":
            count, rest = None, tokens[1:]
        elif (number := parse_number(tokens[0])) is not None:
            count, rest = number, tokens[1:]
        else:
            article = next((a for a in self._articles if tuple(tokens[: len(a)]) == a), None)
            if article is None:
                return None
            count, rest = 1, tokens[len(article) :]
        for length in range(min(self._max_name, len(rest)), 0, -1):
            candidates = self._names.get(tuple(rest[len(rest) - length :]))
            if not candidates:
                continue
            attributes = self._attributes(rest[: len(rest) - length])
            if attributes is None:
                continue
            for name, plural in candidates:
                if count is None or (count > 1) == plural:
                    return NounPhrase(name, count, *attributes)
        return None

    def _attributes(self, words: Sequence[str]) -> tuple[str | None, str | None] | None:
        size = color = None
        for word in words:
            if word in self._sizes and size is None:
                size = word
            elif word in self._colors and color is None:
                color = word
            else:
                return None
        return size, color


@dataclass(frozen=True, slots=True)
class _Clause:
    subject: NounPhrase
    relation: str
    references: tuple[NounPhrase, ...]


class _ClauseMatcher:
    def __init__(self, template: Template, reader: NounPhraseReader) -> None:
        self._reader = reader
        self._parts = [
            ("literal", tuple(tokenize(value))) if kind == "literal" else ("slot", value)
            for kind, value in template.parts
        ]
        self._parts = [part for part in self._parts if part != ("literal", ())]
        self._has_c = template.has_c

    def match(self, tokens: Sequence[str]) -> _Clause | None:
        for slots in self._assign(tokens, 0, 0, {}):
            clause = self._clause(slots)
            if clause is not None:
                return clause
        return None

    def _read_slot(self, name: str, tokens: Sequence[str]) -> object | None:
        if name == "rel":
            return SYNONYMS.get(" ".join(tokens))
        if name == "be":
            return tokens[0] if len(tokens) == 1 and tokens[0] in ("is", "are") else None
        single = self._reader.read(tokens)
        if single is not None:
            return (single,)
        if name == "B" and not self._has_c:
            for position, token in enumerate(tokens):
                if token == "and":
                    first = self._reader.read(tokens[:position])
                    second = self._reader.read(tokens[position + 1 :])
                    if first is not None and second is not None:
                        return (first, second)
        return None

    def _assign(
        self, tokens: Sequence[str], part: int, position: int, slots: dict[str, object]
    ) -> Iterator[dict[str, object]]:
        if part == len(self._parts):
            if position == len(tokens):
                yield dict(slots)
            return
        kind, value = self._parts[part]
        if kind == "literal":
            literal = value
            if tuple(tokens[position : position + len(literal)]) == literal:
                yield from self._assign(tokens, part + 1, position + len(literal), slots)
            return
        for end in range(position + 1, len(tokens) + 1):
            parsed = self._read_slot(str(value), tokens[position:end])
            if parsed is None:
                continue
            slots[str(value)] = parsed
            yield from self._assign(tokens, part + 1, end, slots)
            del slots[str(value)]

    def _clause(self, slots: dict[str, object]) -> _Clause | None:
        relation = str(slots["rel"])
        subject: tuple[NounPhrase, ...] = slots["A"]  # type: ignore[assignment]
        references: tuple[NounPhrase, ...] = slots["B"]  # type: ignore[assignment]
        if "C" in slots:
            references = references + slots["C"]  # type: ignore[operator]
        if len(subject) != 1 or len(references) != RELATIONS[relation].num_objects:
            return None
        return _Clause(subject[0], relation, references)


def _split_scene(tokens: list[str]) -> Iterator[tuple[str | None, list[str]]]:
    if tokens[:1] == ["in"] and "," in tokens:
        comma = tokens.index(",")
        if comma > 2 and tokens[1] in ("a", "an", "the"):
            yield " ".join(tokens[2:comma]), tokens[comma + 1 :]
    yield None, tokens


def _sentences(tokens: list[str]) -> list[list[str]]:
    sentences: list[list[str]] = [[]]
    for token in tokens:
        sentences[-1].append(token)
        if token in _TERMINALS:
            sentences.append([])
    return [sentence for sentence in sentences if sentence]


def _assemble(clauses: Sequence[_Clause], scene: str | None) -> StructuredPrompt:
    objects: list[SpatialObject] = []
    relations: list[Relation] = []

    def resolve(phrase: NounPhrase) -> str:
        if phrase.count is not None:
            object_id = f"o{len(objects) + 1}"
            attributes = phrase.attributes
            objects.append(SpatialObject(object_id, phrase.name, phrase.count, attributes))
            return object_id
        exact = [o for o in objects if (o.name, o.attributes) == (phrase.name, phrase.attributes)]
        by_name = [o for o in objects if o.name == phrase.name]
        matches = exact or (by_name if not phrase.attributes else [])
        if len(matches) != 1:
            raise PromptSpecError("text", phrase.name, f"'the {phrase.name}' names no one object")
        return matches[0].id

    for clause in clauses:
        subject = resolve(clause.subject)
        references = tuple(resolve(reference) for reference in clause.references)
        relations.append(Relation(subject, clause.relation, references))
    return StructuredPrompt(tuple(objects), tuple(relations), scene)


def _parse_with(text: str, template: Template, reader: NounPhraseReader) -> StructuredPrompt:
    matcher = _ClauseMatcher(template, reader)
    tokens = tokenize(text)
    for scene, body in _split_scene(tokens):
        if template.is_sentence:
            pieces = _sentences(body)
        else:
            while body and body[-1] in _TERMINALS:
                body = body[:-1]
            pieces = [body]
        clauses = [matcher.match(piece) for piece in pieces]
        if pieces and all(clause is not None for clause in clauses):
            return _assemble([c for c in clauses if c is not None], scene)
    raise PromptSpecError("text", text, f"does not read as template {template.name!r}")


def parse_prompt(
    text: str,
    *,
    vocabulary: Vocabulary,
    template: str | Template | None = None,
) -> StructuredPrompt:
    """The structured prompt a text states, read with ``template`` (a style name, template
    string or ``Template``; every built-in style in turn when None).

    Raises ``PromptSpecError(field="text")`` when the text does not read, or the validation
    error of the structure it reads as.
    """
    if not isinstance(text, str) or not text.strip():
        raise PromptSpecError("text", text, "must be a non-empty string")
    templates = [get_template(template)] if template is not None else list(STYLES.values())
    reader = NounPhraseReader(vocabulary)
    failure: PromptSpecError | None = None
    for candidate in templates:
        try:
            prompt = _parse_with(text, candidate, reader)
        except PromptSpecError as error:
            failure = error
            continue
        prompt.validate(vocabulary=vocabulary)
        return prompt
    names = ", ".join(t.name for t in templates)
    detail = f" ({failure.message})" if failure and len(templates) == 1 else ""
    raise PromptSpecError("text", text, f"does not read as any of: {names}{detail}")
