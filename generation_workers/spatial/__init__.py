"""Spatial prompt engine: pure Python (stdlib, PyYAML only for spec files), no Django.

Structured prompts (``structure``)
    ``SpatialObject(id, name, count=1, attributes={"color": .., "size": ..})``,
    ``Relation(subject, relation, objects)``, ``StructuredPrompt(objects, relations, scene)``:
    frozen dataclasses. ``StructuredPrompt.from_dict(d)`` / ``.to_dict()`` read and write::

        {"objects": [{"id": "o1", "name": "cat", "count": 1,
                      "attributes": {"color": "red", "size": "small"}}, ...],
         "relations": [{"subject": "o1", "relation": "left_of", "objects": ["o2"]}, ...],
         "scene": "kitchen" | None}

    ``.validate(vocabulary=None)`` raises the first ``PromptSpecError(field, value, message)``
    (field like ``relations[2].relation``; contradictions as field ``relations`` naming the
    relations); ``.validation_errors(...)`` lists them all; ``.normalize_ids()`` renumbers
    objects o1, o2, ... by first mention.

Relations (``relations``, ``consistency``)
    ``RELATIONS``: 15 canonical ids -> ``RelationSpec`` (arity, axis, direction, inverse,
    symmetric, dimension). ``canonical_relation(phrase) -> str`` maps synonyms ("on the left
    of" -> "left_of"). ``relations_contradict(a, b) -> bool``;
    ``check_consistency(prompt) -> list[Conflict]`` (``relation_indices``, ``descriptions``,
    ``reason``, ``message()``); ``contradicts(original, perturbed) -> bool``.

Vocabulary (``vocabulary``, ``inflection``)
    ``builtin_vocabulary("coco" | "compbench")``, ``vocabulary_from_spec(list | dict)``;
    ``Vocabulary.entry(name)`` gives plural and article; ``indefinite_article``,
    ``pluralize``, ``number_word``.

Text (``templates``, ``parsing``)
    ``render_prompt(prompt, template="scene" | "geneval" | "compbench" | "visor" | "<custom
    {A} {rel} {B}>", vocabulary=None) -> str``; ``compile_template(text)`` checks a template;
    ``parse_prompt(text, vocabulary=..., template=None) -> StructuredPrompt`` reads it back
    (``== prompt.normalize_ids()``); ``normalize_text(text)`` is the dedupe key.

Perturbations (``perturbations``)
    ``perturb(prompt, kind="swap"|"replace"|"flip"|"multi", seed=0) -> Perturbation | None``;
    ``perturbations_for(prompt, types=..., count=1, seed=0) -> list[Perturbation]``;
    ``Perturbation.prompt`` (same objects and ids) and ``.lineage`` =
    ``{"type", "changes", "num_perturbations"}``.

Splits (``splits``)
    ``assign_split(group_key, ratios={"train": .8, "val": .1, "test": .1}, seed=0) -> str``
    (blake2b, stable everywhere); ``SplitPolicy(..., held_out_objects, held_out_relations)``
    ``.split_for(group_key, objects=..., relations=...)``; ``group_key_for(names)``.

Prompt sets (``builder_spec``, ``builder``)
    ``build_prompt_set(spec) -> Iterator[record]`` (spec format in ``builder_spec``; records
    in ``builder``); ``parse_build_spec(dict) -> BuildSpec``; ``load_build_spec(path)``.

Imports (``jsonl_import``)
    ``parse_jsonl(lines, vocabulary=None, split_policy=SplitPolicy()) -> JsonlImport`` with
    ``.records`` (builder-shaped, plus ``line``; tier by relation count), ``.errors``
    (every ``LineError``: "line 7: relations[0].relation: unknown relation 'diagonal to'")
    and ``.raise_for_errors()``; ``items_check(items, ...)`` checks ``ImportItem``s the same
    way (any reader's items). ``benchmarks.benchmark_read(fmt, files)`` reads a benchmark's own
    files (``geneval``, ``t2i-compbench``, ``dpg-bench``) into items, with notes of what stays
    text only.
"""

from .builder import build_prompt_set, tier_targets
from .builder_spec import BuildSpec, load_build_spec, parse_build_spec
from .consistency import Conflict, check_consistency, contradicts, relations_contradict
from .errors import PromptSpecError
from .inflection import indefinite_article, number_word, pluralize
from .jsonl_import import JsonlImport, LineError, PromptImportError, parse_jsonl
from .parsing import parse_prompt
from .perturbations import PERTURBATION_TYPES, Perturbation, perturb, perturbations_for
from .relations import RELATION_IDS, RELATIONS, RelationSpec, canonical_relation
from .splits import SplitPolicy, assign_split, group_key_for
from .structure import Relation, SpatialObject, StructuredPrompt
from .templates import STYLES, Template, compile_template, normalize_text, render_prompt
from .vocabulary import (
    COCO,
    COMPBENCH,
    ObjectEntry,
    Vocabulary,
    builtin_vocabulary,
    vocabulary_from_spec,
)

__all__ = [
    "COCO",
    "COMPBENCH",
    "PERTURBATION_TYPES",
    "RELATIONS",
    "RELATION_IDS",
    "STYLES",
    "BuildSpec",
    "Conflict",
    "JsonlImport",
    "LineError",
    "ObjectEntry",
    "Perturbation",
    "PromptImportError",
    "PromptSpecError",
    "Relation",
    "RelationSpec",
    "SpatialObject",
    "SplitPolicy",
    "StructuredPrompt",
    "Template",
    "Vocabulary",
    "assign_split",
    "build_prompt_set",
    "builtin_vocabulary",
    "canonical_relation",
    "check_consistency",
    "compile_template",
    "contradicts",
    "group_key_for",
    "indefinite_article",
    "load_build_spec",
    "normalize_text",
    "number_word",
    "parse_build_spec",
    "parse_jsonl",
    "parse_prompt",
    "perturb",
    "perturbations_for",
    "pluralize",
    "relations_contradict",
    "render_prompt",
    "tier_targets",
    "vocabulary_from_spec",
]
