"""Templates and rendering of structured prompts to text.

A template is text with placeholders: ``{A}`` (the subject), ``{rel}`` (the relation phrase),
``{B}`` (the reference object) and optionally ``{C}`` (the second reference of ``between``;
without it ``{B}`` becomes "B and C") and ``{be}`` ("is"/"are", agreeing with the subject).
``{{`` and ``}}`` are literal braces. A placeholder must be set off by spaces or punctuation.

A template ending in ``.``, ``!`` or ``?`` is a *sentence* template: a prompt with several
relations becomes one sentence per relation, objects are introduced with "a"/"two" and named
again with "the", and a scene comes first ("In a kitchen, a red cup is to the left of a bowl.
The bowl is above a chair."). Any other template is a *phrase* template and renders exactly one
relation.

Built-in styles (``STYLES``): ``geneval`` ("a photo of a cat left of a dog"), ``compbench``
("a cat on the left of a dog"), ``visor`` ("a cat to the left of a dog") and ``scene``
("A cat is to the left of a dog.").
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from .errors import PromptSpecError
from .inflection import indefinite_article, number_word
from .relations import RELATIONS
from .vocabulary import Vocabulary, object_entry

if TYPE_CHECKING:
    from .structure import StructuredPrompt

PLACEHOLDERS: tuple[str, ...] = ("A", "rel", "B", "C", "be")
_REQUIRED: tuple[str, ...] = ("A", "rel", "B")
_BEFORE_OK = frozenset(" \t\n(\"'")
_AFTER_OK = frozenset(" \t\n.,;:!?)\"'")
_SENTENCE_END = (".", "!", "?")

ObjectTuple = tuple[str, int, str | None, str | None]
"""(name, count, size, color): an object as the renderer sees it."""
RelationIndexTuple = tuple[int, str, tuple[int, ...]]
"""(subject index, relation id, reference indices) into a list of ``ObjectTuple``."""

DEFAULT_PHRASES: Mapping[str, str] = MappingProxyType(
    {relation_id: spec.phrase for relation_id, spec in RELATIONS.items()}
)
GENEVAL_PHRASES: Mapping[str, str] = MappingProxyType(
    {**DEFAULT_PHRASES, "left_of": "left of", "right_of": "right of"}
)
COMPBENCH_PHRASES: Mapping[str, str] = MappingProxyType(
    {
        **DEFAULT_PHRASES,
        "left_of": "on the left of",
        "right_of": "on the right of",
        "on_top_of": "on the top of",
        "under": "on the bottom of",
    }
)


@dataclass(frozen=True)
class Template:
    """A checked template. ``parts`` alternates literal text and placeholder names."""

    name: str
    text: str
    phrases: Mapping[str, str]
    parts: tuple[tuple[str, str], ...]
    is_sentence: bool
    has_c: bool

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(value for kind, value in self.parts if kind == "slot")


def compile_template(
    text: str,
    *,
    name: str | None = None,
    phrases: Mapping[str, str] = DEFAULT_PHRASES,
    field_name: str = "template",
) -> Template:
    """Check a template string; ``PromptSpecError(field=field_name)`` when it is malformed."""
    if not isinstance(text, str) or not text.strip():
        raise PromptSpecError(field_name, text, "must be a non-empty string")
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as error:
        raise PromptSpecError(field_name, text, f"unbalanced brace ({error})") from None
    parts: list[tuple[str, str]] = []
    seen: list[str] = []
    for literal, placeholder, format_spec, conversion in pieces:
        if literal:
            parts.append(("literal", literal))
        if placeholder is None:
            continue
        if placeholder not in PLACEHOLDERS:
            known = " ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise PromptSpecError(
                field_name, text, f"unknown placeholder {{{placeholder}}} (known: {known})"
            )
        if format_spec or conversion:
            raise PromptSpecError(
                field_name, text, f"placeholder {{{placeholder}}} takes no format or conversion"
            )
        if placeholder in seen:
            raise PromptSpecError(field_name, text, f"placeholder {{{placeholder}}} appears twice")
        seen.append(placeholder)
        parts.append(("slot", placeholder))
    missing = [p for p in _REQUIRED if p not in seen]
    if missing:
        listed = ", ".join("{" + p + "}" for p in missing)
        raise PromptSpecError(field_name, text, f"missing placeholder {listed}")
    for position, (kind, value) in enumerate(parts):
        if kind != "slot":
            continue
        before = parts[position - 1] if position > 0 else None
        after = parts[position + 1] if position + 1 < len(parts) else None
        if (before is not None and (before[0] == "slot" or before[1][-1] not in _BEFORE_OK)) or (
            after is not None and (after[0] == "slot" or after[1][0] not in _AFTER_OK)
        ):
            raise PromptSpecError(
                field_name,
                text,
                f"placeholder {{{value}}} must be separated from its neighbours by a space",
            )
    return Template(
        name or text,
        text,
        dict(phrases),
        tuple(parts),
        is_sentence=text.rstrip().endswith(_SENTENCE_END),
        has_c="C" in seen,
    )


STYLES: Mapping[str, Template] = MappingProxyType(
    {
        "geneval": compile_template(
            "a photo of {A} {rel} {B}", name="geneval", phrases=GENEVAL_PHRASES
        ),
        "compbench": compile_template("{A} {rel} {B}", name="compbench", phrases=COMPBENCH_PHRASES),
        "visor": compile_template("{A} {rel} {B}", name="visor"),
        "scene": compile_template("{A} {be} {rel} {B}.", name="scene"),
    }
)


def get_template(value: str | Template, *, field_name: str = "template") -> Template:
    """A built-in style by name, or a custom template string compiled (named by its text)."""
    if isinstance(value, Template):
        return value
    if isinstance(value, str) and value in STYLES:
        return STYLES[value]
    if isinstance(value, str) and "{" not in value:
        known = ", ".join(STYLES)
        raise PromptSpecError(
            field_name, value, f"unknown style {value!r} (styles: {known}) and not a template"
        )
    return compile_template(value, field_name=field_name)


def scene_prefix(scene: str) -> str:
    return f"In {indefinite_article(scene)} {scene}, "


class Renderer:
    """Renders objects and relations with a template; caches noun phrases.

    One instance per vocabulary; cheap enough to call once per prompt in the builder.
    """

    _CACHE_LIMIT = 500_000

    def __init__(self, vocabulary: Vocabulary | None = None) -> None:
        self._vocabulary = vocabulary
        self._noun_phrases: dict[tuple[ObjectTuple, bool], str] = {}

    def noun_phrase(
        self, name: str, count: int, size: str | None, color: str | None, *, definite: bool
    ) -> str:
        entry = self._vocabulary.entry(name) if self._vocabulary else object_entry(name)
        words = [word for word in (size, color) if word]
        noun = entry.plural if count > 1 else entry.name
        if definite:
            head = "the"
        elif count > 1:
            head = number_word(count)
        elif entry.article in ("a", "an"):
            head = indefinite_article(words[0]) if words else entry.article
        else:
            head = entry.article
        return " ".join((head, *words, noun))

    def render(
        self,
        template: Template,
        objects: Sequence[ObjectTuple],
        relations: Sequence[RelationIndexTuple],
        scene: str | None = None,
    ) -> str:
        if len(relations) > 1 and not template.is_sentence:
            raise PromptSpecError(
                "template",
                template.text,
                f"a phrase template renders one relation, not {len(relations)}; "
                "use a sentence template (ending in '.')",
            )
        cache = self._noun_phrases
        phrases, text, has_c = template.phrases, template.text, template.has_c
        mentioned = [False] * len(objects)
        clauses: list[str] = []
        for subject, relation, references in relations:
            subject_object = objects[subject]
            key = (subject_object, mentioned[subject])
            mentioned[subject] = True
            values = {
                "A": cache.get(key) or self._noun_phrase(*key),
                "rel": phrases[relation],
                "be": "is" if subject_object[1] == 1 else "are",
            }
            spoken = []
            for reference in references:
                key = (objects[reference], mentioned[reference])
                mentioned[reference] = True
                spoken.append(cache.get(key) or self._noun_phrase(*key))
            if len(spoken) == 2:
                if has_c:
                    values["B"], values["C"] = spoken
                else:
                    values["B"] = f"{spoken[0]} and {spoken[1]}"
            elif has_c:
                raise PromptSpecError(
                    "template", template.text, "a template with {C} renders only 'between'"
                )
            else:
                values["B"] = spoken[0]
            clauses.append(text.format_map(values))
        if template.is_sentence:
            body = " ".join(clause[:1].upper() + clause[1:] for clause in clauses)
        else:
            body = clauses[0]
        if scene:
            return scene_prefix(scene) + body[:1].lower() + body[1:]
        return body

    def _noun_phrase(self, obj: ObjectTuple, definite: bool) -> str:
        name, count, size, color = obj
        phrase = self.noun_phrase(name, count, size, color, definite=definite)
        if len(self._noun_phrases) < self._CACHE_LIMIT:
            self._noun_phrases[(obj, definite)] = phrase
        return phrase


def prompt_tuples(
    prompt: StructuredPrompt,
) -> tuple[list[ObjectTuple], list[RelationIndexTuple]]:
    """The renderer's view of a structured prompt (objects by position, not id)."""
    position = {obj.id: index for index, obj in enumerate(prompt.objects)}
    objects = [(obj.name, obj.count, obj.size, obj.color) for obj in prompt.objects]
    relations = [
        (position[r.subject], r.relation, tuple(position[ref] for ref in r.objects))
        for r in prompt.relations
    ]
    return objects, relations


def render_prompt(
    prompt: StructuredPrompt,
    *,
    template: str | Template = "scene",
    vocabulary: Vocabulary | None = None,
) -> str:
    """The prompt as text. ``template`` is a style name, a template string or a ``Template``.

    The prompt is validated first (without vocabulary membership checks).
    """
    compiled = get_template(template)
    prompt.validate()
    objects, relations = prompt_tuples(prompt)
    return Renderer(vocabulary).render(compiled, objects, relations, prompt.scene)


def normalize_text(text: str) -> str:
    """The dedupe key: lower case, single spaces, no trailing punctuation."""
    return " ".join(text.lower().split()).rstrip(".!?,;: ")
